"""The AU fields of records over time: per face track, the neutral baseline, the visual speech detector and the
hard-case rules, fed in frame order by the pipeline (one :class:`AuTracks` per source)."""

from __future__ import annotations

from typing import Any

from ferkit.analysis.hardcases import FaceSignals, RuleSet, RuleTracker
from ferkit.faces.aus import EXPRESSIVE_AUS, AuFit, AuModel, TrackBaseline
from ferkit.faces.speech import SpeechDetector

NO_FIT = "the face landmarker found no face in the crop"


class AuTracks:
    """Turns landmarker fits into the records' AU fields (``aus``, ``au_intensity``, ``speaking``,
    ``speech_action``, ``hard_case_rules``, ``aus_reason``). ``baseline``: correct each track by its own neutral
    (video); stills use the population norms the heads were trained on."""

    def __init__(self, model: AuModel, rules: RuleSet, baseline: bool) -> None:
        self.model, self.baseline = model, baseline
        self.rules = RuleTracker(rules)
        self._baselines: dict[int, TrackBaseline] = {}
        self._speech: dict[int, SpeechDetector] = {}

    def update(self, face_id: int, t: float | None, fit: AuFit | None) -> dict[str, Any]:
        """The AU fields of one face record (``t`` None for stills)."""
        speaking = None
        if t is not None:  # video: the detector sees every frame of the track, with or without a fit
            detector = self._speech.setdefault(face_id, SpeechDetector())
            p = detector.update(t, fit.mouth if fit is not None else None)
            speaking = None if p is None else round(p, 4)
        if fit is None:
            return {
                "aus": None,
                "au_intensity": None,
                "speaking": speaking,
                "speech_action": None,
                "hard_case_rules": None,
                "aus_reason": NO_FIT,
            }
        x = fit.features
        probs, inten = self.model.predict(x)
        if self.baseline:
            quiet = all(probs[k] < 0.5 for k in EXPRESSIVE_AUS)
            corrected = self._baselines.setdefault(face_id, TrackBaseline(self.model.neutral)).correct(x, quiet)
            if corrected is not x:
                probs, inten = self.model.predict(corrected)
        codes, speech_action = self.rules.update(FaceSignals(probs, inten, speaking, fit.pose), face_id, t)
        return {
            "aus": probs,
            "au_intensity": inten,
            "speaking": speaking,
            "speech_action": speech_action,
            "hard_case_rules": codes,
            "aus_reason": None,
        }

    def state(self, tracks: list[int]) -> dict:
        """The running per-track state (baselines, speech windows, rule clocks) of ``tracks`` as JSON values."""
        return {
            "baselines": {str(i): b.state() for i, b in self._baselines.items() if i in tracks},
            "speech": {str(i): d.state() for i, d in self._speech.items() if i in tracks},
            "rules": self.rules.state(tracks),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`."""
        for i, s in state["baselines"].items():
            self._baselines.setdefault(int(i), TrackBaseline(self.model.neutral)).restore(s)
        for i, s in state["speech"].items():
            self._speech.setdefault(int(i), SpeechDetector()).restore(s)
        self.rules.restore(state["rules"])
