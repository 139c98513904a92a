"""``ferkit pull`` and ``ferkit extract-faces``: a missing, wrong or revoked API key, malformed API answers, a server
that stays down, a full disk during a download, broken pull configs and manifests, non-images among the photos,
bad filter values, an output inside the input. The API is the offline replay server (``ferkit.stock.replay``)
answering the recorded exchanges in tests/fixtures/stock; its key must never reach stdout, stderr or a file."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .conftest import CLI_MODULE, package_src
from .inputs import DATA, fer_crop
from .registry import FuzzCase, Outcome, Runner, register

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stock"
KEY = "fuzz-replay-key-7d1e"
CONFIG = '[classes]\nhappy = ["happy smiling"]\nsad = ["sad face"]\n'
SFEW_HAPPY = DATA / "sfew" / "train" / "happy"


@contextlib.contextmanager
def _server(env: dict[str, str]) -> Iterator[str]:
    """The replay server's base URL, with ``env`` set (and every *_API_KEY unset otherwise) for the run."""
    from ferkit.stock.replay import ReplayServer, load_recorded

    saved = {k: v for k, v in os.environ.items() if k.endswith("_API_KEY")}
    for k in saved:
        del os.environ[k]
    os.environ.update(env)
    try:
        with ReplayServer(DATA, key=KEY, recorded=load_recorded(sorted(FIXTURES.glob("*.json")))) as srv:
            yield srv.base_url
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)


def _pull(
    source: str, env: dict[str, str], config: str = "c.toml", out: str = "raw"
) -> Callable[[Path, Runner], Outcome]:
    def run(tmp: Path, invoke: Runner) -> Outcome:
        with _server(env) as base:
            o = invoke(["pull", source, "--config", config, "--out", "raw", "--base-url", base])
        for f in tmp.rglob("*"):
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f"the API key is in {f}"
        assert KEY not in o.stdout + o.stderr and "secret" not in o.stdout + o.stderr, "the API key was printed"
        return o

    return run


def _write(files: dict[str, str]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)

    return setup


def _pulled(o: Outcome) -> None:
    man = json.loads((o.tmp / "raw" / "manifest.json").read_text())
    assert len(man["images"]) == 5 and len(man["skipped"]) == 1, (len(man["images"]), man["skipped"])
    assert not [p for p in (o.tmp / "raw").rglob("*.tmp")], "a temporary file was left"


PEXELS = {"PEXELS_API_KEY": KEY}
for cid, source, env, files, expect, match, check in [
    ("ok-with-faults", "pexels", PEXELS, {"c.toml": CONFIG}, "ok", None, _pulled),
    ("missing-key", "pexels", {}, {"c.toml": CONFIG}, "usage_error", "PEXELS_API_KEY", None),
    ("blank-key", "pixabay", {"PIXABAY_API_KEY": "  "}, {"c.toml": CONFIG}, "usage_error", "PIXABAY_API_KEY", None),
    ("revoked-key", "pexels", {"PEXELS_API_KEY": "revoked-key"}, {"c.toml": CONFIG}, "usage_error", "403", None),
    ("wrong-key", "pexels", {"PEXELS_API_KEY": "secret-wrong"}, {"c.toml": CONFIG}, "usage_error", "401", None),
    ("wrong-key-pixabay", "pixabay", {"PIXABAY_API_KEY": "secret-x"}, {"c.toml": CONFIG}, "usage_error", "400", None),
    ("malformed-answer", "pexels", PEXELS, {"c.toml": '[classes]\nx = ["broken"]\n'}, "usage_error", "malformed", None),
    ("server-down", "pexels", PEXELS, {"c.toml": 'retries = 1\n[classes]\nx = ["down"]\n'}, "usage_error", "503", None),
    ("unknown-source", "flickr", PEXELS, {"c.toml": CONFIG}, "usage_error", "unknown source", None),
    ("config-syntax", "pexels", PEXELS, {"c.toml": "[classes\n"}, "usage_error", "TOML", None),
    ("config-no-classes", "pexels", PEXELS, {"c.toml": "per_query = 3\n"}, "usage_error", "classes", None),
    ("config-typo", "pexels", PEXELS, {"c.toml": "per_qeury = 3\n" + CONFIG}, "usage_error", "unknown key", None),
    ("config-zero-limit", "pexels", PEXELS, {"c.toml": "per_query = 0\n" + CONFIG}, "usage_error", "per_query", None),
    ("config-nan-wait", "pexels", PEXELS, {"c.toml": "max_wait_s = nan\n" + CONFIG}, "usage_error", "max_wait", None),
    ("config-bool-limit", "pexels", PEXELS, {"c.toml": "per_page = true\n" + CONFIG}, "usage_error", "per_page", None),
    ("config-empty-query", "pexels", PEXELS, {"c.toml": '[classes]\nhappy = [" + "]\n'}, "usage_error", "empty", None),
    ("config-yaml-list", "pexels", PEXELS, {"c.yaml": "- a\n- b\n"}, "usage_error", "mapping", None),
    ("config-other-suffix", "pexels", PEXELS, {"c.json": "{}"}, "usage_error", ".toml", None),
    ("damaged-manifest", "pexels", PEXELS, {"c.toml": CONFIG, "raw/manifest.json": "{no"}, "usage_error", "JSON", None),
    ("foreign-manifest", "pexels", PEXELS, {"c.toml": CONFIG, "raw/manifest.json": "[]"}, "usage_error", "manifest",
     None),
    ("out-is-a-file", "pexels", PEXELS, {"c.toml": CONFIG, "raw": "x"}, "usage_error", "not a folder", None),
]:  # fmt: skip
    config = next(iter(n for n in files if n.startswith("c.")))
    register(
        FuzzCase(
            f"pull/{cid}", "pull", "stock", [], setup=_write(files), expect=expect, check=check, error_match=match,  # type: ignore[arg-type]
            run=_pull(source, env, config), mutable=("raw/*",), timeout=60,
        )
    )  # fmt: skip


