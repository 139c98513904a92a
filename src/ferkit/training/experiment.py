"""Experiment tracking for training runs: MLflow with a local SQLite store by default, or nothing.

The default store is ``<output>/mlflow.db`` (``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db`` shows it),
artifacts go to ``<output>/mlartifacts``. Logged: flattened config as params, per-epoch metrics (loss, validation
accuracy/macro-F1, per-class recall and F1), the confusion matrix as JSON, and the exported ONNX model folder —
never a pickled torch model. A resumed run keeps logging into the same MLflow run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    """What the trainer and exporter log to."""

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_dict(self, obj: Any, name: str) -> None: ...
    def log_artifacts(self, folder: Path, artifact_path: str) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracking switched off."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_dict(self, obj: Any, name: str) -> None:
        pass

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": "0.1"}``; lists become JSON text."""
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    value = json.dumps(obj) if isinstance(obj, list | tuple) else str(obj)
    return {prefix[:-1]: value[:6000]}


class MlflowTracker:
    """One MLflow run; ``run_id`` is stored by the trainer so ``--resume`` continues the same run."""

    def __init__(self, uri: str, experiment: str, run_name: str, artifact_root: Path, run_id: str | None) -> None:
        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self._mlflow = mlflow
        self._client = mlflow.MlflowClient(tracking_uri=uri)
        exp = self._client.get_experiment_by_name(experiment)
        exp_id = (
            exp.experiment_id
            if exp is not None
            else self._client.create_experiment(experiment, artifact_location=artifact_root.resolve().as_uri())
        )
        if run_id is None:
            run_id = self._client.create_run(exp_id, run_name=run_name).info.run_id
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        old = self._client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in flat.items() if k not in old]
        for i in range(0, len(new), 100):
            self._client.log_batch(self.run_id, params=new[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_dict(self, obj: Any, name: str) -> None:
        self._client.log_dict(self.run_id, obj, name)

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        self._client.log_artifacts(self.run_id, str(folder), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status)


def open_tracker(
    enabled: bool, uri: str | None, experiment: str, output: Path, run_name: str, run_id: str | None = None
) -> Tracker:
    """An MLflow tracker (default store ``sqlite:///<output>/mlflow.db``) or a ``NullTracker``."""
    if not enabled:
        return NullTracker()
    output.mkdir(parents=True, exist_ok=True)
    uri = uri or f"sqlite:///{(output / 'mlflow.db').resolve()}"
    return MlflowTracker(uri, experiment, run_name, output / "mlartifacts", run_id)
