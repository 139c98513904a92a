"""Shared fixtures: real data from ../shared/data (required; CI has it) and fixtures built from it."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FERKIT_DATA", ROOT.parent / "shared" / "data"))
FER = DATA / "fer2013"
VIDEO = DATA / "videos" / "woman_talking.mp4"
CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if not (FER / "test").is_dir() or not VIDEO.is_file():
        raise pytest.UsageError(f"test data missing: expected {FER} and {VIDEO} (set FERKIT_DATA to its folder)")


def fer_files(split: str, per_class: int, classes: list[str] = CLASSES) -> list[Path]:
    """The first ``per_class`` files (sorted) of each class folder."""
    return [p for c in classes for p in sorted((FER / split / c).iterdir())[:per_class]]


def padded_photo(path: Path, scale: int = 4) -> np.ndarray:
    """A FER2013 crop made into a small 'photo': padded by a quarter of its size, upscaled, RGB."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    p = gray.shape[0] // 4
    big = cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE)
    big = cv2.resize(big, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)


@pytest.fixture(scope="session")
def model():
    from ferkit.models.loading import load_model

    return load_model("ferkit")


@pytest.fixture(scope="session")
def blazeface():
    from ferkit.faces.detectors import create_detector

    return create_detector("blazeface")


@pytest.fixture(scope="session")
def grid_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four FER2013 faces (happy, surprise, sad, angry) tiled 2×2 into one image: several faces in a photo."""
    tiles = [padded_photo(sorted((FER / "test" / c).iterdir())[3]) for c in ("happy", "surprise", "sad", "angry")]
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    path = tmp_path_factory.mktemp("grid") / "grid.png"
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def crops_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 14 real FER2013 test crops (2 per class), plus one non-image and one corrupt JPEG."""
    import shutil

    folder = tmp_path_factory.mktemp("crops")
    for p in fer_files("test", 2):
        shutil.copy(p, folder / f"{p.parent.name}_{p.name}")
    (folder / "notes.txt").write_text("not an image or video: ignored")
    (folder / "fake.png").write_text("not an image")
    (folder / "broken.jpg").write_bytes(fer_files("test", 1)[0].read_bytes()[:200])
    return folder


@pytest.fixture(scope="session")
def two_face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 s of the shared video placed twice side by side (two faces per frame), MPEG-4."""
    import av

    from ferkit.media.samples import write_video

    frames = []
    with av.open(str(VIDEO)) as c:
        for f in c.decode(video=0):
            if f.time > 3.0:
                break
            rgb = f.to_ndarray(format="rgb24")
            frames.append(np.hstack([rgb, rgb[:, ::-1]]))
    return write_video(frames, tmp_path_factory.mktemp("video") / "two_faces.mp4", fps=30)


@pytest.fixture(scope="session")
def blank_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of gray frames: a video without any face."""
    from ferkit.media.samples import write_video

    return write_video([np.full((240, 320, 3), 128, np.uint8)] * 10, tmp_path_factory.mktemp("blank") / "b.mp4", 10)
