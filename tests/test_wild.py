"""The in-the-wild training scripts (benchmarks/wild): grouped folds, the bundled weights back in torch, the robust
pseudo-label loss and the six-class view of the scores."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
WILD = Path(__file__).resolve().parents[1] / "benchmarks" / "wild"
sys.path.insert(0, str(WILD))

from gpu_data import group_folds  # noqa: E402
from gpu_train import Source, batch_loss, gce, scores  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILM = re.compile(r"^(.+?)[_-]\d+_+\d+\.\w+$")


def test_sfew_folds_keep_every_film_in_one_fold() -> None:
    names = sorted(p.name for p in (SHARED / "sfew" / "train").glob("*/*.png"))
    films = [FILM.match(n).group(1) for n in names]  # every SFEW name parses to a film title
    ids = np.unique(films, return_inverse=True)[1]
    folds = group_folds(ids)
    for f in set(films):
        assert len({int(folds[i]) for i, g in enumerate(films) if g == f}) == 1
    sizes = np.bincount(folds, minlength=5)
    assert len(sizes) == 5 and sizes.min() > 0.8 * sizes.mean(), sizes  # balanced to within 20 %


def test_bundled_weights_convert_exactly_and_start_training_from_the_same_function() -> None:
    pytest.importorskip("onnxruntime")
    from bundled_init import ASSET, convert

    from ferkit.faces.align import resize_crop
    from ferkit.media.images import read_image
    from ferkit.training.backbones import create_backbone

    files = sorted((SHARED / "fer2013" / "train").glob("*/*.jpg"))[::500]
    images = np.stack([resize_crop(read_image(p), 48, "gray") for p in files])
    state, err = convert(ASSET, images)
    assert err < 1e-4  # eval mode = the ONNX graph
    model = create_backbone("vgg_small", num_classes=7, in_channels=1)
    model.load_state_dict(state)
    x = torch.from_numpy(images).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        ev = model.eval()(x)[0]
        model.train()
        model.dropout.eval()  # dropout aside, train mode normalises by the batch: the same images = the running stats
        tr = model(x)[0]
    assert torch.allclose(ev, tr, atol=1e-3)


def test_gce_is_bounded_where_cross_entropy_is_not() -> None:
    logits = torch.tensor([[10.0, -10.0], [-10.0, 10.0]])
    target = torch.tensor([0, 0])
    loss = gce(logits, target, q=0.7)
    assert loss[0] < 1e-3 and loss[1] <= 1 / 0.7 + 1e-6  # a confident wrong label costs at most 1/q
    assert torch.nn.functional.cross_entropy(logits, target, reduction="none")[1] > 19


def test_robust_pseudo_loss_ignores_uncertain_teachers() -> None:
    hp = {"ent_weight": 0.0}
    z = torch.randn(2, 7, requires_grad=True)
    certain = torch.eye(7)[:2] * 0.999 + 0.001 / 7
    uniform = torch.full((2, 7), 1 / 7)
    idx = torch.arange(2)
    src = lambda soft: Source("clip", torch.zeros(2, 1, 4, 4), 1.0, soft=soft, kind="pseudo_robust")  # noqa: E731
    assert batch_loss(z, src(uniform), idx, None, hp).abs() < 1e-5  # weight 1 - H/log K = 0
    assert batch_loss(z, src(certain), idx, None, hp) > 0.01


def test_scores_add_the_six_class_view_for_seven_class_logits() -> None:
    classes = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    y = np.array([3, 4, 6])
    logits = np.zeros((3, 7))
    logits[0, 3] = logits[1, 4] = 1  # right
    logits[2, 4], logits[2, 6] = 2, 1  # neutral wins; without neutral, surprise (right)
    s = scores(logits, y, classes)
    assert s["accuracy"] == pytest.approx(2 / 3)
    assert s["six_class"] == {"n": 2, "accuracy": 1.0}
