"""A local stand-in for SageMaker: moto keeps the jobs, and each job's container really runs here.

`FakeSageMaker` wraps a boto3 client on moto: create_* really calls moto (so botocore validates every request
against the service model), then runs the job's container command as a local subprocess with only the
environment SageMaker would give it (the request's ``Environment``, role credentials, the image's ``ENV``).
A Training job's container also gets what the service stages: its ``/opt/ml`` (moved with
``ROSBAG_ASSETS_SAGEMAKER_ROOT``) with ``input/config/hyperparameters.json``, every input channel downloaded to
``input/data/<channel>/`` and the CheckpointConfig's S3 objects in ``checkpoints/``; afterwards ``model/`` is
uploaded as ``<S3OutputPath>/<job>/output/model.tar.gz``, ``checkpoints/`` is synced back, the
MetricDefinitions' regexes are applied to its log (``FinalMetricDataList``: last value of each) and
``output/failure`` becomes the FailureReason. A hyper-parameter tuning job runs its trials one after another
as ``<image ENTRYPOINT> train`` with sampled hyperparameters and ranks them by the objective metric.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import boto3
from botocore.awsrequest import AWSResponse
from dagster._core.errors import DagsterExecutionInterruptedError

from rosbag_assets.compute.aws import aws_client
from rosbag_assets.compute.sagemaker import SageMakerCompute
from rosbag_assets.compute.target import ENTRY_POINT

REPO = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
ROLE = "arn:aws:iam::123456789012:role/rosbag-assets-sagemaker"
IMAGE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "PYTHONUNBUFFERED": "1"}  # as the Dockerfiles set


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class FakeSageMaker:
    """A boto3 SageMaker client on moto whose jobs' containers run locally (see the module docstring).

    Args:
        throttle: HTTP attempts to answer with ThrottlingException, per operation (``CreateProcessingJob``);
            botocore's retries see them.
        faults: exceptions raised by the next ``describe_*_job`` calls (``None`` lets a call through).
        hang: jobs never finish; the second describe interrupts the step (as a cancelled run does).
        in_progress_polls: describes that still report ``InProgress`` for a finished job.
        program: the command a Pipes job's container runs instead of its entry point (a stand-in image).
        trial_program: the command tuning trials run instead of ``<ENTRYPOINT> train``.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        throttle: dict[str, int] | None = None,
        faults: list[BaseException | None] | None = None,
        hang: bool = False,
        in_progress_polls: int = 0,
        program: list[str] | None = None,
        trial_program: list[str] | None = None,
        seed: int = 0,
    ):
        self._s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        self.throttle = Counter(throttle or {})
        self.faults = list(faults or [])
        self.hang = hang
        self.in_progress_polls = in_progress_polls
        self.program = program
        self.trial_program = trial_program
        self.rng = random.Random(seed)
        self.attempts: Counter[str] = Counter()  # HTTP attempts per operation, retries included
        self.calls: Counter[str] = Counter()
        self.requests: dict[str, dict[str, Any]] = {}
        self.commands: dict[str, list[str]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, str] = {}
        self.roots: dict[str, Path] = {}  # each Training container's /opt/ml, kept for assertions
        self.tuning: dict[str, dict[str, Any]] = {}
        self.trials: dict[str, dict[str, Any]] = {}
        self.stopped: list[str] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="fake-sagemaker-"))
        self.bind(aws_client("sagemaker", region=REGION, endpoint_url=endpoint, retry_mode="standard"))

    def bind(self, client: Any) -> FakeSageMaker:
        """Use `client` (e.g. the one SageMakerCompute configures) and throttle below its retries."""
        self._sm = client
        self.meta = client.meta
        client.meta.events.register("before-send.sagemaker", self._before_send)
        return self

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        op = event_name.rsplit(".", 1)[-1]
        self.attempts[op] += 1
        if self.throttle[op] > 0:
            self.throttle[op] -= 1
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))
        return None

    # --- running a container ----------------------------------------------------------------------------
    def _run_container(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str],
        inputs: list[str],
        training: dict[str, Any] | None = None,
        program: list[str] | None = None,
    ) -> None:
        """Run `cmd` (what the service would start; recorded) or the test's stand-in `program`."""
        for key, value in env.items():  # the real service rejects these at create time
            assert len(value) <= 256, f"env {key} is {len(value)} chars"
        for uri in inputs:  # SageMaker fails a job whose S3 input prefix is empty
            bucket, prefix = _split(uri)
            assert self._s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) > 0, uri
        self.commands[name] = list(cmd)
        if self.hang:
            self.outcomes[name] = {"status": "InProgress"}
            return
        run_env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **CREDS, **IMAGE_ENV, **env}
        root = None
        if training is not None:
            root = self._stage(name, training)
            run_env |= {"ROSBAG_ASSETS_SAGEMAKER_ROOT": str(root), "TRAINING_JOB_NAME": name}
        run = program or cmd
        exe = [sys.executable if run[0] == "python" else run[0], *run[1:]]
        proc = subprocess.run(
            exe, env=run_env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False
        )
        self.logs[name] = proc.stdout + proc.stderr
        outcome: dict[str, Any] = {"status": "Completed" if proc.returncode == 0 else "Failed"}
        if proc.returncode != 0:
            failure = root / "output" / "failure" if root else None
            if failure is not None and failure.is_file():
                reason = failure.read_text()
            else:
                reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
            outcome["reason"] = f"AlgorithmError: {reason[:900]}"
        if training is not None and root is not None:
            outcome["metrics"] = _final_metrics(
                proc.stdout + proc.stderr, training["AlgorithmSpecification"].get("MetricDefinitions", [])
            )
            if proc.returncode == 0:
                outcome["artifact"] = self._upload_model(
                    name, root, training["OutputDataConfig"]["S3OutputPath"]
                )
            if training.get("CheckpointConfig"):
                self._upload_dir(root / "checkpoints", training["CheckpointConfig"]["S3Uri"])
        self.outcomes[name] = outcome

    def _stage(self, name: str, training: dict[str, Any]) -> Path:
        root = self.workdir / name
        for sub in ("input/config", "input/data", "model", "output"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        config = root / "input" / "config"
        (config / "hyperparameters.json").write_text(json.dumps(training.get("HyperParameters") or {}))
        channels = {c["ChannelName"]: c for c in training.get("InputDataConfig", [])}
        (config / "inputdataconfig.json").write_text(json.dumps({k: {} for k in channels}))
        for channel, spec in channels.items():
            self._download_prefix(
                spec["DataSource"]["S3DataSource"]["S3Uri"], root / "input" / "data" / channel
            )
        if training.get("CheckpointConfig"):
            (root / "checkpoints").mkdir()
            self._download_prefix(training["CheckpointConfig"]["S3Uri"], root / "checkpoints")
        self.roots[name] = root
        return root

    def _download_prefix(self, uri: str, target: Path) -> None:
        bucket, prefix = _split(uri)
        target.mkdir(parents=True, exist_ok=True)
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :].lstrip("/")
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                self._s3.download_file(bucket, obj["Key"], str(target / rel))

    def _upload_dir(self, folder: Path, uri: str) -> None:
        bucket, prefix = _split(uri)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            self._s3.upload_file(
                str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}"
            )

    def _upload_model(self, name: str, root: Path, output_path: str) -> str:
        archive = root / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted((root / "model").rglob("*")):
                tar.add(path, arcname=path.relative_to(root / "model").as_posix())
        bucket, prefix = _split(output_path)
        key = f"{prefix.rstrip('/')}/{name}/output/model.tar.gz"
        self._s3.upload_file(str(archive), bucket, key)
        return f"s3://{bucket}/{key}"

    # --- Processing and Training jobs ---------------------------------------------------------------------
    def create_processing_job(self, **kw: Any) -> dict[str, Any]:
        self.calls["create_processing_job"] += 1
        resp = self._sm.create_processing_job(**kw)
        self.requests[kw["ProcessingJobName"]] = kw
        inputs = [i["S3Input"]["S3Uri"] for i in kw.get("ProcessingInputs", [])]
        app = kw["AppSpecification"]
        cmd = app["ContainerEntrypoint"] + app.get("ContainerArguments", [])
        self._run_container(
            kw["ProcessingJobName"], cmd, kw.get("Environment", {}), inputs, program=self.program
        )
        return resp

    def create_training_job(self, **kw: Any) -> dict[str, Any]:
        self.calls["create_training_job"] += 1
        resp = self._sm.create_training_job(**kw)
        self.requests[kw["TrainingJobName"]] = kw
        inputs = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in kw.get("InputDataConfig", [])]
        algo = kw["AlgorithmSpecification"]
        cmd = algo["ContainerEntrypoint"] + algo.get("ContainerArguments", [])
        env = kw.get("Environment", {})
        self._run_container(kw["TrainingJobName"], cmd, env, inputs, training=kw, program=self.program)
        return resp

    def _status(self, kind: str, name: str, moto_status: str) -> tuple[str, str | None]:
        outcome = self.outcomes.get(name, {})
        if name in self.stopped:
            return "Stopped", None
        if self.hang or self.calls[f"describe_{kind}_job"] <= self.in_progress_polls:
            return "InProgress", None
        if outcome:
            return outcome["status"], outcome.get("reason")
        return moto_status, None

    def _fault(self, op: str, name: str) -> None:
        self.calls[op] += 1
        if self.faults:
            fault = self.faults.pop(0)
            if fault is not None:
                raise fault
        if self.hang and self.calls[op] >= 2 and name not in self.stopped:
            raise DagsterExecutionInterruptedError()  # the run is terminated while we poll

    def _describe(self, kind: str, name: str) -> dict[str, Any]:
        op = f"describe_{kind}_job"
        self._fault(op, name)
        key = kind.capitalize()
        resp = getattr(self._sm, op)(**{f"{key}JobName": name})
        resp[f"{key}JobStatus"], reason = self._status(kind, name, resp[f"{key}JobStatus"])
        if reason:
            resp["FailureReason"] = reason
        resp.setdefault("Environment", self.requests.get(name, {}).get("Environment", {}))  # as the service
        outcome = self.outcomes.get(name, {})
        if kind == "training" and resp[f"{key}JobStatus"] == "Completed":
            resp["FinalMetricDataList"] = outcome.get("metrics", [])
            if outcome.get("artifact"):
                resp["ModelArtifacts"] = {"S3ModelArtifacts": outcome["artifact"]}
        return resp

    def describe_processing_job(self, ProcessingJobName: str) -> dict[str, Any]:
        return self._describe("processing", ProcessingJobName)

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        if TrainingJobName in self.trials:  # started by a tuning job: moto does not know it
            return dict(self.trials[TrainingJobName])
        return self._describe("training", TrainingJobName)

    def list_processing_jobs(self, **kw: Any) -> dict[str, Any]:
        """moto's listing with the local runs' statuses (StatusEquals applied to those)."""
        wanted = kw.pop("StatusEquals", None)
        resp = self._sm.list_processing_jobs(**kw)
        summaries = []
        for summary in resp["ProcessingJobSummaries"]:
            name = summary["ProcessingJobName"]
            summary["ProcessingJobStatus"] = self._status("processing", name, summary["ProcessingJobStatus"])[
                0
            ]
            if wanted is None or summary["ProcessingJobStatus"] == wanted:
                summaries.append(summary)
        resp["ProcessingJobSummaries"] = summaries
        return resp

    def list_training_jobs(self, **kw: Any) -> dict[str, Any]:
        """moto's listing with the local runs' statuses (StatusEquals applied to those)."""
        wanted = kw.pop("StatusEquals", None)
        resp = self._sm.list_training_jobs(**kw)
        summaries = []
        for summary in resp["TrainingJobSummaries"]:
            name = summary["TrainingJobName"]
            summary["TrainingJobStatus"] = self._status("training", name, summary["TrainingJobStatus"])[0]
            if wanted is None or summary["TrainingJobStatus"] == wanted:
                summaries.append(summary)
        resp["TrainingJobSummaries"] = summaries
        return resp

    def list_tags(self, **kw: Any) -> dict[str, Any]:
        return self._sm.list_tags(**kw)

    def stop_processing_job(self, ProcessingJobName: str) -> dict[str, Any]:
        self.stopped.append(ProcessingJobName)
        return self._sm.stop_processing_job(ProcessingJobName=ProcessingJobName)

    def stop_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        self.stopped.append(TrainingJobName)  # moto has no stop_training_job
        return {}

    # --- hyper-parameter tuning ---------------------------------------------------------------------------
    def create_hyper_parameter_tuning_job(self, **kw: Any) -> dict[str, Any]:
        self.calls["create_hyper_parameter_tuning_job"] += 1
        resp = self._sm.create_hyper_parameter_tuning_job(**kw)
        name = kw["HyperParameterTuningJobName"]
        self.requests[name] = kw
        job: dict[str, Any] = {"status": "InProgress", "trials": [], "best": None, "reason": None}
        self.tuning[name] = job
        if self.hang:
            return resp
        config, definition = kw["HyperParameterTuningJobConfig"], kw["TrainingJobDefinition"]
        objective = config["HyperParameterTuningJobObjective"]
        inputs = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition.get("InputDataConfig", [])]
        for index in range(config["ResourceLimits"]["MaxNumberOfTrainingJobs"]):
            tuned = _sample(config["ParameterRanges"], self.rng)
            trial = f"{name}-{index + 1:03d}-{self.rng.getrandbits(32):08x}"
            hyper = {**definition.get("StaticHyperParameters", {}), **tuned}
            request = {
                **definition,
                "TrainingJobName": trial,
                "HyperParameters": {**hyper, "_tuning_objective_metric": objective["MetricName"]},
            }
            cmd = [*ENTRY_POINT, "train"]  # the image's ENTRYPOINT, as SageMaker starts a training image
            env = definition.get("Environment", {})
            self._run_container(trial, cmd, env, inputs, training=request, program=self.trial_program)
            job["trials"].append(self._trial_summary(name, trial, tuned, objective["MetricName"]))
        ranked = [t for t in job["trials"] if "FinalHyperParameterTuningJobObjectiveMetric" in t]
        if ranked:
            sign = 1 if objective["Type"] == "Maximize" else -1
            job["best"] = max(
                ranked, key=lambda t: sign * t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
            )
            job["status"] = "Completed"
        else:
            job["status"], job["reason"] = "Failed", "No training job completed with the objective metric"
        return resp

    def _trial_summary(self, tuning: str, trial: str, tuned: dict[str, str], metric: str) -> dict[str, Any]:
        outcome = self.outcomes[trial]
        now = dt.datetime.now(dt.UTC)
        summary: dict[str, Any] = {
            "TrainingJobName": trial,
            "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{trial}",
            "TuningJobName": tuning,
            "CreationTime": now,
            "TrainingJobStatus": outcome["status"],
            "TunedHyperParameters": tuned,
        }
        values = {m["MetricName"]: m["Value"] for m in outcome.get("metrics", [])}
        if outcome["status"] == "Completed" and metric in values:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": metric,
                "Value": values[metric],
            }
        if outcome.get("reason"):
            summary["FailureReason"] = outcome["reason"]
        self.trials[trial] = {
            "TrainingJobName": trial,
            "TrainingJobStatus": outcome["status"],
            "HyperParameters": tuned,
            "FinalMetricDataList": outcome.get("metrics", []),
            **(
                {"ModelArtifacts": {"S3ModelArtifacts": outcome["artifact"]}}
                if outcome.get("artifact")
                else {}
            ),
        }
        return summary

    def describe_hyper_parameter_tuning_job(self, HyperParameterTuningJobName: str) -> dict[str, Any]:
        name = HyperParameterTuningJobName
        resp = self._sm.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name
        )  # unknown: raises
        self._fault("describe_hyper_parameter_tuning_job", name)
        job = self.tuning[name]
        status = "Stopped" if name in self.stopped else job["status"]
        counts = Counter(t["TrainingJobStatus"] for t in job["trials"])
        resp.update(
            HyperParameterTuningJobStatus=status,
            TrainingJobStatusCounters={
                "Completed": counts["Completed"],
                "InProgress": 0 if status != "InProgress" else 1,
                "RetryableError": 0,
                "NonRetryableError": counts["Failed"],
                "Stopped": counts["Stopped"],
            },
        )
        if job["best"] is not None:
            resp["BestTrainingJob"] = job["best"]
        if job["reason"]:
            resp["FailureReason"] = job["reason"]
        return resp

    def list_training_jobs_for_hyper_parameter_tuning_job(self, **kw: Any) -> dict[str, Any]:
        self.calls["list_training_jobs_for_hyper_parameter_tuning_job"] += 1
        return {"TrainingJobSummaries": list(self.tuning[kw["HyperParameterTuningJobName"]]["trials"])}

    def stop_hyper_parameter_tuning_job(self, HyperParameterTuningJobName: str) -> dict[str, Any]:
        self.stopped.append(HyperParameterTuningJobName)  # moto has no stop for tuning jobs
        return {}


