"""Hard-case rules as data: the shipped file loads, conditions mean what they say, durations hold in video, and a
malformed rules file is one line naming the rule and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferkit.analysis.hardcases import RULES_FILE, FaceSignals, RuleSet, RuleTracker
from ferkit.errors import InputError
from ferkit.faces.aus import AU_KEYS

ISSUE_RULES = {
    "non_duchenne_smile",
    "speech_emotion_confound",
    "contempt_speech_overlap",
    "isolated_brow_lowerer",
    "pain_grimace",
    "yawn_fatigue",
    "skepticism",
    "boredom",
    "disgust_speech",
    "fear_speech",
    "surprise_speech",
    "sadness_speech",
    "laughing_speech",
}


def face(present: set[str], speaking: float | None = None, pitch: float = 0.0, **intensity: float) -> FaceSignals:
    aus = {k: (0.9 if k in present else 0.1) for k in AU_KEYS}
    inten = {k: intensity.get(k, 0.8 if k in present else 0.0) for k in AU_KEYS}
    return FaceSignals(aus, inten, speaking, (pitch, 0.0, 0.0))


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.load(None, list(AU_KEYS))


def test_shipped_rules_cover_the_issue(rules: RuleSet) -> None:
    assert {r.code for r in rules.rules} == ISSUE_RULES
    assert all(r.description for r in rules.rules)


@pytest.mark.parametrize(
    ("present", "speaking", "fires", "quiet"),
    [
        ({"AU12"}, None, "non_duchenne_smile", None),
        ({"AU12", "AU06"}, None, None, "non_duchenne_smile"),  # a Duchenne smile is not a hard case
        ({"AU04"}, None, "isolated_brow_lowerer", None),
        ({"AU04", "AU07"}, None, None, "isolated_brow_lowerer"),
        ({"AU09", "AU07"}, None, "pain_grimace", None),
        ({"AU26", "AU43"}, None, "yawn_fatigue", None),
        ({"AU12_L", "AU12"}, 0.9, "contempt_speech_overlap", None),
        ({"AU12_L", "AU12_R", "AU12"}, 0.9, None, "contempt_speech_overlap"),  # both sides: not one-sided
        ({"AU09", "AU25"}, None, "disgust_speech", None),
        ({"AU01", "AU02", "AU05", "AU25"}, 0.9, "surprise_speech", None),
        ({"AU01", "AU02", "AU05", "AU25"}, 0.2, None, "surprise_speech"),  # not speaking
        ({"AU06", "AU12", "AU25"}, 0.9, "laughing_speech", None),
    ],
)
def test_conditions(rules: RuleSet, present: set[str], speaking: float | None, fires: str, quiet: str) -> None:
    codes, _ = RuleTracker(rules).update(face(present, speaking))
    if fires:
        assert fires in codes
    if quiet:
        assert quiet not in codes


def test_speech_action_needs_speech_and_an_emotional_upper_face(rules: RuleSet) -> None:
    tracker = RuleTracker(rules)
    assert tracker.update(face({"AU04", "AU25"}, 0.9))[1] is True
    assert tracker.update(face({"AU04", "AU25"}, 0.1))[1] is False  # not speaking
    assert tracker.update(face({"AU25", "AU26"}, 0.9))[1] is False  # speaking, neutral upper face
    assert tracker.update(face({"AU04", "AU12"}, 0.9))[1] is False  # an emotional mouth, not a speaking one
    assert tracker.update(face({"AU04"}, None))[1] is False  # stills never speak


def test_min_duration_in_video(rules: RuleSet) -> None:
    """non_duchenne_smile needs 0.3 s on one track; another track, or a gap over a second, starts the clock again."""
    tracker = RuleTracker(rules)
    smile = face({"AU12"})
    fired = [("non_duchenne_smile" in tracker.update(smile, track=1, t=t / 10)[0]) for t in range(6)]
    assert fired == [False, False, False, True, True, True]
    assert "non_duchenne_smile" not in tracker.update(smile, track=2, t=0.5)[0]
    assert "non_duchenne_smile" not in tracker.update(smile, track=1, t=3.0)[0]  # 2.5 s gap: restarts
    assert "non_duchenne_smile" not in tracker.update(face(set()), track=1, t=3.1)[0]


def test_pose_and_intensity_conditions(rules: RuleSet, tmp_path: Path) -> None:
    assert "skepticism" in RuleTracker(rules).update(face({"AU02_L"}, pitch=15.0))[0]
    assert "skepticism" not in RuleTracker(rules).update(face({"AU02_L", "AU02_R"}, pitch=15.0))[0]
    bored = face({"AU26"}, 0.1, AU43=0.5)
    assert "boredom" in RuleTracker(rules).update(bored)[0]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES_FILE.read_text() + text)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[rules]]\ncode = "x"\nwhen = "AU99"\n', "rule 'x': when: unknown name 'AU99'"),
        ('[[rules]]\ncode = "x"\nwhen = "au12"\n', "did you mean AU12?"),
        ('[[rules]]\ncode = "x"\nwhen = "AU12 +"\n', "rule 'x': when: not a valid condition"),
        ('[[rules]]\ncode = "x"\nwhen = "__import__(\'os\')"\n', "rule 'x': when: only AU names"),
        ('[[rules]]\ncode = "x"\nwhen = "AU12"\nmin_duration = -1\n', "rule 'x': min_duration"),
        ('[[rules]]\ncode = "x"\nwhen = "AU12"\nthreshold = "high"\n', "rule 'x': threshold"),
        ('[[rules]]\ncode = "x"\nwhen = "AU12"\nwhen_not = "AU06"\n', "unknown key 'when_not'"),
        ('[[rules]]\ncode = "Bad Code"\nwhen = "AU12"\n', "code must be lower_snake_case"),
        ('[[rules]]\ncode = "boredom"\nwhen = "AU12"\n', "rule 'boredom': code used twice"),
        ("colour = 3\n", "unknown key 'colour'"),
        ("[[rules]]\ncode = 'x'\nwhen = 'AU12\n", "not a readable TOML"),
    ],
)
def test_malformed_rules_are_one_line(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        RuleSet.load(write(tmp_path, "\n" + extra), list(AU_KEYS))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(tmp_path / "rules.toml") in str(e.value)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="hard-case rules file not found"):
        RuleSet.load(tmp_path / "nope.toml", list(AU_KEYS))
