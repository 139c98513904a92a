"""``ferkit synth speech-action``: synthetic ``speech_action`` faces — the upper face of an emotional face image over
the lower face of a neutral speaking frame (:mod:`ferkit.curation.composite`, :mod:`ferkit.curation.donors`).

Output: ``OUT/speech_action/<n>.png`` (the training class folder; gray when the upper face is gray) and
``OUT/manifest.csv`` (one row per composite: the upper image, its label and pose, the donor video, speaker, frame,
time, speaking probability and audio, the pose difference). ``OUT/synth.json`` holds the settings; a rerun with the
same settings continues where the last one stopped (each image is written atomically before its manifest row, and
each composite depends only on the seed and its position in the plan), other settings are refused.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkit.curation.composite import composite, fit_face
from ferkit.curation.donors import Donor, DonorStats, find_donors
from ferkit.errors import InputError
from ferkit.faces.landmarker import FaceLandmarker
from ferkit.labels.folders import LabelledImage, list_folder_dataset
from ferkit.media.files import atomic_write_bytes, atomic_write_text, check_out_dir
from ferkit.media.images import read_image
from ferkit.media.video import is_video

CLASS = "speech_action"
#: Upper-face classes taken by default: every emotion but neutral (a neutral face that speaks is not speech_action).
DEFAULT_CLASSES = ("angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")
FIELDS = (
    "file", "label", "upper", "upper_label", "upper_yaw", "upper_pitch", "donor_video", "speaker", "donor_frame",
    "donor_time", "donor_speaking", "donor_audio", "pose_distance",
)  # fmt: skip


@dataclass
class SynthSettings:
    """What a composite set depends on (a rerun must match)."""

    upper: list[str]
    speech: list[str]
    classes: list[str]
    n: int
    size: int
    seed: int
    fps: float = 12.5
    per_video: int = 150
    max_pose: float = 25.0


@dataclass
class SynthSummary:
    """What one run made and skipped."""

    made: int = 0
    resumed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, int] = field(default_factory=dict)
    donors: list[DonorStats] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _uppers(dirs: Sequence[Path], classes: Sequence[str]) -> list[LabelledImage]:
    classes = classes or DEFAULT_CLASSES
    items = [item for d in dirs for item in list_folder_dataset(Path(d)) if item.label in classes]
    if not items:
        raise InputError(f"no upper-face images of the classes {', '.join(classes)} in {', '.join(map(str, dirs))}")
    return items


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """The centred square of an image, resized to ``size`` (area interpolation down, cubic up)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    crop = image[y : y + side, x : x + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC)


def _done_rows(manifest: Path) -> list[dict[str, str]]:
    """Complete rows of an interrupted run's manifest (a torn last line is dropped)."""
    if not manifest.is_file():
        return []
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    return [{**r, "label": CLASS} for r in rows if all(r.get(k) not in (None, "") for k in ("file", "upper"))]


def _check_settings(out: Path, settings: SynthSettings) -> None:
    path = out / "synth.json"
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError(f"{path}: not a synth settings file; use another --out") from None
        if before != asdict(settings):
            changed = sorted(k for k in asdict(settings) if before.get(k) != asdict(settings)[k])
            raise InputError(f"{out}: made with other settings ({', '.join(changed)}); use another --out")
    else:
        atomic_write_text(path, json.dumps(asdict(settings), indent=1))