def _final_metrics(log: str, definitions: list[dict[str, str]]) -> list[dict[str, Any]]:
    """What SageMaker reports after a job: per MetricDefinition, the last value its regex found."""
    now = dt.datetime.now(dt.UTC)
    out = []
    for definition in definitions:
        found = re.findall(definition["Regex"], log)
        if found:
            value = float(found[-1] if isinstance(found[-1], str) else found[-1][0])
            out.append({"MetricName": definition["Name"], "Value": value, "Timestamp": now})
    return out


def _sample(ranges: dict[str, list[dict[str, Any]]], rng: random.Random) -> dict[str, str]:
    """One trial's values: uniform (or log-uniform) in each range, a random choice of each category."""
    tuned: dict[str, str] = {}
    for spec in ranges.get("ContinuousParameterRanges", []):
        low, high = float(spec["MinValue"]), float(spec["MaxValue"])
        if spec.get("ScalingType") == "Logarithmic":
            tuned[spec["Name"]] = repr(math.exp(rng.uniform(math.log(low), math.log(high))))
        else:
            tuned[spec["Name"]] = repr(rng.uniform(low, high))
    for spec in ranges.get("IntegerParameterRanges", []):
        tuned[spec["Name"]] = str(rng.randint(int(spec["MinValue"]), int(spec["MaxValue"])))
    for spec in ranges.get("CategoricalParameterRanges", []):
        tuned[spec["Name"]] = rng.choice(spec["Values"])
    return tuned


class FakeSageMakerCompute(SageMakerCompute):
    """SageMakerCompute whose SageMaker client is the test's fake, bound to the client it configures."""

    fake: ClassVar[FakeSageMaker | None] = None

    def sagemaker_client(self) -> Any:
        assert FakeSageMakerCompute.fake is not None
        return FakeSageMakerCompute.fake.bind(super().sagemaker_client())
