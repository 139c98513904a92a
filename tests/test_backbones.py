"""Backbone registry: shapes, separable head, ONNX export, channels_last, attention ensemble, parameter groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ferkit.training.backbones import BACKBONES, create_backbone, param_groups  # noqa: E402
from ferkit.training.export import export_onnx  # noqa: E402

# Cheap settings per backbone so the suite stays fast; full-size nets are only built (not run) in the count test.
SMALL: dict[str, dict] = {
    "resnet18_small": {"width": 0.25},
    "mobilenetv3_small": {"width": 0.5},
    "attention_ensemble": {
        "members": ["vgg_small", "resnet18_small"],
        "member_kwargs": [None, {"width": 0.25}],
        "dim": 32,
        "hidden": 16,
    },
}
NAMES = sorted(BACKBONES)


def build(name: str, in_channels: int = 1, **kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone(name, num_classes=7, in_channels=in_channels, **{**SMALL.get(name, {}), **kw})


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_new_backbones_registered() -> None:
    assert {"vgg_small", "resnet18_small", "mobilenetv3_small", "attention_ensemble"} <= set(BACKBONES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "size"), [(1, 48), (3, 64)])
def test_forward_shapes_and_separable_head(name: str, channels: int, size: int) -> None:
    model = build(name, channels)
    x = torch.randn(3, channels, size, size)
    logits, emb = model(x)  # train mode
    dim = model.head.in_features
    assert logits.shape == (3, 7) and emb.shape == (3, dim)
    model.eval()
    with torch.no_grad():
        logits, emb = model(x)
        assert torch.allclose(model.head(emb), logits, atol=1e-5)
        assert torch.allclose(model.head(model.features(x)), logits, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_matches_and_trains(name: str) -> None:
    model = build(name).eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, out, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    model.train()
    logits, _ = model(torch.randn(4, 1, 48, 48).contiguous(memory_format=torch.channels_last))
    torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_matches_torch(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model = build(name).eval()
    path = tmp_path / f"{name}.onnx"
    export_onnx(model, path, (1, 48, 48))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 1, 48, 48)  # a batch other than the export's 1: the batch axis is dynamic
    logits, emb = sess.run(["logits", "embedding"], {"input": x.numpy()})
    with torch.no_grad():
        ref_logits, ref_emb = model(x)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(emb, ref_emb.numpy(), atol=1e-4)


def test_unknown_backbone_lists_known_names() -> None:
    with pytest.raises(KeyError) as err:
        create_backbone("resnet_typo")
    for name in NAMES:
        assert name in str(err.value)
    with pytest.raises(KeyError, match="vgg_small"):
        create_backbone("attention_ensemble", members=["vgg_smal", "mobilenetv3_small"])


def test_attention_weights_are_per_sample_softmax() -> None:
    model = build("attention_ensemble").eval()
    assert model.last_weights is None
    x = torch.randn(4, 1, 48, 48)
    x[1] = -x[0]
    with torch.no_grad():
        model(x)
        w = model.attention(x)
    assert w.shape == (4, 2)
    assert torch.all(w > 0)
    assert torch.allclose(w.sum(1), torch.ones(4), atol=1e-6)
    assert torch.allclose(model.last_weights, w)
    assert not torch.allclose(w[0], w[1], atol=1e-6) and not torch.allclose(w[2], w[3], atol=1e-6)
    model.train()
    model(x)
    assert model.last_weights.requires_grad is False


def test_attention_ensemble_fused_embedding_is_weighted_sum() -> None:
    model = build("attention_ensemble").eval()
    fusion = model.features
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        _, emb = model(x)
        projs = torch.stack([p(f(x)) for f, p in zip(fusion.members, fusion.proj, strict=True)], 1)
    assert torch.allclose(emb, (model.last_weights.unsqueeze(2) * projs).sum(1), atol=1e-5)


def test_attention_ensemble_loads_member_features(tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = create_backbone("vgg_small", num_classes=7)
    ckpt = tmp_path / "best.pt"
    torch.save({"model": trained.state_dict(), "config": {}, "epoch": 3}, ckpt)
    model = build("attention_ensemble", member_weights=[str(ckpt), None])
    for k, v in trained.features.state_dict().items():
        assert torch.equal(model.features.members[0].state_dict()[k], v)
    with pytest.raises(ValueError, match="one entry per member"):
        build("attention_ensemble", member_weights=[str(ckpt)])


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_split_head_and_no_decay(name: str) -> None:
    model = build(name)
    groups = param_groups(model, lr=0.1, head_lr_mult=10.0, weight_decay=5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    head = {id(p) for p in model.head.parameters()}
    for g in groups:
        in_head = {id(p) in head for p in g["params"]}
        assert in_head == {g["name"].startswith("head")}
        assert g["lr"] == pytest.approx(1.0 if g["name"].startswith("head") else 0.1)
        if g["name"].endswith("no_decay"):
            assert g["weight_decay"] == 0.0 and all(p.ndim <= 1 for p in g["params"])
        else:
            assert g["weight_decay"] == 5e-4 and all(p.ndim > 1 for p in g["params"])
    torch.optim.SGD(groups, lr=0.1, momentum=0.9)  # accepted as-is by an optimiser


def test_parameter_counts() -> None:
    counts = {
        "vgg_small": n_params(create_backbone("vgg_small")),
        "resnet18_small": n_params(create_backbone("resnet18_small")),
        "resnet18_small_w0.5": n_params(create_backbone("resnet18_small", width=0.5)),
        "mobilenetv3_small": n_params(create_backbone("mobilenetv3_small")),
        "attention_ensemble": n_params(create_backbone("attention_ensemble")),
    }
    print(counts)
    card = json.loads((Path(__file__).parents[1] / "src/ferkit/assets/models/ferkit/card.json").read_text())
    if card["architecture"]["backbone"] == "vgg_small":  # the bundled checkpoint's layout is unchanged
        assert counts["vgg_small"] == card["architecture"]["parameters"]
    assert 10.5e6 < counts["resnet18_small"] < 11.7e6
    assert counts["resnet18_small_w0.5"] < 3.5e6
    assert counts["mobilenetv3_small"] < 2.5e6
    assert counts["attention_ensemble"] > counts["vgg_small"] + counts["resnet18_small"]


def test_resnet18_small_final_map_is_six_pixels_at_48() -> None:
    feats = create_backbone("resnet18_small", width=0.25).features
    x = torch.randn(1, 1, 48, 48)
    for layer in list(feats)[:-2]:  # everything before the global pool
        x = layer(x)
    assert x.shape[2:] == (6, 6)
