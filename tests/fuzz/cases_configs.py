"""Hostile training configs (``ferkit train``, ``train-batch``) and run folders (``ferkit export``): non-finite or
out-of-range hyper-parameters that "succeed" with NaN weights, run names that escape the output folder, wrong types,
unknown keys, unparsable or non-UTF-8 files, YAML bombs, hostile checkpoints."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

from .inputs import labelled_folder
from .registry import FuzzCase, Outcome, Runner, register

BASE = {
    "name": "tiny", "output": "runs", "device": "cpu", "threads": 1,
    "data": {"input_size": 16, "val_fraction": 0.5, "sources": [{"path": "ds"}]},
    "model": {"backbone": "vgg_small"},
    "optim": {"epochs": 1, "batch_size": 2},
    "tracking": {"mlflow": False},
}  # fmt: skip


def _merge(base: dict, edit: dict) -> dict:
    out = json.loads(json.dumps(base))
    for dotted, value in edit.items():
        node = out
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return out


_DROP = object()


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, (int,)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(cfg: dict) -> str:
    """A small TOML writer (tables one level deep, arrays of tables for data.sources)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for k, v in cfg.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            for kk, vv in v.items():
                if kk == "sources" and isinstance(vv, list) and all(isinstance(s, dict) for s in vv):
                    continue
                lines.append(f"{kk} = {_toml_value(vv)}")
            if isinstance(v.get("sources"), list) and all(isinstance(s, dict) for s in v["sources"]):
                for s in v["sources"]:
                    lines.append(f"[[{k}.sources]]")
                    lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in s.items()]
    return "\n".join(lines) + "\n"


def _data(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 3, ["happy", "sad"])


def _finite_history(o: Outcome) -> None:
    """A finished run: the losses it logged are finite, and nothing was written outside <output>/<name>."""
    runs = list((o.tmp / "runs").glob("*/history.json"))
    assert runs, "no run folder with history.json under runs/"
    for h in runs:
        for row in json.loads(h.read_text()):
            assert math.isfinite(row["loss"]), f"{h}: loss {row['loss']}"
    stray = [p.name for p in o.tmp.iterdir() if p.name not in ("ds", "c.toml", "c.yaml", "c.json", "runs", "cfgs")]
    assert not stray, f"files written outside the output folder: {stray}"


