"""How often each hard-case rule (and ``speech_action``) fires: per clip of ``clips/``, and per labelled emotion on
FER2013 test (stills: ``--crops --aus``, so rules needing speech never fire there).

    python benchmarks/hardcase_rates.py [--fps 5] [--fer-per-class 0]

``--fer-per-class N`` takes the first N test images of each class (0: all 7,178). Prints two Markdown tables (rule ×
clip, rule × emotion: share of face records on which the rule fires) and writes
benchmarks/results/hardcase_rates.json.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def rates(records: list[dict], codes: list[str]) -> dict[str, float]:
    faces = [r for r in records if r.get("aus") is not None]
    if not faces:
        return {}
    hits = Counter(c for r in faces for c in r["hard_case_rules"])
    out = {c: round(hits[c] / len(faces), 3) for c in codes}
    out["speech_action"] = round(sum(bool(r["speech_action"]) for r in faces) / len(faces), 3)
    out["any rule"] = round(sum(bool(r["hard_case_rules"]) for r in faces) / len(faces), 3)
    out["faces"] = len(faces)
    return out


def table(rows: dict[str, dict[str, float]], codes: list[str]) -> str:
    cols = list(rows)
    lines = ["| rule | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for code in [*codes, "speech_action", "any rule", "faces"]:
        cells = [
            str(rows[c].get(code, "–")) if code == "faces" else f"{rows[c].get(code, 0):.2f}" if rows[c] else "–"
            for c in cols
        ]
        lines.append(f"| {code} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    import ferkit
    from ferkit.analysis.hardcases import RuleSet
    from ferkit.faces.aus import AU_KEYS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--fer-per-class", type=int, default=0)
    args = ap.parse_args()
    codes = [r.code for r in RuleSet.load(None, list(AU_KEYS)).rules]
    clips: dict[str, dict[str, float]] = {}
    for clip in sorted((DATA / "clips").iterdir()):
        clips[clip.stem] = rates(ferkit.analyze(clip, fps=args.fps, aus=True), codes)
        print(clip.stem, clips[clip.stem].get("any rule"), flush=True)
    fer: dict[str, dict[str, float]] = {}
    for cls in sorted(p.name for p in (DATA / "fer2013" / "test").iterdir()):
        files = sorted((DATA / "fer2013" / "test" / cls).iterdir())
        files = files[: args.fer_per_class] if args.fer_per_class else files
        fer[cls] = rates(ferkit.analyze(files, crops=True, aus=True, tta="none"), codes)
        print(cls, fer[cls].get("any rule"), flush=True)
    print(table(clips, codes))
    print()
    print(table(fer, codes))
    cmd = f"python benchmarks/hardcase_rates.py --fps {args.fps} --fer-per-class {args.fer_per_class}"
    out = HERE / "results" / "hardcase_rates.json"
    out.write_text(json.dumps({"command": cmd, "clips": clips, "fer2013_test": fer}, indent=1))
    print(out)


if __name__ == "__main__":
    main()
