"""The units of a corpus run, passed to worker processes and Ray tasks: what every video is analysed with
(:class:`RunSpec`), one video to do (:class:`VideoJob`) and what became of it (:class:`VideoResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.corpus.manifest import Video


@dataclass(frozen=True)
class RunSpec:
    """What every video of a run is analysed with (the same in every worker and on every engine)."""

    models: tuple[str, ...] = ("ferkit",)
    calibration: bool = True
    every: int | None = 100
    fps: float | None = None
    detector: str = "blazeface"
    checkpoint_seconds: float = 2.0

    def options(self) -> AnalyzeOptions:
        """The analysis options (``every`` wins over ``fps``)."""
        return AnalyzeOptions(
            fps=self.fps, every=self.every, detector=self.detector, checkpoint_seconds=self.checkpoint_seconds
        )

    def sampling(self) -> str:
        """The sampling as the user wrote it (``every 100`` or ``5 fps``)."""
        return f"every {self.every}" if self.every is not None else f"{self.fps:g} fps"


@dataclass(frozen=True)
class VideoJob:
    """One video to analyse: where its work file and Parquet part go, and the key its part is stamped with."""

    video: Video
    key: str  # sha256 of the settings and the video's content
    content_sha256: str
    work: Path  # the JSONL work file (plus its .state.json checkpoint) while the video is analysed
    part: Path  # the finished Parquet part
    spec: RunSpec
    column_types: dict[str, str] = field(default_factory=dict)  # manifest column -> Arrow type name


@dataclass
class VideoResult:
    """What became of one video (returned by the worker, logged by the run)."""

    video_id: str
    ok: bool
    rows: int = 0
    faces: int = 0
    seconds: float = 0.0
    resumed: bool = False  # continued an interrupted run's work file
    error: str | None = None
    retryable: bool = False  # a failure another attempt may not repeat (not bad input)
    warnings: list[str] = field(default_factory=list)
    worker: int = 0  # the worker process id
    peak_rss_mb: float = 0.0  # the worker process's peak resident memory so far (MB)
