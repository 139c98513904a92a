"""Decision-level fusion on tiny hand-made data; every expected value is worked out by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ferkit.analysis.channels import face_channel, fuse_channels, read_channel, sync_nearest, sync_windows
from ferkit.errors import InputError
from ferkit.models.fusion import ModelOutput, fuse_models, reliability_from_report

HNS = ["happy", "neutral", "sad"]


def out(model: str, classes: list[str], rows: list[list[float]]) -> ModelOutput:
    return ModelOutput(model, classes, np.array(rows, dtype=float))


def test_majority_with_ties() -> None:
    a = out("A", HNS, [[0.6, 0.3, 0.1], [0.7, 0.2, 0.1], [0.5, 0.25, 0.25]])
    b = out("B", HNS, [[0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.25, 0.5, 0.25]])
    c = out("C", HNS, [[0.2, 0.2, 0.6], [0.1, 0.3, 0.6], [0.25, 0.25, 0.5]])
    f = fuse_models([a, b, c], "majority")
    # row 0: happy, happy, sad → happy with 2 votes, shares [2/3, 0, 1/3]
    # row 1: happy, neutral, sad (1 vote each) → sums happy .9, neutral 1.3, sad .8 → neutral
    # row 2: 1 vote each and sums 1.0 each → the first class in order, happy
    assert f.labels == ["happy", "neutral", "happy"]
    assert f.votes.tolist() == [2, 1, 1]
    np.testing.assert_allclose(f.probs[0], [2 / 3, 0, 1 / 3])
    assert f.classes == HNS and f.models == ["A", "B", "C"] and f.strategy == "majority"


def test_soft_vote_weights_by_max_probability() -> None:
    # weights .9 and .6: happy = (.9·.9 + .6·.4) / 1.5 = .7, sad = (.9·.1 + .6·.6) / 1.5 = .3 (plain mean: .65)
    f = fuse_models([out("A", ["happy", "sad"], [[0.9, 0.1]]), out("B", ["happy", "sad"], [[0.4, 0.6]])], "soft")
    np.testing.assert_allclose(f.probs, [[0.7, 0.3]])
    assert f.labels == ["happy"] and f.votes is None


def test_reliability_flips_the_decision() -> None:
    outs = [out("A", ["happy", "sad"], [[0.6, 0.4]]), out("B", ["happy", "sad"], [[0.3, 0.7]])]
    # equal reliabilities = plain mean: happy .45, sad .55 → sad
    flat = {"A": {"happy": 1.0, "sad": 1.0}, "B": {"happy": 1.0, "sad": 1.0}}
    assert fuse_models(outs, "reliability", flat).labels == ["sad"]
    # soft: happy (.6·.6 + .7·.3) / 1.3 = .438 → sad as well
    assert fuse_models(outs, "soft").labels == ["sad"]
    # A reliable, B not: happy .9·.6 + .1·.3 = .57, sad .9·.4 + .2·.7 = .50 → happy .57 / 1.07
    rel = {"A": {"happy": 0.9, "sad": 0.9}, "B": {"happy": 0.1, "sad": 0.2}}
    f = fuse_models(outs, "reliability", rel)
    assert f.labels == ["happy"]
    np.testing.assert_allclose(f.probs, [[0.57 / 1.07, 0.50 / 1.07]])
    with pytest.raises(InputError, match="model B, class sad"):
        fuse_models(outs, "reliability", {"A": rel["A"], "B": {"happy": 0.5}})


def test_reliability_from_report() -> None:
    report = {"results": [{"model": "A", "per_class": {"happy": {"f1": 0.8, "precision": 0.7}}}]}
    assert reliability_from_report(report, "precision") == {"A": {"happy": 0.7}}


def test_union_of_class_sets() -> None:
    a = out("A", ["happy", "sad", "contempt"], [[0.5, 0.2, 0.3]])
    b = out("B", ["angry", "happy", "sad"], [[0.1, 0.6, 0.3]])
    f = fuse_models([a, b], "soft")
    # canonical order then extras: angry, happy, sad, contempt; weights .5 and .6 (total 1.1)
    # angry .6·.1, happy .5·.5 + .6·.6 = .61, sad .5·.2 + .6·.3 = .28, contempt .5·.3 = .15 (B adds nothing)
    assert f.classes == ["angry", "happy", "sad", "contempt"]
    np.testing.assert_allclose(f.probs, [[0.06 / 1.1, 0.61 / 1.1, 0.28 / 1.1, 0.15 / 1.1]])
    m = fuse_models([a, b], "majority")
    assert m.labels == ["happy"] and m.votes.tolist() == [2]


def test_model_errors() -> None:
    with pytest.raises(InputError, match="mismatched class sets"):
        fuse_models([out("A", ["happy", "sad"], [[0.5, 0.5]]), out("B", ["angry", "fear"], [[0.5, 0.5]])], "soft")
    with pytest.raises(InputError, match="row counts"):
        fuse_models([out("A", HNS, [[1, 0, 0]]), out("B", HNS, [[1, 0, 0], [0, 1, 0]])], "soft")
    with pytest.raises(InputError, match="unknown fusion strategy"):
        fuse_models([out("A", HNS, [[1, 0, 0]])], "median")


def channel(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["timestamp", "label", "probabilities", "confidence"])


FACE = channel(
    [
        (0.0, None, {"happy": 0.8, "sad": 0.2}, 1.0),
        (0.5, None, {"happy": 0.6, "sad": 0.4}, 1.0),
        (1.2, None, {"happy": 0.2, "sad": 0.8}, 1.0),
    ]
)
VOICE = channel(
    [(0.1, "sad", None, 0.5), (1.0, "happy", None, 1.0), (1.9, "happy", None, 0.8), (3.5, "neutral", None, None)]
)


def test_sync_windows_means() -> None:
    s = sync_windows({"face": FACE, "voice": VOICE}, 1.0)
    assert s["start"].tolist() == [0.0, 1.0, 2.0, 3.0] and s["end"].tolist() == [1.0, 2.0, 3.0, 4.0]
    # [0,1): face mean of (.8,.2) and (.6,.4) = (.7,.3); voice one-hot sad × .5
    assert s.loc[0, "face"] == pytest.approx({"happy": 0.7, "sad": 0.3})
    assert s.loc[0, "voice"] == pytest.approx({"sad": 0.5})
    # [1,2): face (.2,.8); voice mean of happy×1.0 and happy×.8 = happy .9
    assert s.loc[1, "face"] == pytest.approx({"happy": 0.2, "sad": 0.8})
    assert s.loc[1, "voice"] == pytest.approx({"happy": 0.9})
    # [2,3): no samples; [3,4): voice neutral with the default confidence 1.0
    assert s.loc[2, "face"] is None and s.loc[2, "voice"] is None
    assert s.loc[3, "face"] is None and s.loc[3, "voice"] == {"neutral": 1.0}


def test_sync_nearest_tolerance() -> None:
    s = sync_nearest({"face": FACE, "voice": VOICE}, "face", 0.25)
    assert s["timestamp"].tolist() == [0.0, 0.5, 1.2]
    # 0.0 → voice 0.1 (Δ .1); 0.5 → nearest 0.1 (Δ .4 > .25) → None; 1.2 → voice 1.0 (Δ .2)
    assert s["voice"].tolist() == [{"sad": 0.5}, None, {"happy": 1.0}]
    assert s.loc[0, "face"] == {"happy": 0.8, "sad": 0.2}


def test_no_overlap() -> None:
    late = channel([(5.0, "sad", None, 1.0), (6.0, "sad", None, 1.0)])
    with pytest.raises(InputError, match="channels face and late do not overlap in time"):
        sync_windows({"face": FACE, "late": late}, 1.0)
    with pytest.raises(InputError, match="do not overlap"):
        sync_nearest({"face": FACE, "late": late}, "face", 1.0)


def test_read_channel_sorts_and_merges_duplicates(tmp_path: Path) -> None:
    j = tmp_path / "voice.jsonl"
    lines = [
        {"timestamp": 2.0, "probabilities": {"happy": 1.0}},
        {"timestamp": 1.0, "probabilities": {"happy": 0.2, "sad": 0.8}},
        {"timestamp": 1.0, "probabilities": {"happy": 0.6, "sad": 0.4}},
    ]
    j.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    df = read_channel(j)
    # sorted; the two 1.0 rows averaged: happy (.2+.6)/2 = .4, sad (.8+.4)/2 = .6
    assert df["timestamp"].tolist() == [1.0, 2.0]
    assert df.loc[0, "probabilities"] == pytest.approx({"happy": 0.4, "sad": 0.6})
    c = tmp_path / "voice.csv"
    c.write_text("timestamp,label,confidence\n3,sad,0.9\n1,happy,0.4\n1,neutral,0.7\n2,happy,\n")
    df = read_channel(c)
    # sorted; at 1 the higher confidence (neutral .7) wins; the empty confidence defaults to 1.0
    assert df["timestamp"].tolist() == [1.0, 2.0, 3.0]
    assert df["label"].tolist() == ["neutral", "happy", "sad"]
    assert df["confidence"].tolist() == [0.7, 1.0, 0.9]


def test_read_channel_missing_fields(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"time": 1.0, "label": "happy"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl: missing field 'timestamp'"):
        read_channel(p)
    p.write_text('{"timestamp": 1.0, "score": 3}\n')
    with pytest.raises(InputError, match="missing field 'label' or 'probabilities'"):
        read_channel(p)
    p.write_text('{"timestamp": 1.0, "label": "sad"}\n{"timestamp": 2.0, "label": null}\n')
    with pytest.raises(InputError, match="row 2 is missing"):
        read_channel(p)
    p.write_text('{"timestamp": "soon", "label": "sad"}\n')
    with pytest.raises(InputError, match="row 1 has a non-numeric 'timestamp'"):
        read_channel(p)


def rec(t: float | None, face_id: int | None, side: int, emotion: str) -> dict:
    return {"timestamp": t, "face_id": face_id, "box": [0, 0, side, side], "emotion": emotion, "probabilities": None}


def test_face_channel() -> None:
    records = [rec(0.0, 0, 10, "happy"), rec(0.0, 1, 20, "sad"), rec(0.0, None, 50, "angry"), rec(0.5, 0, 10, "fear")]
    assert face_channel(records)["label"].tolist() == ["sad", "fear"]  # largest tracked face per timestamp
    assert face_channel(records, face=0)["label"].tolist() == ["happy", "fear"]
    with pytest.raises(InputError, match="still images have no timestamps"):
        face_channel([rec(None, 0, 10, "happy")])


H, S = {"happy": 0.9, "sad": 0.1}, {"happy": 0.1, "sad": 0.9}


def synced(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"start": k, "end": k + 1, "a": a, "b": b} for k, (a, b) in enumerate(rows)])


def test_state_machine_suppresses_flicker_and_follows_change() -> None:
    seq = [H, H, H, S, H, H, S, S, S]
    f = fuse_channels(synced([(v, v) for v in seq]), {"a": 1.0, "b": 1.0}, ["happy", "sad"], threshold=0.5, hold=2)
    assert f["fused_label"].tolist() == ["happy"] * 3 + ["sad"] + ["happy"] * 2 + ["sad"] * 3
    # happy needs 2 rows to be adopted; the lone sad at row 3 is suppressed; sad sustained from row 6 → switch at 7
    assert f["state_label"].tolist() == [None] + ["happy"] * 6 + ["sad"] * 2
    assert f["fused_score"].tolist() == pytest.approx([0.9] * 9)


def test_fuse_channels_weights_and_single_channel_threshold() -> None:
    # weights 3 and 1: happy (3·.8 + 1·0) / 4 = .6, sad (3·.2 + 1·1) / 4 = .4; row 1: only a → renormalised to a alone
    rows = [({"happy": 0.8, "sad": 0.2}, {"sad": 1.0}), ({"happy": 1.0}, None), (None, None)]
    f = fuse_channels(synced(rows), {"a": 3.0, "b": 1.0}, ["happy", "sad"])
    assert f["fused_score"].tolist() == pytest.approx([0.6, 1.0, 0.0])
    assert f["fused_label"].tolist() == ["happy", "happy", None]
    assert f["channels_used"].tolist() == [["a", "b"], ["a"], []]
    assert f["state_label"].tolist() == [None, "happy", "happy"]
    # sad .55 with both channels clears .5 → adopted after 2 rows; with one channel the threshold is .6 → never
    weak = {"happy": 0.45, "sad": 0.55}
    both = fuse_channels(synced([(weak, weak)] * 3), {"a": 1.0, "b": 1.0}, ["happy", "sad"])
    assert both["state_label"].tolist() == [None, "sad", "sad"]
    one = fuse_channels(synced([(weak, None)] * 3), {"a": 1.0, "b": 1.0}, ["happy", "sad"])
    assert one["state_label"].tolist() == [None, None, None]


def test_fuse_cli_on_the_shared_video(tmp_path: Path) -> None:
    """Face channel from a real analysis + a hand-made voice channel saying 'sad' throughout, weighted 3:1.

    Per 1-s window the voice vector is {sad: 1}, the face vector sums to 1, so fused sad >= 3/4 > any face share
    (<= 1/4): every window's fused label is sad and the state switches to it after ``hold`` = 2 windows.
    """
    import subprocess
    import sys

    from conftest import VIDEO

    def cli(*args: object) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "ferkit.cli", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)

    face = tmp_path / "face.jsonl"
    assert cli("analyze", VIDEO, "--fps", "2", "-o", face, "--no-plots").returncode == 0
    voice = tmp_path / "voice.jsonl"
    voice.write_text("".join(json.dumps({"timestamp": t / 2, "label": "sad"}) + "\n" for t in range(31)))
    out = tmp_path / "fused.jsonl"
    r = cli("fuse", face, voice, "--window", "1", "--weights", "face=1,voice=3", "-o", out)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16 and all(row["fused_label"] == "sad" for row in rows)
    assert rows[0]["state_label"] is None and all(row["state_label"] == "sad" for row in rows[1:])
    assert (tmp_path / "fused.png").is_file()
    late = tmp_path / "late.jsonl"
    late.write_text(json.dumps({"timestamp": 100.0, "label": "sad"}) + "\n")
    r = cli("fuse", face, late, "-o", tmp_path / "x.jsonl")
    assert r.returncode == 2 and "do not overlap in time" in r.stderr and "Traceback" not in r.stderr
