"""Synthetic ``speech_action`` faces: make them, look at them, and ask the bundled model what it sees.

    python benchmarks/speech_action_synth.py [--n 2000] [--out $TMPDIR/ferkit_speech_action]

Runs ``ferkit synth speech-action`` with the upper faces of FER2013 train and SFEW train (every emotion but neutral)
and the mouths of the talking clips of ``../shared/data/clips`` plus ``videos/woman_talking.mp4`` (never the
labelled evaluation clips), then classifies every composite and its upper-face original with the bundled model
(``--crops``, flip TTA as ``ferkit analyze`` does for stills): how often each is called the upper face's emotion, and
what the composites are called instead. Writes benchmarks/results/speech_action_synth.json and a contact sheet
(original | composite pairs) to docs/images/speech_action_sheet.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
#: Talking heads (not the audience, the laughing woman or the clips without a face).
TALKING = [
    *sorted((DATA / "clips").glob("edtalk_*.mp4")),
    *sorted((DATA / "clips").glob("styletalk_*.mp4")),
    DATA / "clips" / "pyfeat_single_face.mp4",
    DATA / "videos" / "woman_talking.mp4",
]


def labels_of(paths: list[Path]) -> list[str | None]:
    """The bundled model's label for each face crop (None: gated or unreadable)."""
    import ferkit

    recs = {r["source"]: r["emotion"] for r in ferkit.analyze(paths, crops=True)}
    from ferkit.analysis.records import source_name

    return [recs.get(source_name(p)) for p in paths]


def sheet(rows: list[dict], out: Path, root: Path, n: int = 24, side: int = 96) -> None:
    """A contact sheet of ``n`` (upper original | composite) pairs, six pairs per row."""
    tiles = []
    for r in rows[:n]:
        up = cv2.imread(r["upper"])
        h, w = up.shape[:2]
        s = min(h, w)
        up = up[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        comp = cv2.imread(str(root / r["file"]))
        tiles.append(np.hstack([cv2.resize(up, (side, side)), cv2.resize(comp, (side, side))]))
    while len(tiles) % 6:
        tiles.append(np.zeros_like(tiles[0]))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack([np.hstack(tiles[i : i + 6]) for i in range(0, len(tiles), 6)]))


def main() -> None:
    import csv

    from ferkit.curation.speech_action import SynthSettings, synthesize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "ferkit_speech_action"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    settings = SynthSettings(
        upper=[str(DATA / "fer2013" / "train"), str(DATA / "sfew" / "train")],
        speech=[str(p) for p in TALKING], classes=[], n=args.n, size=48, seed=args.seed,
    )  # fmt: skip
    t0 = time.perf_counter()
    summary = synthesize(settings, out)
    seconds = time.perf_counter() - t0
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    uppers = [Path(r["upper"]) for r in rows]
    composites = [out / r["file"] for r in rows]
    said_upper, said_comp = labels_of(uppers), labels_of(composites)
    truth = [r["upper_label"] for r in rows]
    per_class = {}
    for label in sorted(set(truth)):
        idx = [i for i, t in enumerate(truth) if t == label]
        per_class[label] = {
            "n": len(idx),
            "original_called_label": round(sum(said_upper[i] == label for i in idx) / len(idx), 3),
            "composite_called_label": round(sum(said_comp[i] == label for i in idx) / len(idx), 3),
            "composite_called": dict(Counter(str(said_comp[i]) for i in idx).most_common()),
        }
    agree = [i for i in range(len(rows)) if said_upper[i] == truth[i]]
    doc = {
        "command": f"python benchmarks/speech_action_synth.py --n {args.n} --seed {args.seed}",
        "made": len(rows),
        "seconds": round(seconds, 1),
        "speakers": summary.speakers,
        "skipped": summary.skipped,
        "donor_filter": [vars(d) for d in summary.donors],
        "original_called_label": round(len(agree) / len(rows), 3),
        "composite_called_label": round(sum(said_comp[i] == truth[i] for i in range(len(rows))) / len(rows), 3),
        "composite_called_label_where_original_was": round(
            sum(said_comp[i] == truth[i] for i in agree) / max(len(agree), 1), 3
        ),
        "composite_called": dict(Counter(str(x) for x in said_comp).most_common()),
        "per_class": per_class,
    }
    res = HERE / "results" / "speech_action_synth.json"
    res.write_text(json.dumps(doc, indent=1))
    sheet(rows, HERE.parent / "docs" / "images" / "speech_action_sheet.png", out)
    print(json.dumps({k: v for k, v in doc.items() if k not in ("donor_filter", "per_class")}, indent=1))
    print(res)


if __name__ == "__main__":
    main()
