"""A Dagster Pipes client for Amazon SageMaker Processing and Training jobs.

SageMaker caps environment values at 256 characters (512 for training), so the Pipes context and the
messages travel through S3 by default (:class:`PipesS3ContextInjector` / `ResumableS3MessageReader`); only
two short bootstrap values go into the job's environment. Throttling is retried by botocore (the client is
built with its adaptive retry mode); how many jobs run at once is bounded by the asset's Dagster
concurrency pool. Whatever ends the wait early stops the job; a retry attaches to a live job of the same
run, asset and partition instead of creating another one.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from botocore.exceptions import ClientError
from dagster._core.pipes.client import (
    PipesClientCompletedInvocation,
    PipesContextInjector,
    PipesMessageReader,
)
from dagster._core.pipes.utils import open_pipes_session

from rosbag_assets.compute.attach import ResumableS3MessageReader, environment, identity_tags, resume_messages
from rosbag_assets.compute.aws import aws_client, is_transient
from rosbag_assets.compute.errors import SageMakerJobFailed
from rosbag_assets.compute.remote_client import RemoteJobClient
from rosbag_assets.compute.sagemaker_tuning import TuningProgress

if TYPE_CHECKING:
    from dagster._core.execution.context.asset_execution_context import AssetExecutionContext
    from dagster._core.execution.context.compute import OpExecutionContext

JobKind = Literal["processing", "training"]
PolledKind = Literal["processing", "training", "hyper_parameter_tuning"]  # same describe/stop call shapes

TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
ENV_VALUE_LIMIT: dict[JobKind, int] = {"processing": 256, "training": 512}
MAX_JOB_NAME = 63
JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")


def _run_fragment(run_id: str) -> str:
    """The part of every job name of one run that a list call can search for."""
    return f"-{_slug(run_id)[:8]}-a"


def sagemaker_job_name(run_id: str, asset: str, partition: str | None, attempt: int = 0) -> str:
    """A valid SageMaker job name (<= 63 chars), deterministic per (run, asset, partition, attempt).

    A readable prefix (asset, partition, run id start, attempt) is truncated as needed; a hash of the
    full tuple keeps names distinct when the readable part is not. Names are unique per account forever,
    so every attempt gets its own; a retry finds an earlier attempt's live job by its tags instead.
    """
    digest = hashlib.sha256(f"{run_id}\0{asset}\0{partition or ''}\0{attempt}".encode()).hexdigest()[:10]
    tail = f"{_run_fragment(run_id)}{attempt}-{digest}"
    head = "-".join(p for p in (_slug(asset), _slug(partition or "")) if p) or "job"
    head = head[: MAX_JOB_NAME - len(tail)].rstrip("-") or "job"
    name = f"{head}{tail}"
    assert len(name) <= MAX_JOB_NAME and JOB_NAME_RE.match(name), name
    return name


def _key(kind: PolledKind) -> str:
    return {"processing": "ProcessingJob", "training": "TrainingJob"}.get(kind, "HyperParameterTuningJob")


class PipesSageMakerClient(RemoteJobClient):
    """Runs a SageMaker Processing or Training job as a Pipes session.

    Args:
        client: boto3 SageMaker client (default: one with botocore's adaptive retries).
        context_injector: defaults to :class:`PipesS3ContextInjector` on ``bucket``.
        message_reader: defaults to `ResumableS3MessageReader` on ``bucket`` (stdout/stderr included).
        bucket / s3_client / key_prefix: where the default injector and reader keep their objects.
        poll_interval: seconds between ``describe_*_job`` calls.
        forward_termination: stop the job whenever the step stops waiting for it before it finished.
        attach: look for a live job of the same run, asset and partition before creating one.
        max_poll_errors: transient ``describe_*_job`` failures in a row tolerated.
        sleep: injectable for tests.
    """

    def __init__(
        self,
        client: Any = None,
        context_injector: PipesContextInjector | None = None,
        message_reader: PipesMessageReader | None = None,
        *,
        bucket: str | None = None,
        s3_client: Any = None,
        key_prefix: str = "dagster-pipes/",
        poll_interval: float = 15.0,
        message_interval: float = 10.0,
        forward_termination: bool = True,
        attach: bool = True,
        max_poll_errors: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from dagster_aws.pipes import PipesS3ContextInjector

        self._client = client or aws_client("sagemaker")
        if (context_injector is None or message_reader is None) and not bucket:
            raise ValueError("a bucket is needed for the default S3 context injector and message reader")
        s3 = s3_client or (aws_client("s3") if bucket else None)
        super().__init__(
            context_injector or PipesS3ContextInjector(bucket=str(bucket), client=s3, key_prefix=key_prefix),
            message_reader
            or ResumableS3MessageReader(
                bucket=str(bucket), client=s3, interval=message_interval, include_stdio_in_messages=True
            ),
            forward_termination=forward_termination,
            attach=attach,
            max_poll_errors=max_poll_errors,
        )
        self.poll_interval = poll_interval
        self._sleep = sleep

    def run(  # type: ignore[override]
        self,
        *,
        context: OpExecutionContext | AssetExecutionContext,
        processing_job_params: Mapping[str, Any] | None = None,
        training_job_params: Mapping[str, Any] | None = None,
        extras: dict[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> PipesClientCompletedInvocation:
        """Create the job (exactly one of the two parameter sets), wait for it, and return its results.

        ``*_job_params`` are the boto3 ``create_processing_job`` / ``create_training_job`` arguments;
        the Pipes bootstrap variables are merged into their ``Environment``. ``metadata`` is added to the
        materialization (e.g. what a tuning job before this one found).
        """
        if (processing_job_params is None) == (training_job_params is None):
            raise ValueError("pass exactly one of processing_job_params or training_job_params")
        kind: JobKind = "processing" if processing_job_params is not None else "training"
        params = dict(processing_job_params or training_job_params or {})
        name = params[f"{_key(kind)}Name"]
        if not (len(name) <= MAX_JOB_NAME and JOB_NAME_RE.match(name)):
            raise ValueError(f"invalid SageMaker job name {name!r}")
        live = self.find_live_job(context, kind) if self.attach else None
        if live is not None and not resume_messages(
            self._message_reader, environment(live.get("Environment"))
        ):
            self._stop(
                context, kind, live[f"{_key(kind)}Name"], "replaced by a retry that cannot read its messages"
            )
            live = None

        with open_pipes_session(
            context=context,
            message_reader=self._message_reader,
            context_injector=self._context_injector,
            extras=extras,
        ) as session:
            if live is None:
                self._create(context, kind, name, params, session)
            else:
                name = live[f"{_key(kind)}Name"]
                context.log.info(
                    f"attached to SageMaker {kind} job {name}, left running by an earlier attempt"
                )
            session.report_launched({"extras": {"job_name": name, "job_kind": kind}})
            try:
                response = self._wait(context, kind, name)
            except BaseException as exc:  # interrupt, API failing for good: never orphan the job
                if self.forward_termination:
                    self._stop(
                        context, kind, name, f"the Dagster step stopped waiting ({type(exc).__name__})"
                    )
                raise
            status = response[f"{_key(kind)}Status"]
            if status != "Completed":
                reason = response.get("FailureReason") or response.get("ExitMessage")
                raise SageMakerJobFailed(name, kind, status, reason)
            context.log.info(f"SageMaker {kind} job {name} completed")
        meta = {**self._metadata(kind, name, response), **(metadata or {})}
        return PipesClientCompletedInvocation(session, metadata=meta)

    def tune(self, context: Any, request: Mapping[str, Any], earlier: Sequence[str] = ()) -> dict[str, Any]:
        """Run a hyper-parameter tuning job to its end; return its best trial, described.

        `request` holds the ``create_hyper_parameter_tuning_job`` arguments. A tuning job of an earlier
        attempt (`earlier`: their names) still InProgress, or Completed, is followed instead of starting
        another; whatever ends the wait early stops the tuning job (and so its trials).
        """
        kind: PolledKind = "hyper_parameter_tuning"
        name = request["HyperParameterTuningJobName"]
        live = self._earlier_tuning(context, earlier)
        if live is not None:
            name = live
            context.log.info(f"following tuning job {name}, started by an earlier attempt")
        else:
            try:
                self._client.create_hyper_parameter_tuning_job(**request)
            except ClientError as err:  # a retried create whose first try went through
                if err.response.get("Error", {}).get("Code") != "ResourceInUse":
                    raise
            context.log.info(f"started SageMaker hyper-parameter tuning job {name}")
        progress = TuningProgress(self._client, context, name)
        try:
            response = self._wait(context, kind, name, on_poll=progress)
        except BaseException as exc:
            if self.forward_termination:
                self._stop(context, kind, name, f"the Dagster step stopped waiting ({type(exc).__name__})")
            raise
        status, best = response["HyperParameterTuningJobStatus"], response.get("BestTrainingJob")
        if status != "Completed" or not best:
            reasons = [r for r in (response.get("FailureReason"), progress.first_failure) if r]
            ended = status if status != "Completed" else "Completed without a best trial"
            raise SageMakerJobFailed(name, "hyper-parameter tuning", ended, "; ".join(reasons) or None)
        trial = self._client.describe_training_job(TrainingJobName=best["TrainingJobName"])
        if not (trial.get("ModelArtifacts") or {}).get("S3ModelArtifacts"):
            raise SageMakerJobFailed(best["TrainingJobName"], "training", "without a model artefact", None)
        return {"tuning_job": name, "best": best, "trial": trial}

    def _earlier_tuning(self, context: Any, names: Sequence[str]) -> str | None:
        """The first of `names` that is InProgress or Completed (a retry continues from it), else None."""
        for name in names:
            try:
                status = self._client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
                    "HyperParameterTuningJobStatus"
                ]
            except ClientError:
                continue  # never created
            if status in ("InProgress", "Completed"):
                return name
        return None

    def _create(self, context: Any, kind: JobKind, name: str, params: dict[str, Any], session: Any) -> None:
        env = {**(params.get("Environment") or {}), **session.get_bootstrap_env_vars()}
        limit = ENV_VALUE_LIMIT[kind]
        too_long = {k: len(v) for k, v in env.items() if len(v) > limit}
        if too_long:
            raise ValueError(f"SageMaker caps environment values at {limit} characters: {too_long}")
        params["Environment"] = env
        tags = {t["Key"]: t["Value"] for t in params.get("Tags") or []}
        tags.update(identity_tags(context))
        params["Tags"] = [{"Key": k, "Value": str(v)[:256]} for k, v in tags.items()]
        try:
            getattr(self._client, f"create_{kind}_job")(**params)
        except ClientError as err:
            # botocore retried a create whose first try had gone through: the job is ours, follow it
            if (
                "already" not in str(err).lower()
                and err.response.get("Error", {}).get("Code") != "ResourceInUse"
            ):
                raise
            context.log.info(f"SageMaker {kind} job {name} already exists (a retried create); following it")
        context.log.info(f"started SageMaker {kind} job {name}")

    def find_live_job(self, context: Any, kind: JobKind) -> dict[str, Any] | None:
        """An in-progress job of this run, asset and partition (by its tags), described; or None."""
        wanted = identity_tags(context)
        key = _key(kind)
        try:
            kwargs: dict[str, Any] = {
                "NameContains": _run_fragment(context.run_id),
                "StatusEquals": "InProgress",
            }
            summaries: list[dict[str, Any]] = []
            while True:
                page = getattr(self._client, f"list_{kind}_jobs")(**kwargs)
                summaries += page.get(f"{key}Summaries", [])
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
            for summary in summaries:
                if summary.get(f"{key}Status") != "InProgress":
                    continue
                tags = {
                    t["Key"]: t["Value"]
                    for t in self._client.list_tags(ResourceArn=summary[f"{key}Arn"])["Tags"]
                }
                if all(tags.get(k) == v for k, v in wanted.items()):
                    return getattr(self._client, f"describe_{kind}_job")(
                        **{f"{key}Name": summary[f"{key}Name"]}
                    )
        except Exception as exc:  # looking is an optimisation; creating is always possible
            context.log.warning(f"could not look for a live SageMaker {kind} job to attach to: {exc}")
        return None

    def _wait(
        self,
        context: Any,
        kind: PolledKind,
        name: str,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until terminal; transient errors are retried ``max_poll_errors`` times in a row."""
        key = _key(kind)
        failures = 0
        while True:
            try:
                response = getattr(self._client, f"describe_{kind}_job")(**{f"{key}Name": name})
                failures = 0
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                self._sleep(
                    self.poll_failed(
                        context, f"SageMaker {kind} job {name}", failures, exc, self.poll_interval
                    )
                )
                continue
            if on_poll is not None:
                on_poll(response)
            if response[f"{key}Status"] in TERMINAL:
                return response
            self._sleep(self.poll_interval)

    def _stop(self, context: Any, kind: PolledKind, name: str, why: str) -> None:
        """``stop_*_job``, best effort (a finished job just refuses)."""
        context.log.warning(f"stopping SageMaker {kind} job {name}: {why}")
        try:
            getattr(self._client, f"stop_{kind}_job")(**{f"{_key(kind)}Name": name})
        except Exception as err:
            context.log.warning(f"could not stop SageMaker {kind} job {name}: {err}")

    def _metadata(self, kind: JobKind, name: str, response: Mapping[str, Any]) -> dict[str, Any]:
        region = self._client.meta.region_name
        page = "processing-jobs" if kind == "processing" else "jobs"
        meta: dict[str, Any] = {
            "sagemaker_job_name": name,
            "sagemaker_job_url": dg.MetadataValue.url(
                f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{page}/{name}"
            ),
        }
        start, end = (
            response.get("ProcessingStartTime") or response.get("TrainingStartTime"),
            response.get("ProcessingEndTime") or response.get("TrainingEndTime"),
        )
        if start and end:
            meta["sagemaker_job_seconds"] = float((end - start).total_seconds())
        final = {m["MetricName"]: m["Value"] for m in response.get("FinalMetricDataList") or []}
        if final:  # what the job's MetricDefinitions read from its log (last value of each)
            meta["sagemaker_metrics"] = dg.MetadataValue.json(final)
        return meta
