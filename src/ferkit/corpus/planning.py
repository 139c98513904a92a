"""What a corpus run still has to do: every video of the manifest is hashed (cached), looked at once (header), split
into segments when it is long, and checked against the parts already in the run folder.

A video's key is the SHA-256 of the run's settings, its content and, for a long video, its segment length: a part
stamped with that key is finished and skipped. A long video (``--every`` sampling, longer than ``--segment-minutes``)
is split into segments of whole multiples of ``--every`` frames, so each segment samples exactly the frames a
whole-video pass samples there; each segment is a task with its own key (the video's key and its frames), work file
and part in ``.work/``, and the video's part is made from its segments' parts once all are finished.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ferkit.corpus.jobs import RunSpec, Segment, VideoJob
from ferkit.corpus.manifest import Manifest
from ferkit.corpus.parts import RECORDS, arrow_type, part_meta, relabel_part, row_stamp
from ferkit.errors import InputError
from ferkit.media.files import atomic_write_text, read_json_file, source_identity
from ferkit.media.video import VideoInfo, video_info

WORK = ".work"


@dataclass
class VideoPlan:
    """One video still to do: its job (key and part), its segments when it is long, and the tasks left to run (the
    video itself, or its unfinished segments: none when every segment is finished but not merged yet)."""

    job: VideoJob
    segments: list[VideoJob] = field(default_factory=list)
    todo: list[VideoJob] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Content hashes and header facts of the videos by resolved path, size and mtime (``.work/hashes.json``): a
    rerun neither hashes nor opens a file that did not change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        doc = read_json_file(path, "hash cache", 64 << 20) if path.is_file() else {}
        self.entries: dict[str, Any] = doc if isinstance(doc, dict) else {}
        self.changed = False

    def lookup(self, file: Path) -> tuple[str, VideoInfo]:
        """``(sha256, header facts)`` of ``file``; ``OSError`` when it cannot be read, ``InputError`` when it does
        not open as a video."""
        ident = source_identity(file)
        stamp = [ident["size"], ident["mtime_ns"]]
        hit = self.entries.get(str(ident["path"]))
        digest, info = None, None
        if isinstance(hit, list) and len(hit) >= 2 and hit[0] == stamp and isinstance(hit[1], str):
            digest = hit[1]
            try:
                info = VideoInfo(**hit[2]) if len(hit) > 2 and isinstance(hit[2], dict) else None
            except TypeError:  # an entry of another shape: look again
                info = None
        if digest is not None and info is not None:
            return digest, info
        info = info or video_info(file)  # before hashing: a file that is no video is not read whole
        digest = digest or _sha256(file)
        self.entries[str(ident["path"])] = [stamp, digest, asdict(info)]
        self.changed = True
        return digest, info

    def save(self) -> None:
        if self.changed:
            atomic_write_text(self.path, json.dumps(self.entries))


def segment_length(info: VideoInfo, every: int | None, minutes: float) -> int | None:
    """Frames per segment (a multiple of ``every``) when the video is longer than ``minutes``, else None."""
    if not every or minutes <= 0 or info.fps <= 0:
        return None
    length = max(every, math.ceil(minutes * 60 * info.fps / every) * every)
    return length if _frames(info) > length else None


def _frames(info: VideoInfo) -> int:
    return info.frames or math.ceil((info.duration or 0.0) * info.fps)


def segments_of(info: VideoInfo, length: int, index_file: Path) -> list[Segment]:
    """The segments of a video: ``length`` frames each, the last one open-ended (a header that counts too few
    frames loses none; one that counts too many leaves an empty last segment)."""
    count = -(-_frames(info) // length)
    out = []
    for i in range(count):
        start, stop = i * length, None if i == count - 1 else (i + 1) * length
        end_s = stop / info.fps if stop is not None else info.duration or _frames(info) / info.fps
        out.append(Segment(i, count, start, stop, start / info.fps, end_s, index_file))
    return out


def _fail(summary, log, video_id: str, error: str) -> None:
    summary.failed.append((video_id, error))
    log.write("failed", video_id=video_id, error=error, attempt=0)


def plan(manifest: Manifest, out: Path, spec: RunSpec, settings: dict[str, Any], log, summary) -> list[VideoPlan]:
    """The videos still to do; finished ones go to ``summary.skipped`` (their manifest columns rewritten when the row
    changed), missing and unreadable files to ``summary.failed``."""
    column_types = {c: arrow_type([v.columns.get(c) for v in manifest.videos]) for c in manifest.columns}
    hashes = HashCache(out / WORK / "hashes.json")
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    minutes = spec.segmenting()
    work_files = [f.name for f in (out / WORK).iterdir()]
    plans = []
    for v in manifest.videos:
        if not v.file.is_file():
            _fail(summary, log, v.video_id, f"{v.path}: no such video file")
            continue
        try:
            digest, info = hashes.lookup(v.file)
        except OSError as e:
            _fail(summary, log, v.video_id, f"{v.path}: cannot read ({e.strerror or e})")
            continue
        except InputError as e:
            _fail(summary, log, v.video_id, str(e))
            continue
        length = segment_length(info, spec.every, minutes)
        split = "" if length is None else f":segments of {length} frames"
        key = hashlib.sha256(f"{settings_hash}:{digest}{split}".encode()).hexdigest()
        stem = f"{v.video_id}-{key[:16]}"
        job = VideoJob(
            v, key, digest, out / WORK / f"{stem}.jsonl", out / RECORDS / f"{v.video_id}.parquet", spec,
            column_types, info.duration,
        )  # fmt: skip
        meta = part_meta(job.part)
        finished = meta is not None and meta.get("key") == key
        mine = re.compile(rf"{re.escape(v.video_id)}-[0-9a-f]{{16}}\..+")
        for name in work_files:  # work of this video's other content or settings (or of a finished video)
            if mine.fullmatch(name) and (finished or not name.startswith(f"{stem}.")):
                (out / WORK / name).unlink(missing_ok=True)
        if finished:
            if meta.get("row") != row_stamp(job):  # type: ignore[union-attr]
                relabel_part(job)
            summary.skipped.append(v.video_id)
            continue
        p = VideoPlan(job)
        if length is None:
            p.todo = [job]
        else:
            for s in segments_of(info, length, out / WORK / f"{stem}.index.npz"):
                seg_key = hashlib.sha256(f"{key}:segment {s.label} frames {s.start}-{s.stop}".encode()).hexdigest()
                name = f"{stem}.s{s.number:04d}"
                seg = VideoJob(
                    v, seg_key, digest, out / WORK / f"{name}.jsonl", out / WORK / f"{name}.parquet", spec,
                    column_types, info.duration, s,
                )  # fmt: skip
                p.segments.append(seg)
                if (part_meta(seg.part) or {}).get("key") != seg_key:
                    p.todo.append(seg)
        plans.append(p)
    hashes.save()
    return plans
