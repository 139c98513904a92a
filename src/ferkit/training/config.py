"""Training-run configuration: typed dataclasses read from YAML or TOML, validated key by key.

An unknown key, a wrong type or a value outside its choices is an ``InputError`` that names the key
(``optim.lrr: unknown key (known: ...)``). ``ferkit train CONFIG`` and ``ferkit train-batch DIR`` read these files;
``configs/`` in the repository has examples. No torch needed here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import InputError
from ferkit.models.base import TTA_MODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Allowed values of the string options (key path → choices).
CHOICES: dict[str, tuple[str, ...]] = {
    "data.sources.kind": ("folder", "fer2013_csv", "labels_csv", "weak_tags"),
    "data.sources.align": ("crop", "detect"),
    "data.channels": ("gray", "rgb"),
    "data.unknown_labels": ("error", "skip"),
    "optim.optimizer": ("sgd", "adamw"),
    "optim.schedule": ("onecycle", "cosine", "cosine_restarts", "constant"),
    "imbalance.sampler": ("none", "weighted"),
    "imbalance.class_weights": ("none", "inverse", "effective"),
    "imbalance.loss": ("ce", "focal"),
    "device": ("auto", "cpu", "cuda"),
    "distill.views": TTA_MODES,
}


@dataclass
class SourceConfig:
    """One data source; every source's images go through the same resize/alignment path."""

    path: str
    kind: str = "folder"
    name: str = ""  # defaults to the path's last component
    weight: float = 1.0  # relative share of this source in the sampled training stream
    labels: str | None = None  # labels CSV (labels_csv) or tags file (weak_tags)
    rules: str | None = None  # keyword rules TOML (weak_tags)
    file_column: str = "file"
    label_column: str = "label"
    group_column: str | None = None
    split_column: str | None = None
    group_pattern: str | None = None  # regex on file names whose first group is the subject id
    align: str = "crop"  # crop: the image is the face; detect: detect + align like photos in `ferkit analyze`
    splits: list[str] = field(default_factory=lambda: ["train", "validation"])  # source splits used for training

    @property
    def source_name(self) -> str:
        """The name samples carry: ``name``, or the path's last component."""
        return self.name or Path(self.path).name


@dataclass
class DataConfig:
    """Where the images come from and how they become model input."""

    sources: list[SourceConfig]
    taxonomy: str = "basic7"
    input_size: int = 48
    channels: str = "gray"
    mean: float = 0.5
    std: float = 0.5
    val_fraction: float = 0.1  # of samples without a split of their own
    drop_duplicates: bool = True  # drop train copies of validation/test images and repeated train files
    unknown_labels: str = "error"
    max_per_class: int | None = None  # deterministic subset for quick runs and ablations
    train_fraction: float = 1.0  # keep this share of each class's train samples (keeps the class imbalance)
    val_max_per_class: int | None = None
    split_from: str | None = None  # another run's split.json or a model folder ("ferkit"): same validation images
    test_dirs: list[str] = field(default_factory=list)  # `<class>/` folders scored at export


@dataclass
class ModelConfig:
    """Backbone from the registry in ``ferkit.training.backbones``; ``options`` go to its factory."""

    backbone: str = "vgg_small"
    dropout: float = 0.4
    options: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # start from a checkpoint (best.pt / last.pt) or a vgg_small model folder ("ferkit")
    # Fine-tuning: the parameter-name prefixes that train (e.g. ["features.5", "features.6", "head"]: resnet18_small's
    # last two stages and the head); every other weight stays as loaded. Empty: everything trains.
    trainable: list[str] = field(default_factory=list)


