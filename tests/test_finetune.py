"""``model.trainable``: fine-tune only some stages of a checkpoint (the stock-photo recipe's transfer step)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import fer_files

from ferkit.errors import InputError
from ferkit.training.config import config_from_dict
from ferkit.training.loop import train


def _cfg(tmp: Path, data: Path, name: str, **model: object) -> object:
    return config_from_dict(
        {
            "name": name,
            "output": str(tmp / "runs"),
            "device": "cpu",
            "threads": 1,
            "data": {"sources": [{"path": str(data)}], "taxonomy": "basic5", "input_size": 32, "val_fraction": 0.25},
            "model": {"backbone": "resnet18_small", "options": {"width": 0.25}, **model},
            "optim": {"epochs": 1, "batch_size": 16, "optimizer": "adamw", "lr": 0.01, "ema_decay": 0.0},
            "tracking": {"mlflow": False},
        }
    )


def test_only_the_named_stages_and_head_change(tmp_path: Path) -> None:
    data = tmp_path / "d"
    for p in fer_files("train", 12, ["angry", "fear", "happy", "sad", "surprise"]):
        (data / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, data / p.parent.name / p.name)
    train(_cfg(tmp_path, data, "base"), log=lambda m: None)
    start = tmp_path / "runs" / "base" / "last.pt"
    tuned = _cfg(tmp_path, data, "tuned", init_from=str(start), trainable=["features.5", "features.6", "head"])
    train(tuned, log=lambda m: None)
    before = torch.load(start, weights_only=True)["model"]
    after = torch.load(tmp_path / "runs" / "tuned" / "last.pt", weights_only=True)["model"]
    params = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    moved = {k for k in params if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(("features.5.", "features.6.", "head.")) for k in moved)
    assert any(k.startswith("features.5.") for k in moved) and any(k.startswith("head.") for k in moved)
    with pytest.raises(InputError, match=r"model\.trainable: 'features\.9' names no parameter"):
        train(_cfg(tmp_path, data, "bad", init_from=str(start), trainable=["features.9"]), log=lambda m: None)


def test_the_stock_recipe_configs_load() -> None:
    """configs/stock: the FER stage and both fine-tunes parse, and fine-tune the last two stages and the head of the
    stage-1 checkpoint; the pull configs parse and ask the same classes."""
    from ferkit.stock.config import load_pull_config
    from ferkit.training.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs" / "stock"
    stage1 = load_config(root / "1_fer_resnet18_small.toml")
    assert stage1.model.backbone == "resnet18_small" and stage1.data.taxonomy == "basic5"
    for arm in ("2_stock_multi", "3_stock_single"):
        cfg = load_config(root / f"{arm}.toml")
        assert cfg.model.init_from == str(stage1.run_dir / "best.pt") and cfg.model.options == stage1.model.options
        assert cfg.model.trainable == ["features.5", "features.6", "head"] and cfg.data.sources[0].kind == "weak_tags"
    single, multi = (load_pull_config(root / "pull" / f"{a}.toml") for a in ("single", "multi"))
    assert list(single.classes) == list(multi.classes) == ["angry", "fear", "happy", "sad", "surprise"]
    assert {len(q.split()) for _, q in single.queries()} == {1} and {len(q.split()) for _, q in multi.queries()} == {2}
