"""Finding models by name: the bundled folders under ``ferkit/assets/models``, backends that register a loader
(the optional ``fer`` package), model folders by path and ONNX spec files (``*.json``).

``load_model("ferkit")`` loads the bundled model; any folder path works too; ``name:taxonomy`` (e.g.
``ferkit-extended:basic7``) sees a model through a smaller taxonomy (:mod:`ferkit.models.views`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ferkit.errors import ModelError
from ferkit.models.base import AU_WEIGHTS_FILE, EmotionModel, OnnxModel

#: The bundled model folders (data, not code: ``ferkit/assets/models/<name>/{model.onnx,card.json}``).
BUNDLED_DIR = Path(str(resources.files("ferkit").joinpath("assets/models")))

#: The model ``analyze``, ``evaluate``, ``mine``, ``corpus run`` and the Python API use when none is named.
DEFAULT_MODEL = "ferkit"

#: Named models: name -> folder. Backends of other kinds (e.g. the ``fer`` package) register a loader instead.
MODEL_FOLDERS: dict[str, Path] = {
    "ferkit": BUNDLED_DIR / "ferkit",
    "ferkit-wild": BUNDLED_DIR / "ferkit-wild",  # v1 fine-tuned on FER2013 + SFEW + CK+ (docs/training.md)
    "ferkit-wild2": BUNDLED_DIR / "ferkit-wild2",  # ferkit + its weights fine-tuned on film/posed faces, one graph
    "ferkit-gate": BUNDLED_DIR / "ferkit-gate",
    "ferkit-gate-hard": BUNDLED_DIR / "ferkit-gate-hard",  # clear emotion vs unclear, on ferkit-extended's features
    "ferkit-au": BUNDLED_DIR / "ferkit-au",  # emotion from action units (docs/aus.md)
    "ferkit-extended": BUNDLED_DIR / "ferkit-extended",  # extended12 incl. speech_action (docs/speech_action.md)
}
MODEL_LOADERS: dict[str, Callable[[int], EmotionModel]] = {}  # name -> loader(threads)


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL, threads: int = 0, calibration: bool | str | Path = True
) -> EmotionModel:
    """Load a registered model by name, a model folder by path, or an ONNX spec file (``*.json``, see
    :mod:`ferkit.models.spec`).

    ``threads``: onnxruntime intra-op threads (0: all cores; analysis uses 1 because it runs the model beside
    decoding, see ``pipeline``). ``calibration``: ``True`` applies the folder's ``calibration.json`` if there is
    one, ``False`` none, a path that file; a calibration fitted for other weights is refused.
    """
    from ferkit.models.calibration import SIDECAR, Calibration

    key = str(name_or_path)
    base, _, view = key.rpartition(":")
    if base and view and not Path(key).exists():  # "model:taxonomy": the model through a smaller taxonomy
        return _view(base, view, threads, calibration)
    if key in MODEL_LOADERS:
        model = MODEL_LOADERS[key](threads)
    elif key.endswith(".json") and Path(key).is_file():
        from ferkit.models.spec import load_spec

        model = load_spec(key, threads)
    else:
        folder = MODEL_FOLDERS.get(key, Path(key))
        if not folder.is_dir():
            known = ", ".join(sorted({*MODEL_FOLDERS, *MODEL_LOADERS}))
            raise ModelError(
                f"no model named or found at {key!r} (known names: {known}; or give a model folder or a spec .json)"
            )
        model = _folder_model(folder, threads)
    if calibration is True:
        sidecar = getattr(model, "folder", None)
        if sidecar is not None and (Path(sidecar) / SIDECAR).is_file():
            model.calibrate_with(Calibration.load(Path(sidecar) / SIDECAR))
    elif calibration not in (False, None):
        model.calibrate_with(Calibration.load(Path(calibration)))
    return model


def _view(base: str, view: str, threads: int, calibration: bool | str | Path) -> EmotionModel:
    """``base`` loaded as usual, seen through the taxonomy ``view`` (see :mod:`ferkit.models.views`)."""
    from ferkit.errors import InputError
    from ferkit.labels.taxonomy import load_taxonomy
    from ferkit.models.views import ClassView

    inner = load_model(base, threads, calibration)
    try:
        classes = load_taxonomy(view).classes
    except InputError as exc:
        raise ModelError(f"{base}:{view}: {exc}") from None
    return ClassView(inner, classes, view)


def _folder_model(folder: Path, threads: int) -> EmotionModel:
    """An ONNX model folder, or an AU emotion model folder (it holds ``au_emotion.json``; its modules, and
    MediaPipe with them, are imported only then)."""
    if (folder / AU_WEIGHTS_FILE).is_file():
        from ferkit.models.au_emotion import AuEmotionModel

        return AuEmotionModel(folder)
    return OnnxModel(folder, threads)


def _load_fer(threads: int) -> EmotionModel:
    """The optional ``fer`` backend, imported only when asked for (see :mod:`ferkit.models.fer`)."""
    from ferkit.models.fer import load_fer

    return load_fer(threads)


MODEL_LOADERS["fer"] = _load_fer
