"""Gate models for cascades: a binary head (e.g. expressive vs neutral) on a ferkit model's embedding.

``python -m ferkit.training.gate build --model ferkit --data ../shared/data/fer2013 --out
src/ferkit/assets/models/ferkit-gate``
computes the model's embeddings (its ONNX ``embedding`` output) for the training files its card lists, fits a
class-balanced logistic regression for a binary taxonomy, and writes a model folder: the original graph plus a
``Gemm`` on the embedding as its ``logits`` output, with a card (classes, taxonomy, data, metrics on the
validation files and, if given, on a test folder). Needs the ``train`` extra (``onnx``).

``--occlusion erasing|gridmask|both`` adds one occluded copy of every training crop (random erasing, GridMask, or
half each; :mod:`ferkit.training.augment`), so the head also learns from faces partly hidden by hands, microphones
or masks. The card then also reports the validation files occluded the same way (fixed seed).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import typer

from ferkit.errors import InputError
from ferkit.faces.align import resize_crop
from ferkit.labels.folders import file_digest, list_folder_dataset
from ferkit.labels.taxonomy import TAXONOMIES, Taxonomy, load_taxonomy, map_labels
from ferkit.models.base import OnnxModel, sha256_file
from ferkit.models.loading import load_model

OCCLUSIONS = ("none", "erasing", "gridmask", "both")


def occlude(crops: np.ndarray, how: str, seed: int) -> np.ndarray:
    """Each uint8 crop (N, H, W[, C]) occluded once: random erasing (one noise box of 10–30 % of the face),
    GridMask (a grid of dropped squares, 30–50 % of the period), or ``both`` (alternating)."""
    import torch

    from ferkit.training.augment import grid_mask, random_erasing

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(crops.astype(np.float32) / 127.5 - 1.0)
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    erase = np.zeros(len(x), bool) if how == "gridmask" else np.ones(len(x), bool)
    if how == "both":
        erase[1::2] = False
    out = x.clone()
    if erase.any():
        out[erase] = random_erasing(x[erase], 1.0, gen, area=(0.1, 0.3))
    if (~erase).any():
        out[~erase] = grid_mask(x[~erase], 1.0, gen)
    out = out[:, 0] if crops.ndim == 3 else out.permute(0, 2, 3, 1)
    return np.clip((out.numpy() + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def embeddings(model: OnnxModel, root: Path, files: list[str], occlusion: str = "none", seed: int = 0) -> np.ndarray:
    """The model's pooled ``embedding`` output for ``<class>/<file>`` crops under ``root`` (``occlusion``: of the
    crops occluded once each, see :func:`occlude`)."""
    out = []
    for i in range(0, len(files), 512):
        crops = np.stack(
            [
                resize_crop(cv2.imread(str(root / f), cv2.IMREAD_GRAYSCALE), model.input_size, model.channels)
                for f in files[i : i + 512]
            ]
        )
        if occlusion != "none":
            crops = occlude(crops, occlusion, seed + i)
        out.append(model.embeddings(crops))
    return np.concatenate(out)


def binary_labels(files: list[str], taxonomy: Taxonomy) -> np.ndarray:
    """Index of the gate class of each ``<class>/<file>`` (0 = first gate class)."""
    return np.array([taxonomy.index(taxonomy.map(f.split("/")[0])) for f in files])


def binary_taxonomy(name: str) -> Taxonomy:
    """A shipped or user taxonomy of ``kind = "binary"`` (``ferkit/assets/taxonomies``)."""
    tax = load_taxonomy(name)
    if tax.kind != "binary":
        binary = [t for t in TAXONOMIES if load_taxonomy(t).kind == "binary"]
        raise InputError(f"taxonomy {name!r} is not binary; binary ones: {', '.join(binary)}")
    return tax


def write_gate_onnx(src: Path, dst: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy ``src`` and replace its ``logits`` output by ``Gemm(embedding, weight.T, bias)``."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    for node in g.node:  # rename the old head's output so the new head can take the name
        node.output[:] = ["old_logits" if o == "logits" else o for o in node.output]
    g.initializer.extend(
        [
            numpy_helper.from_array(weight.astype(np.float32), "gate_weight"),
            numpy_helper.from_array(bias.astype(np.float32), "gate_bias"),
        ]
    )
    g.node.append(helper.make_node("Gemm", ["embedding", "gate_weight", "gate_bias"], ["logits"], transB=1))
    logits_vi = next(o for o in g.output if o.name == "logits")
    del g.output[:]
    g.output.extend([logits_vi])
    logits_vi.type.tensor_type.shape.dim[1].dim_value = len(bias)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def build(
    model_name: str, data: Path, out: Path, taxonomy: str, test_dir: Path | None, occlusion: str = "none"
) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if occlusion not in OCCLUSIONS:
        raise InputError(f"--occlusion must be one of {', '.join(OCCLUSIONS)}, got {occlusion!r}")
    tax = binary_taxonomy(taxonomy)
    base = load_model(model_name, calibration=False)
    if not isinstance(base, OnnxModel):
        raise InputError("a gate is built on a ferkit ONNX model folder")
    training = base.card.extra.get("training", {})
    val_files = [f for f in training.get("validation_files", []) if (data / "train" / f).is_file()]
    val_set = set(val_files)
    mapped, _ = map_labels(base.classes, tax)
    members = {c: [b for b, m in zip(base.classes, mapped, strict=True) if m == c] for c in tax.classes}
    known = {b for b, m in zip(base.classes, mapped, strict=True) if m is not None}
    # Like the base model's split: never fit on byte copies of test images (FER2013 has 703 in train).
    test_items = list_folder_dataset(data / "test") if (data / "test").is_dir() else []
    test_digests = {file_digest(i.path) for i in test_items}
    train_files = [
        f"{i.folder}/{i.path.name}"
        for i in list_folder_dataset(data / "train")
        if f"{i.folder}/{i.path.name}" not in val_set and i.label in known and file_digest(i.path) not in test_digests
    ]
    xtr, ytr = embeddings(base, data / "train", train_files), binary_labels(train_files, tax)
    if occlusion != "none":  # one occluded copy of every training crop beside the clean one
        xtr = np.concatenate([xtr, embeddings(base, data / "train", train_files, occlusion, seed=1)])
        ytr = np.concatenate([ytr, ytr])
    xva, yva = (
        (embeddings(base, data / "train", val_files), binary_labels(val_files, tax)) if val_files else (None, None)
    )
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(xtr, ytr)
    # Logistic regression gives one score s for class 1; logits (0, s) give the same softmax probabilities.
    weight = np.vstack([np.zeros_like(clf.coef_[0]), clf.coef_[0]])
    bias = np.array([0.0, clf.intercept_[0]])
    out.mkdir(parents=True, exist_ok=True)
    write_gate_onnx(base.folder / base.card.onnx_file, out / "model.onnx", weight, bias)

    def score(y: np.ndarray, x: np.ndarray) -> dict:
        pred = clf.predict(x)
        return {
            "n": len(y),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro")),
        }

    card = {
        "name": out.name,
        "version": "1",
        "classes": list(tax.classes),
        "input_size": base.input_size,
        "channels": base.channels,
        "mean": base.card.mean,
        "std": base.card.std,
        "preprocessing": base.card.extra.get("preprocessing", ""),
        "onnx_file": "model.onnx",
        "outputs": {"logits": "gate class scores", "embedding": "pooled features of the base model"},
        "sha256": sha256_file(out / "model.onnx"),
        "architecture": {"base_model": base.name, "base_sha256": base.sha256, "head": "logistic regression"},
        "training": {
            "reproduce": [
                f"python -m ferkit.training.gate build --model {model_name} --data {data} --out {out}"
                + (f" --taxonomy {taxonomy}" if taxonomy != "expressive_vs_neutral" else "")
                + (f" --occlusion {occlusion}" if occlusion != "none" else "")
            ],
            "taxonomy": {tax.name: members},
            "data": f"{data}/train minus the base model's validation files and byte copies of test images",
            "train_count": len(train_files),
            "fit": "sklearn LogisticRegression(C=1, class_weight='balanced') on the base model's embeddings",
            "occlusion": occlusion,
            "validation_files": val_files,
        },
        "metrics": {"validation": score(yva, xva)} if val_files else {},
    }
    if val_files:  # the same validation faces occluded (fixed seed, the same for every gate built)
        for how in ("erasing", "gridmask"):
            occluded = embeddings(base, data / "train", val_files, how, seed=12345)
            card["metrics"][f"validation_{how}"] = score(yva, occluded)
    if test_dir is not None:
        test_files = [f"{i.folder}/{i.path.name}" for i in list_folder_dataset(test_dir)]
        card["metrics"]["fer2013_test"] = score(binary_labels(test_files, tax), embeddings(base, test_dir, test_files))
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return card


app = typer.Typer(add_completion=False, help=__doc__)


@app.command("build")
def build_cmd(
    model: str = typer.Option("ferkit", help="Base model (name or folder) whose embedding the gate reads."),
    data: Path = typer.Option(..., help="FER2013-style root with train/<class>/ (and test/)."),
    out: Path = typer.Option(Path("src/ferkit/assets/models/ferkit-gate"), help="Gate model folder to write."),
    taxonomy: str = typer.Option("expressive_vs_neutral", help="A binary taxonomy (see `list`) or a TOML file."),
    test_dir: Path | None = typer.Option(None, help="Also score the gate here (e.g. fer2013/test)."),
    occlusion: str = typer.Option("none", help="Also train on one occluded copy of each crop: " + "|".join(OCCLUSIONS)),
) -> None:
    """Fit and export a binary gate on a model's embeddings."""
    card = build(model, data, out, taxonomy, test_dir, occlusion)
    typer.echo(json.dumps(card["metrics"], indent=1))


@app.command("list")
def list_cmd() -> None:
    """Shipped binary taxonomies and their classes."""
    binary = {t: list(load_taxonomy(t).classes) for t in TAXONOMIES if load_taxonomy(t).kind == "binary"}
    typer.echo(json.dumps(binary, indent=1))


if __name__ == "__main__":
    app()
