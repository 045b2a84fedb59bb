"""SageMaker hyper-parameter tuning for a training step: ranges from configuration, the best trial's model kept.

With ``tuning`` set on the SageMaker target (per asset, e.g. for ``detector_model``), the step first runs as a
hyper-parameter tuning job: SageMaker starts up to ``max_jobs`` trials of the training image (each as
``<ENTRYPOINT> train``, see `rosbag_assets.steps.tuning_trial`), reads each trial's metrics from its log with
the MetricDefinitions' regexes and ranks trials by ``objective_metric``. The best trial's model artefact is
then handed to the step's ``trained_model`` option in one ordinary Pipes Training job, which evaluates and
publishes it: the tuning job never publishes anything itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import dagster as dg
from pydantic import Field, model_validator

# The step option that receives the best trial's model artefact (a model.tar.gz URI).
TUNED_MODEL_OPTION = "trained_model"
MAX_TUNING_JOB_NAME = 32
# What the training steps print as ``metrics: name=value ...`` lines (steps/sagemaker_container.py).
DEFAULT_METRICS = (
    "train:box_loss",
    "train:cls_loss",
    "train:dfl_loss",
    "val:mAP50",
    "val:mAP50-95",
    "val:precision",
    "val:recall",
    "best:mAP50",
    "best:mAP50-95",
    "test:mAP50",
    "test:mAP50-95",
)
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def metric_definitions(names: list[str] | tuple[str, ...]) -> list[dict[str, str]]:
    """SageMaker MetricDefinitions reading ``name=value`` from the job's log, one per metric name."""
    return [{"Name": name, "Regex": f"{re.escape(name)}={_NUMBER}"} for name in names]


class TuningRange(dg.Config):
    """One searched hyperparameter: a step option (lr0, epochs, ...) or an Ultralytics argument (momentum, ...)."""

    name: str = Field(description="Hyperparameter name, e.g. lr0, momentum, box, imgsz, optimizer.")
    min_value: float | None = Field(default=None, description="Lower bound (continuous/integer ranges).")
    max_value: float | None = Field(default=None, description="Upper bound (continuous/integer ranges).")
    integer: bool = Field(default=False, description="Search whole numbers only (IntegerParameterRanges).")
    values: list[str] = Field(default_factory=list, description="Categorical choices instead of a range.")
    scaling: Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"] = Field(
        default="Auto", description="How SageMaker samples the range (Logarithmic for learning rates)."
    )

    @model_validator(mode="after")
    def _range_or_values(self) -> TuningRange:
        if self.values:
            if self.min_value is not None or self.max_value is not None:
                raise ValueError(f"tuning range {self.name}: give values or min_value/max_value, not both")
        elif self.min_value is None or self.max_value is None or self.min_value >= self.max_value:
            raise ValueError(f"tuning range {self.name}: needs min_value < max_value (or values)")
        return self

    def samples(self) -> list[str]:
        """Values a trial can be given (as SageMaker passes them, strings): every choice, or the bounds and a
        value inside the range (not a round one: SageMaker samples any float), to check before launch that the
        step accepts them."""
        if self.values:
            return list(self.values)
        low, high = float(self.min_value or 0), float(self.max_value or 0)
        if self.integer:
            return [str(int(low)), str(int(high))]
        return [str(low), str(low + 0.37 * (high - low)), str(high)]

    def as_request(self) -> tuple[str, dict[str, Any]]:
        """(ParameterRanges key, entry) for CreateHyperParameterTuningJob."""
        if self.values:
            return "CategoricalParameterRanges", {"Name": self.name, "Values": list(self.values)}
        low, high = (int(self.min_value or 0), int(self.max_value or 0)) if self.integer else (
            self.min_value, self.max_value)  # fmt: skip
        entry = {"Name": self.name, "MinValue": str(low), "MaxValue": str(high), "ScalingType": self.scaling}
        return ("IntegerParameterRanges" if self.integer else "ContinuousParameterRanges"), entry