def _disk_full(tmp: Path, invoke: Runner) -> Outcome:
    """The pull in a child process whose files may not grow past 4 kB: the first image write fails (EFBIG)."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(package_src()), *filter(None, [env.get("PYTHONPATH")])])
    with _server({}) as base:
        start = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", CLI_MODULE, "pull", "pexels", "--config", "c.toml", "--out", "raw",
             "--base-url", base],
            capture_output=True, text=True, cwd=tmp, env={**env, "PEXELS_API_KEY": KEY}, preexec_fn=limits, timeout=60,
        )  # fmt: skip
    left = [p.name for p in (tmp / "raw").rglob("*") if p.is_file() and p.name != "manifest.json"]
    assert not left, f"files kept after the disk filled: {left}"
    return Outcome(res.returncode, res.stdout, res.stderr, time.monotonic() - start, tmp)


register(
    FuzzCase(
        "pull/disk-full-mid-download", "pull", "stock", [], setup=_write({"c.toml": CONFIG}), run=_disk_full,
        error_match="too large", mutable=("raw/*",), note="RLIMIT_FSIZE stands for a full disk",
    )
)  # fmt: skip


# --- extract-faces -------------------------------------------------------------------------------------------------


def _photos(tmp: Path) -> None:
    (tmp / "photos").mkdir()
    shutil.copy(sorted(SFEW_HAPPY.iterdir())[0], tmp / "photos" / "frame.png")
    (tmp / "photos" / "fake.jpg").write_text("<html>not an image</html>\n")
    shutil.copy(fer_crop("happy", 0), tmp / "photos" / "crop.jpg")


def _extracted(o: Outcome) -> None:
    rep = json.loads((o.tmp / "faces" / "report.json").read_text())
    assert rep["photos"] == 3 and rep["dropped"].get("unreadable") == 1, rep
    assert rep["faces_kept"] == len(list((o.tmp / "faces" / "faces").iterdir())) >= 1, rep


def _manifest_missing_file(tmp: Path) -> None:
    (tmp / "raw").mkdir()
    rec = {"file": "images/0123456789abcdef0123.jpg", "queries": [{"source": "pexels", "query": "x", "class": "x"}]}
    man = {"format": "ferkit-stock-raw/1", "classes": {"x": ["x"]}, "counts": {}, "progress": {},
           "images": {"0123456789abcdef0123": {**rec, "hits": []}}, "seen": {}, "skipped": []}  # fmt: skip
    (tmp / "raw" / "manifest.json").write_text(json.dumps(man))


def _missing_dropped(o: Outcome) -> None:
    rep = json.loads((o.tmp / "faces" / "report.json").read_text())
    assert rep["photos"] == 1 and rep["dropped"] == {"unreadable": 1} and rep["faces_kept"] == 0, rep


for cid, setup, args, expect, match, check in [
    ("photos-with-a-non-image", _photos, ["photos"], "ok", None, _extracted),
    ("manifest-file-missing", _manifest_missing_file, ["raw"], "ok", None, _missing_dropped),
    ("missing-folder", None, ["nowhere"], "usage_error", "not a folder", None),
    ("raw-is-a-file", _write({"raw": "x"}), ["raw"], "usage_error", "not a folder", None),
    ("empty-folder", _write({"raw/notes.txt": "x"}), ["raw"], "usage_error", "no images", None),
    ("damaged-manifest", _write({"raw/manifest.json": "{"}), ["raw"], "usage_error", "JSON", None),
    ("out-inside-input", _photos, ["photos", "--out", "photos/faces"], "usage_error", "inside the input", None),
    ("multiple-bogus", _photos, ["photos", "--multiple", "biggest"], "usage_error", "--multiple", None),
    ("min-score-nan", _photos, ["photos", "--min-score", "nan"], "usage_error", "--min-score", None),
    ("size-zero", _photos, ["photos", "--size", "0"], "usage_error", "--size", None),
    ("sharpness-negative", _photos, ["photos", "--min-sharpness", "-1"], "usage_error", "--min-sharpness", None),
    ("unknown-detector", _photos, ["photos", "--detector", "yolo"], "usage_error", "detector", None),
]:  # fmt: skip
    argv = ["extract-faces", *args, *([] if "--out" in args else ["--out", "faces"])]
    register(
        FuzzCase(
            f"extract-faces/{cid}", "extract-faces", "stock", argv, setup=setup, expect=expect, check=check,  # type: ignore[arg-type]
            error_match=match, timeout=120,
        )
    )  # fmt: skip


# --- model.trainable (the recipe's fine-tuning switch) in training configs -----------------------------------------


def _register_trainable() -> None:
    from .cases_configs import _cfg

    _cfg("trainable-names-nothing", {"model.trainable": ["stage9"]}, error_match="model.trainable")
    _cfg("trainable-not-a-list", {"model.trainable": "head"}, error_match="model.trainable")
    _cfg("trainable-head-only", {"model.trainable": ["head"]}, expect="ok")


_register_trainable()
