"""What a step sees inside a SageMaker Training container: input channels, model dir, hyperparameters, metrics.

SageMaker mounts each input channel at ``/opt/ml/input/data/<channel>/``, writes the job's configuration
(``hyperparameters.json``, ``inputdataconfig.json``) to ``/opt/ml/input/config/``, uploads
``/opt/ml/model/`` as ``model.tar.gz`` to the job's output path, syncs ``/opt/ml/checkpoints/`` with the
CheckpointConfig's S3 URI, and extracts metrics from the job's log with the MetricDefinitions' regexes.
``ROSBAG_ASSETS_SAGEMAKER_ROOT`` moves ``/opt/ml`` (tests run the container locally).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT_ENV = "ROSBAG_ASSETS_SAGEMAKER_ROOT"
DEFAULT_ROOT = "/opt/ml"


def root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def in_training_job() -> bool:
    """True inside a SageMaker Training container (the service wrote the job's input configuration)."""
    return (root() / "input" / "config").is_dir()


def channel_dir(name: str) -> Path | None:
    """Where input channel `name` is mounted, when this is a Training job that has that channel."""
    path = root() / "input" / "data" / name
    return path if in_training_job() and path.is_dir() else None


def model_dir() -> Path | None:
    """``/opt/ml/model`` (uploaded as the job's model artefact) inside a Training job, else None."""
    path = root() / "model"
    return path if in_training_job() and path.is_dir() else None


def checkpoints_dir() -> Path | None:
    """``/opt/ml/checkpoints`` when the service synced it (the job has a CheckpointConfig)."""
    path = root() / "checkpoints"
    return path if path.is_dir() else None


def hyperparameters() -> dict[str, str]:
    """The job's hyperparameters (a tuning trial's tuned values; all strings), without SageMaker's own
    ``_tuning_objective_metric`` and similar underscore keys."""
    path = root() / "input" / "config" / "hyperparameters.json"
    if not path.is_file():
        return {}
    return {k: str(v) for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def metric_line(values: Mapping[str, Any]) -> str:
    """One log line of ``name=value`` pairs, the form the MetricDefinitions' regexes read
    (`rosbag_assets.compute.sagemaker_tuning.metric_definitions`)."""
    pairs = [f"{k}={float(v):.6g}" for k, v in values.items() if _finite(v)]
    return "metrics: " + " ".join(pairs)


def emit_metrics(values: Mapping[str, Any]) -> None:
    """Print a metric line to stdout (the job's CloudWatch log) when running in a Training job."""
    if in_training_job() and values:
        print(metric_line(values), file=sys.stdout, flush=True)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def record_failure(exc: BaseException) -> None:
    """Write ``/opt/ml/output/failure``: SageMaker shows it as the job's FailureReason (first 1 KiB)."""
    if not in_training_job():
        return
    path = root() / "output" / "failure"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{type(exc).__name__}: {exc}"[:1024])
    except OSError:
        pass  # the failure itself is what matters; the job still fails with the exit code
