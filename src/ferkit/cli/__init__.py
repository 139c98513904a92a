"""The ``ferkit`` command line: one typer app (:mod:`ferkit.cli.app.app`) and a module per command group that registers
on it — :mod:`ferkit.cli.analysis` (analyze, evaluate, calibrate, models, demo; ``analyze --live`` in
:mod:`ferkit.cli.live`), :mod:`ferkit.cli.channels` (fuse), :mod:`ferkit.cli.train` (dataset, train, train-batch,
export), :mod:`ferkit.cli.curation` (mine, queue, curate, relabel), :mod:`ferkit.cli.stock` (pull, extract-faces) and
:mod:`ferkit.cli.synth`. No module outside this package imports it."""

from ferkit.cli import analysis as _analysis  # noqa: F401 - registers its commands on the app
from ferkit.cli import channels as _channels  # noqa: F401 - registers its commands on the app
from ferkit.cli import corpus as _corpus  # noqa: F401 - registers its commands on the app
from ferkit.cli import curation as _curation  # noqa: F401 - registers its commands on the app
from ferkit.cli import stock as _stock  # noqa: F401 - registers its commands on the app
from ferkit.cli import synth as _synth  # noqa: F401 - registers its commands on the app
from ferkit.cli import train as _train  # noqa: F401 - registers its commands on the app
from ferkit.cli.app import app, main

__all__ = ["app", "main"]
