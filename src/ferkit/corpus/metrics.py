"""Per-video figures of a corpus run: emotion shares, diversity, flatness, faces per minute, timelines on a
normalised time axis and change points of the dominant emotion (ruptures).

* **share** of an emotion: the fraction of a video's face-frames (one face in one sampled frame) whose
  per-frame ``emotion`` is that emotion;
* **entropy**: Shannon entropy of the shares divided by log(number of classes), 0 (one emotion) … 1 (all equal);
* **flatness**: the fraction of the timeline's bins whose dominant emotion is the video's most frequent one
  (1: a flat timeline that never leaves its main emotion);
* **faces per minute**: distinct face tracks (``face_id``) per minute of runtime, and faces per sampled frame;
* **timeline**: mean probabilities per 1 % of runtime, gaps without faces interpolated, smoothed by a centred
  moving average; **change points**: ruptures' PELT on the timeline, kept where the dominant emotion changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

BINS = 100
WINDOW = 9  # bins (9 % of runtime) of the centred moving average


@dataclass(frozen=True)
class Corpus:
    """The rows of a run with its classes and the manifest columns to group by."""

    rows: pd.DataFrame
    classes: list[str]
    columns: list[str]  # manifest columns besides video_id, title and path


def corpus_of(rows: pd.DataFrame) -> Corpus:
    """A :class:`Corpus` from the concatenated parts (classes from the ``p_`` columns)."""
    classes = [c[2:] for c in rows.columns if c.startswith("p_")]
    cols = list(rows.columns)
    manifest = cols[cols.index("path") + 1 : cols.index("duration_s")]
    return Corpus(rows, classes, manifest)


def _entropy(shares: np.ndarray) -> float:
    p = shares[shares > 0]
    return max(0.0, float(-(p * np.log(p)).sum() / math.log(len(shares)))) if len(shares) > 1 and len(p) else 0.0


def video_table(c: Corpus, emotion: str = "emotion") -> pd.DataFrame:
    """One row per video: manifest columns, runtime, sampled and face frames, faces per minute and per frame,
    ``share_<class>``, dominant emotion, entropy and flatness (``emotion``: the column whose labels are counted)."""
    out = []
    timelines = timeline_table(c)
    for vid, g in c.rows.groupby("video_id", sort=False):
        faces = g[g["face_id"].notna()]
        frames = g["frame_index"].nunique()
        counts = faces[emotion].value_counts()
        n = int(counts.sum())
        shares = np.array([counts.get(k, 0) / n if n else 0.0 for k in c.classes])
        duration = float(g["duration_s"].iloc[0]) if g["duration_s"].notna().any() else float("nan")
        row = {"video_id": vid, "title": g["title"].iloc[0], **{k: g[k].iloc[0] for k in c.columns}}
        row |= {"duration_s": duration, "frames": frames, "face_frames": n}
        row["faces_per_minute"] = faces["face_id"].nunique() / (duration / 60) if duration > 0 else float("nan")
        row["faces_per_frame"] = n / frames if frames else 0.0
        row |= {f"share_{k}": float(s) for k, s in zip(c.classes, shares, strict=True)}
        row["dominant"] = c.classes[int(shares.argmax())] if n else None
        row["entropy"] = _entropy(shares) if n else float("nan")
        tl = timelines[timelines["video_id"] == vid]
        doms = tl[c.classes].to_numpy().argmax(1) if len(tl) and n else np.array([])
        row["flatness"] = float((doms == shares.argmax()).mean()) if len(doms) else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def _video_timeline(faces: pd.DataFrame, classes: list[str], bins: int, window: int) -> pd.DataFrame | None:
    if faces.empty or faces["time_pct"].isna().all():
        return None
    b = np.clip((faces["time_pct"].to_numpy() / 100 * bins).astype(int), 0, bins - 1)
    means = faces[[f"p_{k}" for k in classes]].groupby(b).mean().reindex(range(bins))
    means = means.interpolate(limit_direction="both")  # bins without a face take their neighbours' values
    smooth = means.rolling(window, center=True, min_periods=1).mean()
    smooth.columns = classes
    return smooth


def timeline_table(c: Corpus, bins: int = BINS, window: int = WINDOW) -> pd.DataFrame:
    """Smoothed mean probabilities per video per bin of the normalised runtime (``pct``: the bin's centre, %)."""
    parts = []
    for vid, g in c.rows.groupby("video_id", sort=False):
        tl = _video_timeline(g[g["face_id"].notna()], c.classes, bins, window)
        if tl is not None:
            parts.append(tl.assign(video_id=vid, pct=(np.arange(bins) + 0.5) * 100 / bins))
    cols = ["video_id", "pct", *c.classes]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def group_timelines(c: Corpus, timelines: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Timelines averaged over the videos of each group (one group ``all`` without ``by``)."""
    if timelines.empty:
        return timelines.assign(group=[])
    groups = c.rows.groupby("video_id")[by].first().astype(str) if by else None
    t = timelines.assign(group=timelines["video_id"].map(groups) if by else "all")
    return t.groupby(["group", "pct"], as_index=False)[c.classes].mean()


def change_points(timelines: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Where each video's dominant emotion changes: ruptures' PELT (least squares) on the smoothed timeline with a
    BIC-like penalty, then the segments whose dominant emotion differs from the one before."""
    import ruptures as rpt

    out = []
    for vid, tl in timelines.groupby("video_id", sort=False):
        x = tl[classes].to_numpy(float)
        if len(x) < 6 or not np.isfinite(x).all():
            continue
        noise = float(np.diff(x, axis=0).var(axis=0).sum()) / 2 or 1e-6
        ends = rpt.Pelt(model="l2", min_size=3, jump=1).fit(x).predict(pen=2 * math.log(len(x)) * noise * len(classes))
        starts = [0, *ends[:-1]]
        doms = [classes[int(x[s:e].mean(0).argmax())] for s, e in zip(starts, ends, strict=True)]
        pct = tl["pct"].to_numpy()
        for i in range(1, len(doms)):
            if doms[i] != doms[i - 1]:
                out.append({"video_id": vid, "pct": float(pct[starts[i]]), "from": doms[i - 1], "to": doms[i]})
    return pd.DataFrame(out, columns=["video_id", "pct", "from", "to"])


def group_shares(videos: pd.DataFrame, classes: list[str], by: str | None) -> pd.DataFrame:
    """Mean share per emotion (and mean entropy, flatness, faces per minute) over the videos of each group."""
    cols = [f"share_{k}" for k in classes] + ["entropy", "flatness", "faces_per_minute"]
    key = videos[by].astype(str) if by else pd.Series("all", index=videos.index)
    g = videos.assign(group=key).groupby("group", sort=True)
    return g[cols].mean().assign(videos=g.size()).reset_index()
