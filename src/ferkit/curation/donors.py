"""Mouth donors for ``speech_action`` composites: frames of real talking video where the face is speaking and its
lower face shows no emotion.

A frame qualifies when ``ferkit analyze --aus`` calls the face speaking (the visual speech detector, P ≥ 0.5), the
clip's audio says voice where the clip has an audio stream (energy voice activity, :mod:`ferkit.media.audio`), none
of the emotion AUs 6, 9, 12 and 15 is present, and the head is within ``max_pose`` degrees of frontal. The mouths
are therefore real speaking mouths selected by audio and vision; no phoneme or viseme model is involved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.analysis.setup import make_analyzer
from ferkit.curation.composite import Fitted, fit_face
from ferkit.faces.aus import au_crop
from ferkit.faces.landmarker import FaceLandmarker
from ferkit.media.audio import activity_at, audio_vad
from ferkit.media.video import iter_video
from ferkit.models.loading import DEFAULT_MODEL

#: AUs whose presence marks an emotional lower face (cheek raiser, nose wrinkler, lip-corner puller and depressor).
EMOTION_AUS = ("AU06", "AU09", "AU12", "AU12_L", "AU12_R", "AU15")


@dataclass(frozen=True)
class Donor:
    """One speaking frame: where it comes from and its fitted face."""

    video: str
    speaker: str
    frame_index: int
    timestamp: float
    speaking: float
    audio: bool | None  # voice activity at the frame (None: the clip has no audio stream)
    face: Fitted


@dataclass
class DonorStats:
    """How one video's face frames were filtered (counts of face records)."""

    video: str
    faces: int = 0
    speaking: int = 0
    no_emotion_aus: int = 0
    audio_voice: int | None = None
    sampled: int = 0  # spread evenly, at most ``per_video``
    used: int = 0  # fitted again and within ``max_pose`` of frontal


def speaker_of(video: Path | str) -> str:
    """The speaker key of a clip: its file name without a trailing clip number (``styletalk_Obama_clip2`` →
    ``styletalk_Obama``)."""
    return re.sub(r"_clip_?\d+$", "", re.sub(r"_short$", "", Path(video).stem)) or Path(video).stem


def find_donors(
    videos: Sequence[Path],
    fps: float = 12.5,
    per_video: int = 150,
    max_pose: float = 25.0,
    tick: Callable[[str], None] | None = None,
) -> tuple[list[Donor], list[DonorStats]]:
    """The donor frames of ``videos`` (at most ``per_video`` each, evenly spread) and per-video filter counts."""
    donors: list[Donor] = []
    stats: list[DonorStats] = []
    analyzer = make_analyzer(DEFAULT_MODEL, AnalyzeOptions(fps=fps, aus=True))
    with FaceLandmarker() as landmarker:
        for video in videos:
            if tick is not None:
                tick(Path(video).name)
            st = DonorStats(str(video))
            stats.append(st)
            records = [r.to_dict() for r in analyzer.iter_source(Path(video))]
            records = [r for r in records if r["face_id"] is not None and r["aus"]]
            st.faces = len(records)
            records = [r for r in records if (r["speaking"] or 0.0) >= 0.5]
            st.speaking = len(records)
            records = [r for r in records if all(r["aus"][k] < 0.5 for k in EMOTION_AUS)]
            st.no_emotion_aus = len(records)
            vad = audio_vad(video)
            if vad is not None:
                voice = activity_at(vad, np.array([r["timestamp"] for r in records], np.float64))
                records = [r for r, v in zip(records, voice, strict=True) if v]
                st.audio_voice = len(records)
            if len(records) > per_video:
                keep = np.unique(np.linspace(0, len(records) - 1, per_video).round().astype(int))
                records = [records[i] for i in keep]
            wanted = {r["frame_index"]: r for r in records}
            st.sampled = len(wanted)
            for frame in iter_video(Path(video), fps):
                rec = wanted.get(frame.index)
                if rec is None:
                    continue
                face = fit_face(landmarker, au_crop(frame.rgb(), rec["box"]), pad=0.0)
                if face is None or max(abs(face.pose[0]), abs(face.pose[1])) > max_pose:
                    continue
                st.used += 1
                audio = True if vad is not None else None
                donors.append(
                    Donor(str(video), speaker_of(video), frame.index, rec["timestamp"], rec["speaking"], audio, face)
                )
    return donors, stats
