"""``ferkit corpus compare``: two models over the same collection — two run folders (matched by ``video_id`` and
content), or one run made with several ``--model`` (its first two models) — tested per emotion across videos
(:mod:`ferkit.corpus.stats`), over all videos and per group; a table (CSV, Markdown) and a figure (PNG)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ferkit.corpus.metrics import Corpus, corpus_of, video_table
from ferkit.corpus.parts import load_parts, part_files, part_meta
from ferkit.corpus.report import colour, pick_group
from ferkit.corpus.stats import MIN_VIDEOS, compare_shares
from ferkit.errors import InputError
from ferkit.media.files import atomic_write_text, check_out_dir


@dataclass
class Comparison:
    """The shares of both models per video, the test table and the files written."""

    name_a: str
    name_b: str
    shares: pd.DataFrame  # one row per common video: group, share_a_<k>, share_b_<k>
    table: pd.DataFrame  # one row per (scope, emotion)
    files: list[Path] = field(default_factory=list)


def _model_name(c: Corpus) -> str:
    names = c.rows["model"].dropna().unique()
    return str(names[0]) if len(names) else "?"


def _hashes(run: Path) -> dict[str, str | None]:
    return {f.stem: (part_meta(f) or {}).get("content_sha256") for f in part_files(run)}


def _per_model(c: Corpus) -> list[tuple[str, Corpus]]:
    """A run with several models as one corpus per model (each model's own per-frame emotion)."""
    first = c.rows["models"].dropna()
    if first.empty:
        raise InputError("one run folder compares its models only when it was run with several --model; give two runs")
    names = list(json.loads(first.iloc[0]))
    out = []
    for name in names[:2]:
        docs = [json.loads(m) if isinstance(m, str) else None for m in c.rows["models"]]
        rows = c.rows.assign(emotion=[d[name]["emotion"] if d and name in d else None for d in docs])
        out.append((name, Corpus(rows, c.classes, c.columns)))
    return out


def _load(run_a: Path, run_b: Path | None) -> tuple[tuple[str, Corpus], tuple[str, Corpus]]:
    ca = corpus_of(load_parts(run_a))
    if run_b is None:
        a, b = _per_model(ca)
        return a, b
    cb = corpus_of(load_parts(run_b))
    if ca.classes != cb.classes:
        raise InputError(f"{run_a} and {run_b} have other emotion classes ({ca.classes} vs {cb.classes})")
    ha, hb = _hashes(run_a), _hashes(run_b)
    same = {v for v in ha.keys() & hb.keys() if ha[v] == hb[v]}  # the same title and the same file content
    keep_a, keep_b = ca.rows[ca.rows["video_id"].isin(same)], cb.rows[cb.rows["video_id"].isin(same)]
    return (_model_name(ca), Corpus(keep_a, ca.classes, ca.columns)), (_model_name(cb), Corpus(keep_b, cb.classes, []))


def _scope_rows(scope: str, sa: np.ndarray, sb: np.ndarray, classes: list[str]) -> list[dict]:
    return [{"scope": scope, **t.row()} for t in compare_shares(sa, sb, classes)]


def compare_runs(run_a: Path, run_b: Path | None = None, by: str | None = None, out: Path | None = None) -> Comparison:
    """Compare and write ``compare.csv``, ``compare.md`` and ``compare.png`` into ``out`` (default:
    ``<run_a>/compare``); ``InputError`` when fewer than 3 videos are common to both."""
    (name_a, a), (name_b, b) = _load(Path(run_a), None if run_b is None else Path(run_b))
    by = pick_group(a, by)
    va, vb = video_table(a).set_index("video_id"), video_table(b).set_index("video_id")
    common = [v for v in va.index if v in vb.index and va.at[v, "face_frames"] > 0 and vb.at[v, "face_frames"] > 0]
    if len(common) < MIN_VIDEOS:
        raise InputError(
            f"only {len(common)} video(s) with faces are common to both runs; a paired comparison needs at least "
            f"{MIN_VIDEOS} (same title and same file in both)"
        )
    share = [f"share_{k}" for k in a.classes]
    sa, sb = va.loc[common, share].to_numpy(float), vb.loc[common, share].to_numpy(float)
    shares = pd.DataFrame({"video_id": common})
    if by:
        shares["group"] = va.loc[common, by].astype(str).to_numpy()
    for k, i in zip(a.classes, range(len(share)), strict=True):
        shares[f"{name_a}_{k}"], shares[f"{name_b}_{k}"] = sa[:, i], sb[:, i]
    rows = _scope_rows("all", sa, sb, a.classes)
    if by:
        for g in sorted(shares["group"].unique()):
            m = (shares["group"] == g).to_numpy()
            rows += _scope_rows(f"{by}={g}", sa[m], sb[m], a.classes)
    cmp = Comparison(name_a, name_b, shares, pd.DataFrame(rows))
    _write(cmp, a.classes, Path(out) if out is not None else Path(run_a) / "compare")
    return cmp


def _png(cmp: Comparison, classes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = cmp.table[cmp.table["scope"] == "all"].set_index("emotion")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    x = np.arange(len(classes))
    ax1.bar(x - 0.2, t.loc[classes, "mean_a"], 0.4, label=cmp.name_a, color="#4c72b0")
    ax1.bar(x + 0.2, t.loc[classes, "mean_b"], 0.4, label=cmp.name_b, color="#dd8452")
    ax1.set_xticks(x, classes, rotation=30)
    ax1.set_ylabel("mean share of face-frames")
    ax1.legend()
    for i, k in enumerate(classes):
        d = cmp.shares[f"{cmp.name_b}_{k}"] - cmp.shares[f"{cmp.name_a}_{k}"]
        ax2.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=12, color=colour(k), alpha=0.7)
        lo, hi = t.at[k, "ci_low"], t.at[k, "ci_high"]
        if pd.notna(lo):
            ax2.errorbar(i, t.at[k, "mean_diff"], yerr=[[t.at[k, "mean_diff"] - lo], [hi - t.at[k, "mean_diff"]]],
                         fmt="o", color="black", capsize=4)  # fmt: skip
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xticks(x, classes, rotation=30)
    ax2.set_ylabel(f"{cmp.name_b} − {cmp.name_a} per video (mean, 95 % CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _write(cmp: Comparison, classes: list[str], out: Path) -> None:
    check_out_dir(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    cmp.files.append(atomic_write_text(out / "compare.csv", cmp.table.to_csv(index=False, float_format="%.6g")))
    cmp.files.append(atomic_write_text(out / "shares.csv", cmp.shares.to_csv(index=False, float_format="%.6g")))
    _png(cmp, classes, out / "compare.png")
    cmp.files.append(out / "compare.png")
    cols = ["scope", "emotion", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "t", "p_t_holm", "d_z"]
    cols += ["w", "p_w_holm", "rank_biserial", "note"]
    shown = cmp.table[cols].map(_fmt)
    n = int(cmp.table["n"].iloc[0])
    text = [
        f"# {cmp.name_b} vs {cmp.name_a}: per-video emotion shares, {n} videos",
        "",
        f"Differences are {cmp.name_b} − {cmp.name_a}; a = {cmp.name_a}, b = {cmp.name_b}. p-values Holm-corrected",
        "across the emotions of each scope; CI: 95 % of the mean difference; d_z: Cohen's paired effect size;",
        "rank_biserial: of the Wilcoxon signed-rank test.",
        "",
        shown.to_markdown(index=False),
        "",
        "![comparison](compare.png)",
    ]
    cmp.files.append(atomic_write_text(out / "compare.md", "\n".join(text) + "\n"))