@dataclass
class OptimConfig:
    """Optimiser, schedule and regularisation."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.02
    head_lr_mult: float = 1.0  # head learning rate = lr × this
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_pct: float = 0.1  # onecycle: share of steps spent raising the learning rate
    restart_epochs: int = 10  # cosine_restarts: first cycle length (T_0)
    restart_mult: int = 1  # cosine_restarts: cycle growth (T_mult)
    label_smoothing: float = 0.1
    ema_decay: float = 0.999  # 0 disables the weight average
    amp: bool = True  # mixed precision where the hardware supports it (CUDA); ignored on CPU
    grad_clip: float = 5.0  # max gradient norm; 0 disables
    patience: int = 0  # early stopping: epochs without a better validation macro-F1 (0 = off)


@dataclass
class ImbalanceConfig:
    """Tools against class imbalance."""

    sampler: str = "none"  # weighted: draw classes ∝ (1/n_c) ** sampler_power
    sampler_power: float = 1.0
    class_weights: str = "inverse"
    class_weight_power: float = 0.5  # inverse weights (N / n_c) ** power
    effective_beta: float = 0.999  # effective-number weights (Cui et al. 2019)
    loss: str = "ce"
    focal_gamma: float = 2.0
    focal_from_epoch: int | None = None  # two-stage: class-weighted CE before this epoch, focal loss from it
    minority_pretrain_epochs: int = 0  # extra first epochs on the minority classes only
    minority: list[str] = field(default_factory=list)  # minority classes; empty = classes below the median count


@dataclass
class AugmentConfig:
    """Augmentation level 0–3 (``ferkit.training.augment.LEVELS``); minority classes may get a stronger level."""

    level: int = 2
    minority_level: int | None = None
    strength: float = 1.0  # multiplies every magnitude and probability except the flip's (0.5 = half as strong)


@dataclass
class DistillConfig:
    """Knowledge distillation from a trained teacher (another run's ``best.pt``): the loss becomes
    ``alpha · T² · KL(teacher ‖ student, both softened by T) + (1 − alpha) · the usual loss``."""

    teacher: str | None = None  # checkpoint path; None = no distillation
    alpha: float = 0.5
    temperature: float = 2.0
    views: str = "flip"  # the teacher's test-time augmentation: none | flip (image + mirror) | flip_shift (+ 4 shifts)
    shift: int = 2  # flip_shift: pixels of each circular shift (left, right, up, down), each also mirrored: 10 views
    offline: bool = False  # score every (unaugmented) train image once at the start instead of every batch online


@dataclass
class TrackingConfig:
    """MLflow tracking; the default store is ``<output>/mlflow.db`` with artifacts under ``<output>/mlartifacts``."""

    mlflow: bool = True
    uri: str | None = None
    experiment: str = "ferkit"


@dataclass
class RunConfig:
    """A whole training run."""

    name: str
    data: DataConfig
    output: str = "runs"  # the run folder is <output>/<name>
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    imbalance: ImbalanceConfig = field(default_factory=ImbalanceConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a type hint (str, int, float, bool, list[X], dict, X | None, dataclass)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_type(value, inner, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.")
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_check_type(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InputError(f"{key}: expected a table/mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value) if abs(value) < 1e300 else math.inf
    if (hint in (int, float) and isinstance(value, bool)) or not isinstance(value, hint):
        raise InputError(f"{key}: expected {hint.__name__}, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise InputError(f"{key}: must be a finite number, got {value!r}")
    if hint is int and abs(value) > 2**62:
        raise InputError(f"{key}: {value} is out of range")
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise InputError(f"{prefix.rstrip('.') or 'config'}: expected a table/mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise InputError(f"{prefix}{key}: unknown key (known: {', '.join(names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputError(f"{key}: missing required key")
            continue
        value = _check_type(raw[f.name], hints[f.name], key)
        choices = CHOICES.get(re.sub(r"\[\d+\]", "", key))
        if choices and value is not None and value not in choices:
            raise InputError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _validate(cfg: RunConfig) -> RunConfig:
    if not cfg.data.sources:
        raise InputError("data.sources: at least one source is needed")
    levels = [cfg.augment.level] + ([] if cfg.augment.minority_level is None else [cfg.augment.minority_level])
    if not all(0 <= lv <= 3 for lv in levels):
        raise InputError("augment.level / augment.minority_level: levels are 0–3")
    if not 0 < cfg.data.train_fraction <= 1:
        raise InputError(f"data.train_fraction: {cfg.data.train_fraction} must be in (0, 1]")
    if not 0 < cfg.data.val_fraction < 1:
        raise InputError(f"data.val_fraction: {cfg.data.val_fraction} must be between 0 and 1")
    for name, value in (("optim.epochs", cfg.optim.epochs), ("optim.batch_size", cfg.optim.batch_size)):
        if value < 1:
            raise InputError(f"{name}: must be at least 1")
    names = [src.source_name for src in cfg.data.sources]
    for i, (src, name) in enumerate(zip(cfg.data.sources, names, strict=True)):
        if names.count(name) > 1:
            raise InputError(f"data.sources[{i}].name: two sources are called {name!r}; give each a distinct `name`")
        if src.weight <= 0:
            raise InputError(f"data.sources[{i}].weight: must be positive, got {src.weight}")
        if not set(src.splits) <= {"train", "validation", "test"} or "train" not in src.splits:
            raise InputError(f"data.sources[{i}].splits: {src.splits} must include 'train' (of train/validation/test)")
        if src.group_pattern is not None:
            try:
                re.compile(src.group_pattern)
            except re.error as exc:
                raise InputError(f"data.sources[{i}].group_pattern: not a regular expression: {exc}") from None
            if _NESTED_QUANTIFIER.search(src.group_pattern):
                raise InputError(
                    f"data.sources[{i}].group_pattern: a repeated group that itself repeats (like (a+)+) can take "
                    "forever on long file names; rewrite it without nested quantifiers"
                )
    o, imb = cfg.optim, cfg.imbalance
    ranges = [
        ("optim.lr", 0 < o.lr <= 1e3),
        ("optim.momentum", 0 <= o.momentum < 1),
        ("optim.epochs", o.epochs <= 100_000),
        ("optim.batch_size", o.batch_size <= 1 << 20),
        ("data.mean", -1e3 <= cfg.data.mean <= 1e3),
        ("data.std", 1e-6 <= cfg.data.std <= 1e3),
        ("data.input_size", cfg.data.input_size <= 1024),
        ("imbalance.class_weight_power", 0 <= imb.class_weight_power <= 100),
        ("imbalance.focal_gamma", imb.focal_gamma <= 100),
        ("augment.strength", cfg.augment.strength <= 100),
        ("distill.temperature", cfg.distill.temperature <= 1e3),
        ("seed", 0 <= cfg.seed < 2**32),
        ("optim.label_smoothing", 0 <= o.label_smoothing < 1),
        ("optim.warmup_pct", 0 < o.warmup_pct < 1),
        ("optim.ema_decay", 0 <= o.ema_decay < 1),
        ("optim.restart_epochs", o.restart_epochs >= 1),
        ("optim.restart_mult", o.restart_mult >= 1),
        ("optim.grad_clip", o.grad_clip >= 0),
        ("optim.patience", o.patience >= 0),
        ("optim.head_lr_mult", o.head_lr_mult > 0),
        ("optim.weight_decay", o.weight_decay >= 0),
        ("imbalance.effective_beta", 0 <= imb.effective_beta < 1),
        ("imbalance.focal_gamma", imb.focal_gamma >= 0),
        ("imbalance.sampler_power", imb.sampler_power >= 0),
        ("imbalance.minority_pretrain_epochs", imb.minority_pretrain_epochs >= 0),
        ("imbalance.focal_from_epoch", imb.focal_from_epoch is None or imb.focal_from_epoch >= 0),
        ("data.std", cfg.data.std > 0),
        ("data.input_size", cfg.data.input_size >= 16),
        ("data.max_per_class", cfg.data.max_per_class is None or cfg.data.max_per_class > 0),
        ("data.val_max_per_class", cfg.data.val_max_per_class is None or cfg.data.val_max_per_class > 0),
        ("model.dropout", 0 <= cfg.model.dropout < 1),
        ("threads", cfg.threads >= 0),
        ("augment.strength", cfg.augment.strength >= 0),
        ("distill.alpha", 0 <= cfg.distill.alpha <= 1),
        ("distill.temperature", cfg.distill.temperature > 0),
        ("distill.shift", cfg.distill.shift >= 1),
    ]
    for key, ok in ranges:
        if not ok:
            raise InputError(f"{key}: value out of range (see docs/training.md)")
    for i, src in enumerate(cfg.data.sources):
        if src.weight > 1e6:
            raise InputError(f"data.sources[{i}].weight: {src.weight} is out of range (at most 1e6)")
    _check_name(cfg.name)
    return cfg


#: A group with a quantifier inside that is itself repeated: ``(a+)+``, ``(a|aa)*``, ``(\w+\s?){2,}``.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[+*}]|\|)(?:[^()\\]|\\.)*\)[+*{]")


def _check_name(name: str) -> None:
    """The run name is one plain folder name: no separators, not ``.``/``..``, printable, at most 200 characters."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or len(name) > 200:
        raise InputError(f"name: {name!r} must be a plain folder name (no /, not . or .., at most 200 characters)")
    if not name.isprintable():
        raise InputError(f"name: {name!r} holds control characters")


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Validate a parsed config (``InputError`` naming the first bad key)."""
    return _validate(_build(RunConfig, raw, ""))


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a ``.toml``, ``.yaml``/``.yml`` or ``.json`` run config; relative paths stay relative to the cwd.

    ``overrides`` maps dotted keys to values (``{"optim.epochs": 2}``), applied before validation.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        elif path.suffix == ".json":
            raw = json.loads(text)
        else:
            raise InputError(f"{path}: config must be .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot parse: {exc}".splitlines()[0]) from exc
    except (RecursionError, MemoryError):
        raise InputError(f"{path}: nested too deeply or too large to be a config") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise InputError(f"{path}: cannot parse: {exc}".splitlines()[0]) from exc
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    raw.setdefault("name", path.stem)
    apply_overrides(raw, overrides or {})
    try:
        return config_from_dict(raw)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc


def apply_overrides(raw: dict, overrides: dict[str, object]) -> dict:
    """Set ``--set a.b=value`` overrides in a raw config mapping (in place); ``InputError`` if a parent is no table."""
    for dotted, value in overrides.items():
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {dotted}: {p} is not a table")
        node[last] = value
    return raw
