"""Small real inputs (cached once per session) and generators of hostile files, all cheap to make.

Real data comes from ``$FERKIT_DATA`` (default ``../shared/data`` beside the repository, as the other tests).
Nothing here imports ferkit.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("FERKIT_DATA", ROOT.parent / "shared" / "data"))
FER = DATA / "fer2013"
VIDEO = DATA / "videos" / "woman_talking.mp4"
CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]

_CACHE = Path(tempfile.mkdtemp(prefix="ferkit-fuzz-assets-"))


def fer_crop(cls: str = "happy", i: int = 0, split: str = "test") -> Path:
    """A real 48×48 grayscale FER2013 JPEG (read-only: copy it before handing it to the CLI)."""
    return sorted((FER / split / cls).iterdir())[i]


def copy_crop(dst: Path, cls: str = "happy", i: int = 0) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fer_crop(cls, i), dst)
    return dst


def crop_pixels(cls: str = "happy", i: int = 0) -> np.ndarray:
    from PIL import Image

    with Image.open(fer_crop(cls, i)) as im:
        return np.asarray(im.convert("L"))


def face_photo_array(cls: str = "happy", i: int = 3, scale: int = 3) -> np.ndarray:
    """A FER2013 crop padded and upscaled into a small RGB 'photo' the detector finds a face in."""
    import cv2

    gray = crop_pixels(cls, i)
    p = gray.shape[0] // 4
    big = cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE)
    big = cv2.resize(big, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)


def write_face_photo(dst: Path, cls: str = "happy", i: int = 3) -> Path:
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(face_photo_array(cls, i)).save(dst)
    return dst


def labelled_folder(root: Path, per_class: int = 2, classes: list[str] | None = None) -> Path:
    """``root/<class>/<file>`` with ``per_class`` real FER2013 test crops per class."""
    for c in classes or CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shutil.copyfile(fer_crop(c, i), root / c / f"{c}_{i}.jpg")
    return root


# --- images -------------------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def blank_png(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A valid all-zero PNG of any size, made without allocating the image (rows compressed one by one)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\0" + bytes(width * channels * bit_depth // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` but whose data is one byte (truncated/bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0"))
        + png_chunk(b"IEND", b"")
    )


def write_array(dst: Path, arr: np.ndarray, **kw: object) -> Path:
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(dst, **kw)
    return dst


def png16_of_crop(dst: Path, cls: str = "happy", i: int = 0) -> Path:
    """The crop as a 16-bit grayscale PNG (value × 257: the same picture at 16 bits)."""
    import cv2

    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), crop_pixels(cls, i).astype(np.uint16) * 257)
    return dst


def put_file(name: str, data: bytes):
    """A case setup that writes ``data`` to ``tmp/name`` (parents made)."""

    def setup(tmp: Path) -> None:
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    return setup


# --- videos -------------------------------------------------------------------------------------------------------


def write_video(frames: list[np.ndarray], path: Path, fps: int = 15, faststart: bool = False) -> Path:
    """Encode RGB frames (even sizes) as MPEG-4 in an MP4 (``faststart``: the index before the data)."""
    import av

    h, w = frames[0].shape[:2]
    opts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=opts) as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 800_000
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@functools.cache
def _talking_frames(seconds: float = 2.0, every: int = 2) -> tuple[np.ndarray, ...]:
    import av

    frames = []
    with av.open(str(VIDEO)) as c:
        for k, f in enumerate(c.decode(video=0)):
            if f.time > seconds:
                break
            if k % every == 0:
                rgb = f.to_ndarray(format="rgb24")
                frames.append(np.ascontiguousarray(rgb[::2, ::2]))  # 298×168
    return tuple(frames)


@functools.cache
def short_clip(faststart: bool = True) -> Path:
    """2 s of the shared talking-head video at 15 fps, half size (one face), as MP4. Read-only: copy it."""
    path = _CACHE / f"talk{'_fast' if faststart else ''}.mp4"
    return write_video(list(_talking_frames()), path, fps=15, faststart=faststart)


@functools.cache
def blank_clip() -> Path:
    """1 s of 64×48 gray frames at 10 fps (no face): the cheapest decodable video."""
    return write_video([np.full((48, 64, 3), 120, np.uint8)] * 10, _CACHE / "blank.mp4", fps=10)


@functools.cache
def long_clip() -> Path:
    """The short clip's 30 frames 20 times over: 40 s at 15 fps (600 frames, one face each), long enough that two
    processes started together both get to their output while the other is still writing it."""
    return write_video(list(_talking_frames()) * 20, _CACHE / "talk_long.mp4", fps=15)


def copy_clip(dst: Path, faststart: bool = True) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(short_clip(faststart), dst)
    return dst


def copy_blank(dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(blank_clip(), dst)
    return dst


@functools.cache
def audio_only_mp4() -> Path:
    """An MP4 with one AAC audio stream and no video (0.5 s of a tone)."""
    import av

    path = _CACHE / "audio_only.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(8000) / 16000
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for i in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, i : i + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)
    return path


# --- channels -----------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def voice_rows(n: int = 6, step: float = 0.5, label: str = "happy") -> list[dict]:
    return [{"timestamp": round(i * step, 3), "label": label, "confidence": 0.8} for i in range(n)]


def prob_rows(n: int = 6, step: float = 0.5) -> list[dict]:
    out = []
    for i in range(n):
        p = {"happy": 0.6, "sad": 0.3, "neutral": 0.1} if i % 3 else {"happy": 0.2, "sad": 0.7, "neutral": 0.1}
        out.append({"timestamp": round(i * step, 3), "probabilities": p})
    return out


def face_records(n: int = 6, step: float = 0.5, source: str = "clip.mp4") -> list[dict]:
    """ferkit analyze records (one face per frame) as a face channel."""
    recs = []
    for i in range(n):
        probs = dict.fromkeys(CLASSES, 0.05)
        probs["happy" if i % 2 else "neutral"] = 0.7
        recs.append(
            {
                "source": source, "frame_index": i * 15, "timestamp": round(i * step, 3), "face_id": 0,
                "box": [10.0, 10.0, 50.0, 50.0], "detection_score": 0.9, "alignment": "keypoints", "model": "ferkit",
                "emotion": max(probs, key=probs.get), "confidence": 0.7, "sentiment": "neutral",
                "probabilities": probs, "smoothed_emotion": None, "smoothed_probabilities": None,
            }
        )  # fmt: skip
    return recs


# --- model folders ------------------------------------------------------------------------------------------------


def model_folder(dst: Path, bundled: Path, card_edit: dict | None = None, drop: tuple[str, ...] = (),
                 calibration: object = "keep", link_onnx: bool = True) -> Path:  # fmt: skip
    """A copy of a bundled model folder with card keys replaced (``card_edit``) or removed (``drop``); the ONNX file
    is symlinked (cheap). ``calibration``: "keep" (copy the bundled one if any), None (none) or a JSON value/str."""
    dst.mkdir(parents=True, exist_ok=True)
    card = json.loads((bundled / "card.json").read_text())
    for k in ("training", "metrics", "alignment_choice", "alignment_choice_rotate20", "inference"):
        card.pop(k, None)  # keep the copy small
    card.update(card_edit or {})
    for k in drop:
        card.pop(k, None)
    (dst / "card.json").write_text(json.dumps(card, allow_nan=True))
    onnx = bundled / "model.onnx"
    if link_onnx:
        (dst / "model.onnx").symlink_to(onnx)
    else:
        shutil.copyfile(onnx, dst / "model.onnx")
    cal = bundled / "calibration.json"
    if calibration == "keep":
        if cal.is_file():
            shutil.copyfile(cal, dst / "calibration.json")
    elif calibration is not None:
        text = calibration if isinstance(calibration, str) else json.dumps(calibration, allow_nan=True)
        (dst / "calibration.json").write_text(text)
    return dst
