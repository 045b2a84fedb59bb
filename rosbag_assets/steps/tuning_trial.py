"""One trial of a SageMaker hyper-parameter tuning job, run by the entry point without Dagster Pipes.

A tuning job starts every trial as ``<image ENTRYPOINT> train`` (its training definition cannot set an entry
point or per-trial Pipes channels), so a trial reads the step's parameters from its ``params`` input channel
and the tuned values from ``hyperparameters.json``, trains, leaves the model in ``/opt/ml/model`` and prints
its metrics for the tuning job to rank it. Only the winner is then published, by an ordinary Pipes job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rosbag_assets.io.storage import storage_from_uri
from rosbag_assets.steps import report, sagemaker_container
from rosbag_assets.steps.runtime import configure_runtime

PARAMS_CHANNEL = "params"
PARAMS_FILE = "params.json"
TRIAL_STEPS = ("detector_model",)


class TrialError(RuntimeError):
    """The trial cannot run: no params channel, or a step that has no tuning trial."""


def check_ranges(params: Mapping[str, Any], samples: Mapping[str, Sequence[str]]) -> None:
    """Refuse a search before it launches when a trial would fail on its tuned values: a step without tuning
    trials, a range name the step does not know, or values it refuses (a continuous range over a whole-number
    option). Otherwise every trial fails the same way, after minutes of instance start-up each."""
    if params.get("step") not in TRIAL_STEPS:
        raise TrialError(f"step {params.get('step')!r} has no tuning trial; one of {TRIAL_STEPS}")
    from rosbag_assets.steps.detector_model import trial_options

    first = {name: values[0] for name, values in samples.items() if values}  # trials tune all ranges at once
    for name, values in samples.items():
        for value in values:
            try:
                trial_options(params.get("options") or {}, {**first, name: value})
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise TrialError(
                    f"tuning range {name!r}: a trial given {name}={value!r} would fail: {exc}"
                ) from None


def run_trial() -> int:
    """Run the trial this SageMaker Training container was started for; any failure is its FailureReason."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        configure_runtime()
        channel = sagemaker_container.channel_dir(PARAMS_CHANNEL)
        if channel is None or not (channel / PARAMS_FILE).is_file():
            raise TrialError(f"no {PARAMS_FILE} in a '{PARAMS_CHANNEL}' input channel: not a tuning trial")
        params = json.loads((channel / PARAMS_FILE).read_text())
        if params.get("step") not in TRIAL_STEPS:
            raise TrialError(f"step {params.get('step')!r} has no tuning trial; one of {TRIAL_STEPS}")
        from rosbag_assets.steps.detector_model import run_detector_trial

        output = storage_from_uri(params["output"], endpoint_url=params.get("s3_endpoint_url"))
        metrics = run_detector_trial(
            output=output,
            options=params.get("options") or {},
            tuned=sagemaker_container.hyperparameters(),
            log=report.default_log(),
        )
    except BaseException as exc:
        sagemaker_container.record_failure(exc)
        raise
    print(json.dumps({"best_val": metrics.get("best_val"), "epochs": metrics.get("epochs_recorded")}))
    return 0
