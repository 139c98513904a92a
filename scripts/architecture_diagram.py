"""Draw ferkit's stage diagram from the code's own imports (grimp, the graph builder behind import-linter).

    python scripts/architecture_diagram.py            # rewrite the Mermaid block in docs/architecture.md + the PNG
    python scripts/architecture_diagram.py --check    # exit 1 if the doc's block no longer matches the imports

Each box is a stage (a subpackage of ``ferkit``, or the ``api`` module); an arrow A → B means some module of A imports
some module of B, labelled with how many module-level import pairs there are. Heavy third-party packages are shown
where a stage imports them, so the picture also shows that torch stays in ``training``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PNG = ROOT / "docs" / "architecture.png"
#: Top to bottom, as the layers contract in pyproject.toml lists them (curation and corpus once they exist).
STAGES = [
    *["cli", "corpus", "curation", "stock", "api", "training", "evaluation"],
    *["analysis", "models", "faces", "labels", "media"],
]
EXTERNAL = ["torch", "onnx", "mlflow", "onnxruntime", "mediapipe", "cv2", "av"]
BEGIN, END = "<!-- diagram:begin (scripts/architecture_diagram.py) -->", "<!-- diagram:end -->"


def stage_of(module: str) -> str | None:
    """``ferkit.models.base`` → ``models``; modules outside any stage (``ferkit.errors``) → None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ferkit" and parts[1] in STAGES else None


def edges() -> tuple[list[str], Counter]:
    """Stages present and (importer stage, imported stage or package) → number of module import pairs."""
    graph = grimp.build_graph("ferkit", include_external_packages=True)
    present = [s for s in STAGES if f"ferkit.{s}" in graph.modules]
    count: Counter = Counter()
    for module in graph.modules:
        src = stage_of(module)
        if src is None:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            dst = stage_of(imported) or (imported if imported in EXTERNAL else None)
            if dst is not None and dst != src:
                count[src, dst] += 1
    return present, count


def mermaid(present: list[str], count: Counter) -> str:
    """A Mermaid flowchart, stages top to bottom, externals as rounded nodes."""
    lines = ["```mermaid", "flowchart TB"]
    lines += [f"    {s}[{s}]" for s in present]
    lines += [f"    {e}([{e}])" for e in EXTERNAL if any(dst == e for _, dst in count)]
    lines += [f"    {a} -->|{n}| {b}" for (a, b), n in sorted(count.items())]
    return "\n".join([*lines, "```"])


def draw_png(present: list[str], count: Counter, path: Path) -> None:
    """The same graph as a PNG: stages stacked by layer, imports as arrows (curved when they skip layers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ext = [e for e in EXTERNAL if any(dst == e for _, dst in count)]
    pos = {s: (0.0, -float(i)) for i, s in enumerate(present)}
    for j, e in enumerate(ext):
        pos[e] = (3.2, -float(j) * len(present) / max(len(ext), 1))
    fig, ax = plt.subplots(figsize=(9, 0.8 * len(present) + 1))
    for name, (x, y) in pos.items():
        stage = name in present
        ax.add_patch(
            FancyBboxPatch(
                (x - 0.6, y - 0.22),
                1.2,
                0.44,
                boxstyle="round,pad=0.02,rounding_size=0.15" if not stage else "square,pad=0.02",
                fc="#e8f0fe" if stage else "#fdecea",
                ec="#333333",
                zorder=2,
            )
        )
        ax.text(x, y, name, ha="center", va="center", fontsize=10, family="monospace", zorder=3)
    for (a, b), n in sorted(count.items()):
        (xa, ya), (xb, yb) = pos[a], pos[b]
        if b not in present:  # to a third-party package, on the right
            start, end, rad = (xa + 0.6, ya), (xb - 0.6, yb), 0.0
        elif abs(present.index(a) - present.index(b)) == 1:  # to the next layer down: straight
            start, end, rad = (xa, ya - 0.22), (xb, yb + 0.22), 0.0
        else:  # skipping layers: an arc on the left, wider the further it goes
            start, end, rad = (xa - 0.6, ya), (xb - 0.6, yb), 0.12 + 0.02 * abs(present.index(a) - present.index(b))
        arrow = FancyArrowPatch(
            start,
            end,
            connectionstyle=f"arc3,rad={rad}",
            arrowstyle="-|>",
            mutation_scale=10,
            lw=0.6 + 0.15 * min(n, 10),
            color="#1a73e8" if b in present else "#c5221f",
            alpha=0.7,
            zorder=1,
        )
        ax.add_patch(arrow)
    ax.set_xlim(-3.0, 4.2)
    ax.set_ylim(-len(present) + 0.4, 0.6)
    ax.set_axis_off()
    ax.set_title("ferkit stages: arrows are imports (blue: other stages, red: heavy third-party packages)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the doc's diagram with the imports")
    args = parser.parse_args()
    present, count = edges()
    block = f"{BEGIN}\n{mermaid(present, count)}\n{END}"
    text = DOC.read_text()
    current = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.S)
    if current is None:
        print(f"{DOC}: no diagram markers", file=sys.stderr)
        return 1
    if args.check:
        if current.group(0) != block:
            print(f"{DOC}: the diagram no longer matches the imports; rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text.replace(current.group(0), block))
    draw_png(present, count, PNG)
    print(f"wrote the diagram into {DOC.relative_to(ROOT)} and {PNG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