def synthesize(settings: SynthSettings, out: Path, tick: Callable[[str, int, int], None] | None = None) -> SynthSummary:
    """Make ``settings.n`` composites into ``out`` (resuming an interrupted run with the same settings)."""
    videos = [Path(v) for v in settings.speech]
    for v in videos:
        if not v.is_file() or not is_video(v):
            raise InputError(f"{v}: not a video file")
    uppers = _uppers([Path(d) for d in settings.upper], settings.classes)
    out = check_out_dir(out, inputs=[*settings.upper, *settings.speech])
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    summary = SynthSummary()
    donors, summary.donors = find_donors(
        videos, settings.fps, settings.per_video, settings.max_pose,
        tick=None if tick is None else (lambda name: tick(f"speaking frames of {name}", 0, settings.n)),
    )  # fmt: skip
    by_speaker: dict[str, list[Donor]] = {}
    for d in donors:
        by_speaker.setdefault(d.speaker, []).append(d)
    if not by_speaker:
        raise InputError("no speaking, emotion-free, frontal face frame in the --speech videos")
    speakers = sorted(by_speaker)
    manifest = out / "manifest.csv"
    done = _done_rows(manifest)
    used = {r["upper"] for r in done}
    summary.resumed = len(done)
    for r in done:
        summary.speakers[r["speaker"]] = summary.speakers.get(r["speaker"], 0) + 1
    atomic_write_text(manifest, "".join(_csv_line(row) for row in [dict(zip(FIELDS, FIELDS, strict=True)), *done]))
    plan = np.random.default_rng(settings.seed).permutation(len(uppers))
    folder = out / CLASS
    folder.mkdir(exist_ok=True)
    made = len(done)
    with FaceLandmarker() as landmarker, manifest.open("a", encoding="utf-8", newline="") as log:
        for position, k in enumerate(plan):
            if made >= settings.n:
                break
            item = uppers[int(k)]
            if str(item.path) in used:
                continue
            row = _one(landmarker, item, position, settings, by_speaker, speakers, folder, summary)
            if row is None:
                continue
            log.write(_csv_line(row))
            log.flush()
            made += 1
            summary.made += 1
            summary.speakers[row["speaker"]] = summary.speakers.get(row["speaker"], 0) + 1
            if tick is not None:
                tick("composites", made, settings.n)
    return summary


def _csv_line(row: dict[str, object]) -> str:
    buf = io.StringIO()
    csv.DictWriter(buf, FIELDS, lineterminator="\n").writerow(row)
    return buf.getvalue()


def _one(
    landmarker: FaceLandmarker,
    item: LabelledImage,
    position: int,
    settings: SynthSettings,
    by_speaker: dict[str, list[Donor]],
    speakers: list[str],
    folder: Path,
    summary: SynthSummary,
) -> dict[str, object] | None:
    """One composite for the upper image at ``position`` of the plan, written; its manifest row (None: skipped)."""
    try:
        image = read_image(item.path)
    except InputError:
        summary.skip("unreadable upper image")
        return None
    upper = fit_face(landmarker, image)
    if upper is None:
        summary.skip("landmarker found no upper face")
        return None
    if max(abs(upper.pose[0]), abs(upper.pose[1])) > settings.max_pose:
        summary.skip("upper face turned too far")
        return None
    rng = np.random.default_rng([settings.seed, position])  # depends only on the plan position: resumable
    speaker = speakers[position % len(speakers)]
    pool = by_speaker[speaker]
    dist = np.array([np.hypot(d.face.pose[0] - upper.pose[0], d.face.pose[1] - upper.pose[1]) for d in pool])
    j = int(rng.choice(np.argsort(dist, kind="stable")[:5]))
    donor = pool[j]
    result = composite(upper, donor.face)
    if result is None:
        summary.skip("faces could not be aligned or blended")
        return None
    name = f"{position:06d}_{item.label}.png"
    square = _square(result, settings.size)
    ok, png = cv2.imencode(".png", square if square.ndim == 2 else cv2.cvtColor(square, cv2.COLOR_RGB2BGR))
    if not ok:
        summary.skip("could not encode")
        return None
    atomic_write_bytes(folder / name, png.tobytes())
    return {
        "file": f"{CLASS}/{name}",
        "label": CLASS,  # the class, so the manifest is a labels_csv training source (group_column = speaker)
        "upper": str(item.path),
        "upper_label": item.label,
        "upper_yaw": upper.pose[1],
        "upper_pitch": upper.pose[0],
        "donor_video": donor.video,
        "speaker": donor.speaker,
        "donor_frame": donor.frame_index,
        "donor_time": round(donor.timestamp, 3),
        "donor_speaking": donor.speaking,
        "donor_audio": "" if donor.audio is None else int(donor.audio),
        "pose_distance": round(float(dist[j]), 2),
    }