class SageMakerTuning(dg.Config):
    """A SageMaker hyper-parameter tuning job before the training step (README 'Training a detector')."""

    ranges: list[TuningRange] = Field(min_length=1, description="The searched hyperparameters.")
    objective_metric: str = Field(
        default="best:mAP50-95", description="Metric the search optimises (one of the target's metric_names)."
    )
    objective_type: Literal["Maximize", "Minimize"] = Field(default="Maximize")
    strategy: Literal["Bayesian", "Random"] = Field(default="Bayesian")
    max_jobs: int = Field(default=10, ge=1, description="Trials in total.")
    max_parallel_jobs: int = Field(default=2, ge=1, description="Trials at once.")
    early_stopping: Literal["Off", "Auto"] = Field(
        default="Off", description="Auto: SageMaker stops trials whose metrics lag behind."
    )

    @model_validator(mode="after")
    def _distinct(self) -> SageMakerTuning:
        names = [r.name for r in self.ranges]
        if len(set(names)) != len(names):
            raise ValueError(f"tuning ranges name a hyperparameter twice: {names}")
        return self

    def parameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.ranges:
            key, entry = r.as_request()
            out.setdefault(key, []).append(entry)
        return out

    def request(self, name: str, definition: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
        """``create_hyper_parameter_tuning_job`` arguments around a training job definition."""
        return {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": {
                "Strategy": self.strategy,
                "HyperParameterTuningJobObjective": {
                    "Type": self.objective_type,
                    "MetricName": self.objective_metric,
                },
                "ResourceLimits": {
                    "MaxNumberOfTrainingJobs": self.max_jobs,
                    "MaxParallelTrainingJobs": self.max_parallel_jobs,
                },
                "ParameterRanges": self.parameter_ranges(),
                "TrainingJobEarlyStoppingType": self.early_stopping,
            },
            "TrainingJobDefinition": definition,
            "Tags": [{"Key": k, "Value": str(v)[:256]} for k, v in tags.items()],
        }


def tuning_job_name(run_id: str, asset: str, partition: str | None, attempt: int = 0) -> str:
    """A tuning job name (<= 32 characters: SageMaker's limit, trials get ``-NNN-xxxxxxxx`` appended),
    deterministic per (run, asset, partition, attempt)."""
    digest = hashlib.sha256(f"{run_id}\0{asset}\0{partition or ''}\0{attempt}".encode()).hexdigest()[:10]
    head = re.sub(r"[^a-zA-Z0-9]+", "-", asset).strip("-")[: MAX_TUNING_JOB_NAME - 11].rstrip("-") or "tune"
    return f"{head}-{digest}"


def training_definition(training_job: dict[str, Any]) -> dict[str, Any]:
    """A tuning job's TrainingJobDefinition from ``create_training_job`` arguments.

    A definition cannot set the container's entry point (trials run the image's ENTRYPOINT with ``train``)
    nor carry Pipes bootstrap variables: trials report through their log and model artefact only.
    """
    algorithm = training_job["AlgorithmSpecification"]
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": algorithm["TrainingImage"],
            "TrainingInputMode": algorithm["TrainingInputMode"],
            "MetricDefinitions": algorithm.get("MetricDefinitions", []),
        },
        "StaticHyperParameters": {},
    }
    for key in (
        "RoleArn",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "EnableManagedSpotTraining",
        "CheckpointConfig",
        "VpcConfig",
        "Environment",
    ):
        if key in training_job:
            definition[key] = training_job[key]
    return definition


class TuningProgress:
    """Called on every poll of a tuning job: logs each trial once it ends (its objective value and tuned
    hyperparameters, or why it failed) and keeps the first failure reason for the error message."""

    def __init__(self, client: Any, context: Any, name: str):
        self.client, self.context, self.name = client, context, name
        self.reported: set[str] = set()
        self.first_failure: str | None = None
        self._counters: dict[str, Any] | None = None

    def __call__(self, response: dict[str, Any]) -> None:
        counters = response.get("TrainingJobStatusCounters") or {}
        if counters == self._counters:
            return
        self._counters = counters
        try:
            trials = self._trials()
        except Exception as exc:  # progress is informative; the tuning job's own status decides
            self.context.log.warning(f"could not list the trials of tuning job {self.name}: {exc}")
            return
        for trial in trials:
            name, status = trial["TrainingJobName"], trial["TrainingJobStatus"]
            if status not in ("Completed", "Failed", "Stopped") or name in self.reported:
                continue
            self.reported.add(name)
            tuned = ", ".join(
                f"{k}={v}" for k, v in sorted((trial.get("TunedHyperParameters") or {}).items())
            )
            objective = trial.get("FinalHyperParameterTuningJobObjectiveMetric")
            if status == "Completed" and objective:
                self.context.log.info(
                    f"tuning trial {name}: {objective['MetricName']}={objective['Value']:.5g} ({tuned})"
                )
            else:
                reason = trial.get("FailureReason") or "no reason given"
                self.first_failure = self.first_failure or f"trial {name} {status}: {reason}"
                self.context.log.warning(f"tuning trial {name} ended {status}: {reason} ({tuned})")
        done = sum(v for k, v in counters.items() if k != "InProgress")
        self.context.log.info(
            f"tuning job {self.name}: {done} trials ended, {counters.get('InProgress', 0)} running"
        )

    def _trials(self) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"HyperParameterTuningJobName": self.name, "MaxResults": 100}
        trials: list[dict[str, Any]] = []
        while True:
            page = self.client.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
            trials += page.get("TrainingJobSummaries", [])
            if not page.get("NextToken"):
                return trials
            kwargs["NextToken"] = page["NextToken"]