def _cfg(cid: str, edit: dict, expect: str = "usage_error", fmt: str = "toml", export: bool = False,
         more=None, **kw: object) -> None:  # fmt: skip
    """A config from BASE with ``edit`` (dotted keys) applied; ``more(tmp)`` writes further files."""
    cfg = _merge(BASE, edit)

    def setup(tmp: Path) -> None:
        _data(tmp)
        if more is not None:
            more(tmp)
        if fmt == "toml":
            (tmp / "c.toml").write_text(to_toml(cfg))
        else:
            (tmp / "c.json").write_text(json.dumps(cfg, allow_nan=True))

    register(
        FuzzCase(
            f"train/config-{cid}", "train", "configs",
            ["train", f"c.{fmt}", *([] if export else ["--no-export"])], setup=setup, expect=expect,  # type: ignore[arg-type]
            check=kw.pop("check", _finite_history), timeout=kw.pop("timeout", 90), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


_cfg("valid", {}, expect="ok")
_cfg("lr-inf", {"optim.lr": math.inf}, note="lr > 0 holds for inf: the run 'succeeds' with NaN weights")
_cfg("lr-inf-json", {"optim.lr": math.inf}, fmt="json")
_cfg("lr-nan", {"optim.lr": math.nan})
_cfg("lr-huge", {"optim.lr": 1e308}, expect="either", note="finite, but the weights overflow to NaN")
_cfg("lr-huge-adamw", {"optim.lr": 1e308, "optim.optimizer": "adamw"}, expect="either")
_cfg("weight-decay-inf", {"optim.weight_decay": math.inf})
_cfg("momentum-negative", {"optim.momentum": -5.0}, note="no range check: torch refuses it mid-setup")
_cfg("momentum-nan", {"optim.momentum": math.nan})
_cfg("momentum-inf", {"optim.momentum": math.inf})
_cfg("head-lr-mult-inf", {"optim.head_lr_mult": math.inf})
_cfg("grad-clip-nan", {"optim.grad_clip": math.nan})
_cfg("label-smoothing-negative", {"optim.label_smoothing": -0.5})
_cfg("warmup-pct-one", {"optim.warmup_pct": 1.0})
_cfg("mean-nan", {"data.mean": math.nan}, note="data.mean is not range-checked")
_cfg("mean-inf", {"data.mean": math.inf})
_cfg("std-inf", {"data.std": math.inf}, note="x / inf: every image becomes zeros")
_cfg("std-zero", {"data.std": 0.0})
_cfg("strength-inf", {"augment.strength": math.inf})
_cfg("strength-nan", {"augment.strength": math.nan})
_cfg("class-weight-power-inf", {"imbalance.class_weight_power": math.inf})
_cfg("class-weight-power-nan", {"imbalance.class_weight_power": math.nan})
_cfg("focal-gamma-inf", {"imbalance.focal_gamma": math.inf, "imbalance.loss": "focal"})
_cfg("distill-temperature-inf", {"distill.temperature": math.inf})
_cfg("source-weight-inf", {"data.sources": [{"path": "ds", "weight": math.inf}]})
_cfg("source-weight-nan", {"data.sources": [{"path": "ds", "weight": math.nan}]})
_cfg("epochs-negative", {"optim.epochs": -1})
_cfg("epochs-zero", {"optim.epochs": 0})
_cfg("epochs-float", {"optim.epochs": 1.5})
_cfg("epochs-string", {"optim.epochs": "1"})
_cfg("epochs-bool", {"optim.epochs": True})
_cfg("batch-size-zero", {"optim.batch_size": 0})
_cfg("batch-size-huge", {"optim.batch_size": 10**12}, expect="either")
_cfg("input-size-huge", {"data.input_size": 10**9}, subprocess=True, timeout=30, memory_mb=2048,
     note="input_size has a lower bound only")  # fmt: skip
_cfg("threads-negative", {"threads": -2})
_cfg("seed-huge", {"seed": 2**70}, expect="either")
_cfg("seed-negative", {"seed": -5}, expect="either")
_cfg("name-dotdot", {"name": ".."}, note="the run folder is <output>/..: checkpoints land outside the output folder")
_cfg("name-dot", {"name": "."}, note="checkpoints written straight into the output folder")
_cfg("name-slash", {"name": "a/b"})
_cfg("name-empty", {"name": ""})
_cfg("name-nul", {"name": "a\u0000b"})
_cfg("name-too-long", {"name": "n" * 300})
_cfg("name-newline", {"name": "a\nb"}, expect="either")
_cfg("output-under-a-file", {"output": "ds/happy/happy_0.jpg/runs"})
_cfg("output-dev-null", {"output": "/dev/null"})
_cfg("unknown-top-key", {"epochs": 3})
_cfg("unknown-nested-key", {"optim.lrr": 0.1})
_cfg("sources-string", {"data.sources": "ds"})
_cfg("sources-empty", {"data.sources": []})
_cfg("sources-path-missing", {"data.sources": [{"path": "nope"}]})
_cfg("sources-path-root", {"data.sources": [{"path": "/proc/self"}]}, timeout=30)
_cfg("sources-path-int", {"data.sources": [{"path": 5}]})
_cfg("source-kind-unknown", {"data.sources": [{"path": "ds", "kind": "s3"}]})
_cfg("group-pattern-invalid", {"data.sources": [{"path": "ds", "group_pattern": "(("}]})
_cfg("group-pattern-redos", {"data.sources": [{"path": "ds", "group_pattern": "^(a+)+$"}]}, expect="either",
     subprocess=True, timeout=15, note="catastrophic backtracking on a long file name",
     more=lambda t: (t / "ds" / "happy" / "happy_0.jpg").rename(t / "ds" / "happy" / ("a" * 30 + "!.jpg")))  # fmt: skip
_cfg("model-options-string", {"model.options": "wide"})
_cfg("model-options-unknown", {"model.options": {"bogus": 1}})
_cfg("backbone-unknown", {"model.backbone": "resnet9000"})
_cfg("init-from-text-file", {"model.init_from": "ds/../c.toml"})
_cfg("init-from-missing", {"model.init_from": "nope.pt"})
_cfg("split-from-not-json", {"data.split_from": "c.toml"})
_cfg("split-from-model-folder-without-a-list", {"data.split_from": "ferkit-au"})
_cfg("split-from-list", {"data.split_from": "list.json"}, more=lambda t: (t / "list.json").write_text("[1, 2]"))
_cfg("teacher-missing", {"distill.teacher": "nope.pt"})
_cfg("taxonomy-unknown", {"data.taxonomy": "basic99"})
_cfg("test-dirs-missing", {"data.test_dirs": ["nope"]}, export=True, note="refused only after training")
_cfg("minority-unknown", {"imbalance.minority": ["joy"]})


def _raw(cid: str, name: str, data: bytes, expect: str = "usage_error", **kw: object) -> None:
    def setup(tmp: Path) -> None:
        _data(tmp)
        (tmp / name).write_bytes(data)

    register(
        FuzzCase(
            f"train/config-file-{cid}", "train", "configs", ["train", name, "--no-export"], setup=setup, expect=expect,  # type: ignore[arg-type]
            check=_finite_history, timeout=kw.pop("timeout", 60), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


_raw("not-utf8", "c.toml", b'name = "caf\xe9"\n')
_raw("toml-syntax", "c.toml", b"name = \n[data\n")
_raw("toml-duplicate-key", "c.toml", b'name = "a"\nname = "b"\n')
_raw("json-list", "c.json", b"[1, 2]")
_raw("json-nan-lr", "c.json", json.dumps(_merge(BASE, {"optim.lr": math.nan}), allow_nan=True).encode())
_raw("empty-toml", "c.toml", b"")
_raw("suffix-txt", "c.txt", b"name = 'x'\n")
_raw("yaml-python-object", "c.yaml", b'name: !!python/object/apply:os.system ["touch pwned"]\n')
_raw("yaml-not-mapping", "c.yaml", b"- a\n- b\n")
_raw("yaml-bomb", "c.yaml",
     b"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
     b"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
     b"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n",
     subprocess=True, timeout=20, memory_mb=1024, note="billion laughs: aliases expand to 10**9 items")  # fmt: skip
_raw("yaml-deep-nesting", "c.yaml", b"[" * 50_000 + b"]" * 50_000)
_raw("json-deep-nesting", "c.json", b"[" * 100_000 + b"]" * 100_000)
register(
    FuzzCase(
        "train/config-is-directory", "train", "configs", ["train", "c.toml"], setup=lambda t: (t / "c.toml").mkdir()
    )
)  # fmt: skip


class _Evil:
    def __reduce__(self):
        return (open, ("pwned", "w"))


def _evil_checkpoint(tmp: Path, name: str) -> None:
    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_bytes(pickle.dumps({"model": _Evil()}))


def _no_pwned(o: Outcome) -> None:
    assert not (o.tmp / "pwned").exists(), "the pickle in the checkpoint was executed"


_cfg("init-from-malicious-pickle", {"model.init_from": "evil.pt"}, check=_no_pwned,
     more=lambda t: _evil_checkpoint(t, "evil.pt"))  # fmt: skip

# --- train --resume onto a hostile run folder ---------------------------------------------------------------------


def _resume_setup(config_json: str):
    def setup(tmp: Path) -> None:
        _data(tmp)
        (tmp / "c.toml").write_text(to_toml(BASE))
        (tmp / "runs" / "tiny").mkdir(parents=True)
        (tmp / "runs" / "tiny" / "last.pt").write_bytes(b"x")
        (tmp / "runs" / "tiny" / "config.json").write_text(config_json)

    return setup


for cid, conf in [("config-json-garbage", "{not json"), ("config-json-list", "[1]")]:
    register(
        FuzzCase(
            f"train/resume-{cid}", "train", "configs", ["train", "c.toml", "--resume", "--no-export"],
            setup=_resume_setup(conf), mutable=("runs/*", "runs/*/*"),
        )
    )  # fmt: skip


def _train_then_resume(damage) -> object:
    """Custom driver: train the tiny config (1 epoch), damage its last.pt, then `train --resume` with 2 epochs."""

    def run(tmp: Path, invoke: Runner) -> Outcome:
        first = invoke(["train", "c.toml", "--no-export"])
        if first.code != 0:
            return first
        damage(tmp / "runs" / "tiny" / "last.pt")
        return invoke(["train", "c.toml", "--resume", "--no-export"])

    return run


for cid, damage in [
    ("garbage-last-pt", lambda p: p.write_bytes(b"not a checkpoint")),
    ("truncated-last-pt", lambda p: p.write_bytes(p.read_bytes()[:1000])),
    ("malicious-last-pt", lambda p: p.write_bytes(pickle.dumps({"model": _Evil()}))),
]:
    register(
        FuzzCase(
            f"train/resume-{cid}", "train", "configs", [], run=_train_then_resume(damage), check=_no_pwned,
            setup=lambda t: (_data(t), (t / "c.toml").write_text(to_toml(BASE))), timeout=120,
        )
    )  # fmt: skip

# --- train-batch: one failing config must not stop the others; the summary says which failed --------------------------


def _batch_setup(tmp: Path) -> None:
    _data(tmp)
    (tmp / "cfgs").mkdir()
    (tmp / "cfgs" / "a_syntax.toml").write_text("name = \n")
    (tmp / "cfgs" / "b_inf.toml").write_text(to_toml(_merge(BASE, {"name": "b", "optim.lr": math.inf})))
    (tmp / "cfgs" / "c_good.toml").write_text(to_toml(_merge(BASE, {"name": "c"})))
    (tmp / "cfgs" / "d_dotdot.toml").write_text(to_toml(_merge(BASE, {"name": ".."})))


def _batch_summary(o: Outcome) -> None:
    rows = {Path(r["config"]).name: r["status"] for r in json.loads((o.tmp / "summary.json").read_text())}
    assert rows.get("c_good.toml") == "ok", rows
    bad = [n for n in ("a_syntax.toml", "b_inf.toml", "d_dotdot.toml") if rows.get(n) == "ok"]
    assert not bad, f"hostile configs reported ok: {bad}"


register(
    FuzzCase(
        "train-batch/hostile-configs", "train-batch", "configs",
        ["train-batch", "cfgs", "--summary", "summary.json", "--set", "model.backbone=\"vgg_small\""],
        setup=_batch_setup, expect="clean_exit", check=_batch_summary, timeout=120,
    )
)  # fmt: skip
register(
    FuzzCase(
        "train-batch/empty-folder", "train-batch", "configs", ["train-batch", "cfgs"],
        setup=lambda t: (t / "cfgs").mkdir(),
    )
)  # fmt: skip
register(
    FuzzCase(
        "train-batch/folder-is-file", "train-batch", "configs", ["train-batch", "cfgs"],
        setup=lambda t: (t / "cfgs").write_text("x"),
    )
)  # fmt: skip
register(
    FuzzCase(
        "train-batch/summary-unwritable", "train-batch", "configs",
        ["train-batch", "cfgs", "--summary", "/dev/full"], setup=_batch_setup, timeout=120,
        note="the summary is written after every config has trained",
    )
)  # fmt: skip

# --- export: hostile run folders ------------------------------------------------------------------------------------


def _export(cid: str, files: dict[str, bytes | None], extra: tuple[str, ...] = (), **kw: object) -> None:
    """A run folder holding ``files`` (None: a directory of that name)."""

    def setup(tmp: Path) -> None:
        (tmp / "run").mkdir()
        for name, data in files.items():
            if data is None:
                (tmp / "run" / name).mkdir()
            else:
                (tmp / "run" / name).write_bytes(data)

    register(
        FuzzCase(
            f"export/run-{cid}", "export", "configs", ["export", "run", "--out", "model", *extra], setup=setup,
            check=_no_pwned, **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


_export("best-pt-garbage", {"best.pt": b"\x00garbage"})
_export("best-pt-empty", {"best.pt": b""})
_export("best-pt-malicious-pickle", {"best.pt": pickle.dumps({"model": _Evil()})})
_export("best-pt-directory", {"best.pt": None})
register(
    FuzzCase("export/run-is-file", "export", "configs", ["export", "run"], setup=lambda t: (t / "run").write_text(""))
)


def _trained_then(mutate) -> object:
    """Custom driver: train the tiny config (no export), damage the run folder, then export it."""

    def run(tmp: Path, invoke: Runner) -> Outcome:
        first = invoke(["train", "c.toml", "--no-export"])
        if first.code != 0:
            return first
        mutate(tmp / "runs" / "tiny")
        return invoke(["export", "runs/tiny", "--out", "model"])

    return run


def _ckpt_edit(edit) -> object:
    def mutate(run: Path) -> None:
        import torch

        ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
        edit(ck)
        torch.save(ck, run / "best.pt")

    return mutate


for cid, mutate in [
    ("split-json-garbage", lambda r: (r / "split.json").write_text("{oops")),
    ("history-json-garbage", lambda r: (r / "history.json").write_bytes(b"\xff\xfe")),
    ("trainer-json-list", lambda r: (r / "trainer.json").write_text("[1]")),
    ("checkpoint-config-missing", _ckpt_edit(lambda ck: ck.pop("config"))),
    ("checkpoint-config-no-model", _ckpt_edit(lambda ck: ck["config"].pop("model"))),
    ("checkpoint-classes-mismatch", _ckpt_edit(lambda ck: ck.__setitem__("classes", ["a", "b", "c"]))),
    ("checkpoint-input-size-string", _ckpt_edit(lambda ck: ck["config"]["data"].__setitem__("input_size", "16"))),
    ("checkpoint-weights-nan", _ckpt_edit(lambda ck: [t.fill_(float("nan")) for t in ck["model"].values()
                                                      if t.is_floating_point()])),
]:  # fmt: skip
    register(
        FuzzCase(
            f"export/trained-run-{cid}", "export", "configs", [], setup=lambda t: (_data(t), (t / "c.toml").write_text(
                to_toml(BASE))), run=_trained_then(mutate), timeout=120,
            note="a finished run folder, damaged, then exported",
        )
    )  # fmt: skip
