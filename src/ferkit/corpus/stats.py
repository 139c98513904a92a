"""Paired statistics across videos on per-video emotion shares of two models (SciPy).

Per emotion: the paired t-test with the 95 % confidence interval of the mean difference and Cohen's d_z (mean
difference / its standard deviation), and the Wilcoxon signed-rank test with the matched-pairs rank-biserial
correlation ((W+ − W−) / (W+ + W−)); both p-values Holm-corrected across the emotions tested. Fewer than
:data:`MIN_VIDEOS` videos, or a difference that is the same for every video, gives a note instead of numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

MIN_VIDEOS = 3


@dataclass
class PairedTest:
    """One emotion's paired comparison (B − A) over ``n`` videos; ``note`` says why a test was not run."""

    emotion: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float | None = None
    ci_high: float | None = None
    t: float | None = None
    p_t: float | None = None
    p_t_holm: float | None = None
    d_z: float | None = None
    w: float | None = None
    p_w: float | None = None
    p_w_holm: float | None = None
    rank_biserial: float | None = None
    note: str = ""

    def row(self) -> dict[str, object]:
        return asdict(self)


def holm(p: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values given (None: not tested, left None)."""
    idx = sorted((i for i, v in enumerate(p) if v is not None), key=lambda i: p[i])  # type: ignore[arg-type,return-value]
    out: list[float | None] = [None] * len(p)
    running, m = 0.0, len(idx)
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(p[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def rank_biserial(d: np.ndarray) -> float | None:
    """Matched-pairs rank-biserial correlation of the differences (zeros dropped, as the Wilcoxon test does)."""
    from scipy.stats import rankdata

    d = d[d != 0]
    if not len(d):
        return None
    ranks = rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def paired_test(emotion: str, a: np.ndarray, b: np.ndarray) -> PairedTest:
    """The tests of B − A for one emotion (no Holm yet: see :func:`compare_shares`)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    n = len(d)
    res = PairedTest(emotion, n, float(a.mean()), float(b.mean()), float(d.mean()))
    if n < MIN_VIDEOS:
        res.note = f"only {n} video(s); a paired test needs at least {MIN_VIDEOS}"
        return res
    if np.ptp(d) <= 1e-12:
        res.note = f"the difference is {d[0]:+.4f} for every video (constant): no test"
        return res
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    res.ci_low, res.ci_high = res.mean_diff - half, res.mean_diff + half
    t = stats.ttest_rel(b, a)
    res.t, res.p_t, res.d_z = float(t.statistic), float(t.pvalue), res.mean_diff / sd
    if np.count_nonzero(d) >= 1:
        w = stats.wilcoxon(d, zero_method="wilcox")
        res.w, res.p_w = float(w.statistic), float(w.pvalue)
        res.rank_biserial = rank_biserial(d)
    return res


def compare_shares(a: np.ndarray, b: np.ndarray, classes: list[str]) -> list[PairedTest]:
    """Per emotion (columns of the ``videos × classes`` share matrices ``a`` and ``b``) the paired tests, with
    Holm-corrected p-values across the emotions tested."""
    tests = [paired_test(k, a[:, i], b[:, i]) for i, k in enumerate(classes)]
    for key in ("p_t", "p_w"):
        for t, p in zip(tests, holm([getattr(t, key) for t in tests]), strict=True):
            setattr(t, f"{key}_holm", p)
    return tests
