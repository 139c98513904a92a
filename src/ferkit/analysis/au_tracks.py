"""The AU fields of records over time: per face track, the neutral baseline, the visual speech detector and the
hard-case rules, fed in frame order by the pipeline (one :class:`AuTracks` per source), and :class:`AuSchedule`,
which decides which tracked faces the landmarker fits in each frame."""

from __future__ import annotations

from typing import Any

from ferkit.analysis.hardcases import FaceSignals, RuleSet, RuleTracker
from ferkit.faces.aus import EXPRESSIVE_AUS, AuFit, AuModel, TrackBaseline
from ferkit.faces.speech import SpeechDetector

NO_FIT = "the face landmarker found no face in the crop"


class Held:
    """In place of a fit: :class:`AuSchedule` skipped this face in this frame; its record repeats the track's last
    AU fields."""


HELD = Held()


class AuSchedule:
    """Which faces of a video frame the landmarker fits: each track at most ``rate`` times per second of video time
    (a new track at once), so at 30 frames/s and ``rate`` 15 every second frame is fitted. ``rate`` None fits every
    frame. The landmarker is most of ``--aus``'s cost; 15 fits/s keeps the visual speech detector inside the frame
    rates it was fitted and validated at (5–30 frames/s, ``benchmarks/speech.py``)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._last: dict[int, float] = {}  # track id -> video time of its last fit

    def due(self, face_ids: list[int], t: float | None) -> list[bool]:
        """Whether each face of a frame at time ``t`` is fitted now (tracks not in ``face_ids`` are forgotten)."""
        last, self._last = self._last, {}
        out = []
        for i in face_ids:
            prev = last.get(i)
            fit = t is None or not self.rate or prev is None or not 0 <= t - prev < 1 / self.rate - 1e-6
            if t is not None:
                self._last[i] = t if fit else prev  # type: ignore[assignment]
            out.append(fit)
        return out

    def state(self) -> dict:
        """The last fit time of each track, as JSON values (resume checkpoints)."""
        return {str(i): t for i, t in self._last.items()}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`."""
        self._last = {int(i): float(t) for i, t in state.items()}


class AuTracks:
    """Turns landmarker fits into the records' AU fields (``aus``, ``au_intensity``, ``speaking``,
    ``speech_action``, ``hard_case_rules``, ``aus_reason``). ``baseline``: correct each track by its own neutral
    (video); stills use the population norms the heads were trained on."""

    def __init__(self, model: AuModel, rules: RuleSet, baseline: bool) -> None:
        self.model, self.baseline = model, baseline
        self.rules = RuleTracker(rules)
        self._baselines: dict[int, TrackBaseline] = {}
        self._speech: dict[int, SpeechDetector] = {}
        self._last: dict[int, dict[str, Any]] = {}  # video: each track's last fields, repeated where HELD

    def update(self, face_id: int, t: float | None, fit: AuFit | Held | None) -> dict[str, Any]:
        """The AU fields of one face record (``t`` None for stills); ``HELD``: the track's last ones again."""
        if isinstance(fit, Held):
            return dict(self._last.get(face_id) or self._no_fit(None))
        fields = self._fields(face_id, t, fit)
        if t is not None:
            self._last[face_id] = fields
        return fields

    @staticmethod
    def _no_fit(speaking: float | None) -> dict[str, Any]:
        return {
            "aus": None,
            "au_intensity": None,
            "speaking": speaking,
            "speech_action": None,
            "hard_case_rules": None,
            "aus_reason": NO_FIT,
        }

    def _fields(self, face_id: int, t: float | None, fit: AuFit | None) -> dict[str, Any]:
        speaking = None
        if t is not None:  # video: the detector sees every frame of the track, with or without a fit
            detector = self._speech.setdefault(face_id, SpeechDetector())
            p = detector.update(t, fit.mouth if fit is not None else None)
            speaking = None if p is None else round(p, 4)
        if fit is None:
            return self._no_fit(speaking)
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
        """The running per-track state (baselines, speech windows, rule clocks, last fields) of ``tracks`` as JSON
        values."""
        return {
            "last": {str(i): f for i, f in self._last.items() if i in tracks},
            "baselines": {str(i): b.state() for i, b in self._baselines.items() if i in tracks},
            "speech": {str(i): d.state() for i, d in self._speech.items() if i in tracks},
            "rules": self.rules.state(tracks),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`."""
        self._last = {int(i): dict(f) for i, f in state["last"].items()}
        for i, s in state["baselines"].items():
            self._baselines.setdefault(int(i), TrackBaseline(self.model.neutral)).restore(s)
        for i, s in state["speech"].items():
            self._speech.setdefault(int(i), SpeechDetector()).restore(s)
        self.rules.restore(state["rules"])
