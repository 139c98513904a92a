"""``extract-faces`` on real photos: faces kept per photo and why faces were dropped, with the default filters.

    python benchmarks/stock_extract.py [--every 2.0] [--per-clip 10]

Sets: every SFEW train photo (movie frames, 7 class folders) and frames of the clips in ../shared/data/clips
(one every ``--every`` seconds, at most ``--per-clip`` a clip, written as PNG first). Results:
benchmarks/results/stock_extract.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from ferkit.media.video import iter_video  # noqa: E402
from ferkit.stock.extract import ExtractOptions, extract_faces  # noqa: E402

KEYS = ("photos", "photos_with_a_face", "faces_detected", "faces_kept", "faces_per_photo", "dropped")
KEYS += ("photos_without_a_face_by_reason",)


def clip_frames(clips: Path, out: Path, every: float, per_clip: int) -> int:
    """Write one frame every ``every`` seconds (at most ``per_clip``) of each clip as PNG; returns how many."""
    n = 0
    for clip in sorted(p for p in clips.iterdir() if p.suffix.lower() in (".mp4", ".mov")):
        for k, frame in enumerate(iter_video(clip, fps=1.0 / every)):
            if k >= per_clip:
                break
            cv2.imwrite(str(out / f"{clip.stem}_{k:03d}.png"), cv2.cvtColor(frame.rgb(), cv2.COLOR_RGB2BGR))
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--per-clip", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "stock_extract.json"))
    args = ap.parse_args()
    data, opts, rows = Path(args.data), ExtractOptions(), {}
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp) / "clip_frames"
        frames.mkdir()
        clip_frames(data / "clips", frames, args.every, args.per_clip)
        for name, folder in (("sfew_train", data / "sfew" / "train"), ("clip_frames", frames)):
            t0 = time.perf_counter()
            rep = extract_faces(folder, Path(tmp) / f"faces_{name}", opts)
            rows[name] = {k: rep[k] for k in KEYS} | {"seconds": round(time.perf_counter() - t0, 1)}
            print(name, json.dumps(rows[name]), flush=True)
    result = {"command": " ".join(["python", *sys.argv]), "options": rep["options"], "results": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
