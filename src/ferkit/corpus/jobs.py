"""The units of a corpus run, passed to worker processes and Ray tasks: what every video is analysed with
(:class:`RunSpec`), one video or one segment of a long video to do (:class:`VideoJob`, :class:`Segment`) and what
became of it (:class:`VideoResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.corpus.manifest import Video
from ferkit.errors import InputError
from ferkit.models.loading import DEFAULT_MODEL


@dataclass(frozen=True)
class RunSpec:
    """What every video of a run is analysed with (the same in every worker and on every engine)."""

    models: tuple[str, ...] = (DEFAULT_MODEL,)
    calibration: bool = True
    every: int | None = 100
    fps: float | None = None
    detector: str = "yunet"
    checkpoint_seconds: float = 2.0
    segment_minutes: float = 10.0  # --every runs: a longer video is analysed in segments of this length (0: never)

    def options(self) -> AnalyzeOptions:
        """The analysis options (``every`` wins over ``fps``)."""
        return AnalyzeOptions(
            fps=self.fps, every=self.every, detector=self.detector, checkpoint_seconds=self.checkpoint_seconds
        )

    def segmenting(self) -> float:
        """Minutes per segment of a long video (0: videos are not split; ``--fps`` runs never are)."""
        m = self.segment_minutes
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 1e6:
            raise InputError(f"--segment-minutes must be a number of minutes in [0, 1e6], got {m!r}")
        return float(m) if self.every is not None else 0.0

    def sampling(self) -> str:
        """The sampling as the user wrote it (``every 100`` or ``5 fps``)."""
        return f"every {self.every}" if self.every is not None else f"{self.fps:g} fps"


@dataclass(frozen=True)
class Segment:
    """One segment of a long video, analysed as a task of its own: its display-order frames ``[start, stop)``
    (``stop`` None: to the end), whose samples are those a whole-video pass takes there."""

    number: int  # 0-based
    count: int
    start: int
    stop: int | None
    start_s: float  # where it starts and ends in seconds (header frame rate; progress only)
    end_s: float
    index_file: Path  # the video's packet index, cached for all its segments

    @property
    def label(self) -> str:
        """``2/5``: the second of five segments."""
        return f"{self.number + 1}/{self.count}"


@dataclass(frozen=True)
class VideoJob:
    """One video, or one segment of one, to analyse: where its work file and Parquet part go, and the key its part is
    stamped with."""

    video: Video
    key: str  # sha256 of the settings and the video's content (and the segment's frames)
    content_sha256: str
    work: Path  # the JSONL work file (plus its .state.json checkpoint) while the video is analysed
    part: Path  # the finished Parquet part (a segment's: in the work folder until the video's segments are merged)
    spec: RunSpec
    column_types: dict[str, str] = field(default_factory=dict)  # manifest column -> Arrow type name
    duration: float | None = None  # the video's runtime (container header)
    segment: Segment | None = None

    @property
    def task(self) -> str:
        """The task's name: the video id, with ``[2/5]`` for a segment."""
        return self.video.video_id + (f"[{self.segment.label}]" if self.segment else "")

    @property
    def seconds(self) -> float:
        """Seconds of video this task covers."""
        if self.segment is None:
            return self.duration or 0.0
        return max(0.0, self.segment.end_s - self.segment.start_s)


@dataclass
class VideoResult:
    """What became of one video (returned by the worker, logged by the run)."""

    video_id: str
    ok: bool
    rows: int = 0
    faces: int = 0
    seconds: float = 0.0  # the task's own time (analysis and its part), without the worker's setup
    setup_s: float = 0.0  # a worker's first task: importing, loading the models and making the analyzer
    resumed: bool = False  # continued an interrupted run's work file
    error: str | None = None
    retryable: bool = False  # a failure another attempt may not repeat (not bad input)
    warnings: list[str] = field(default_factory=list)
    worker: int = 0  # the worker process id
    peak_rss_mb: float = 0.0  # the worker process's peak resident memory so far (MB)
    segment: str | None = None  # ``2/5`` for a segment of a long video

    @property
    def task(self) -> str:
        """The task's name (as :attr:`VideoJob.task`)."""
        return self.video_id + (f"[{self.segment}]" if self.segment else "")
