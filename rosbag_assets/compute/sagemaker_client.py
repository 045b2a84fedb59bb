"""A Dagster Pipes client for Amazon SageMaker Processing and Training jobs.

SageMaker caps environment values at 256 characters (512 for training), so the Pipes context and the
messages travel through S3 (:class:`PipesS3ContextInjector` / :class:`PipesS3MessageReader`); only two
short bootstrap values go into the job's environment. Calls back off with full jitter on throttling,
a process-wide semaphore bounds the number of live jobs, and a Dagster interrupt stops the job.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
import dagster as dg
from botocore.exceptions import ClientError
from dagster import PipesClient
from dagster._core.definitions.resource_annotation import TreatAsResourceParam
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.pipes.client import (
    PipesClientCompletedInvocation,
    PipesContextInjector,
    PipesMessageReader,
)
from dagster._core.pipes.utils import open_pipes_session

if TYPE_CHECKING:
    from dagster._core.execution.context.asset_execution_context import AssetExecutionContext
    from dagster._core.execution.context.compute import OpExecutionContext

JobKind = Literal["processing", "training"]
T = TypeVar("T")

THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
ENV_VALUE_LIMIT: dict[JobKind, int] = {"processing": 256, "training": 512}
MAX_JOB_NAME = 63
JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
CONCURRENCY_POOL = "sagemaker"
"""Recommended Dagster concurrency pool for assets that launch SageMaker jobs (bounds all processes)."""

_semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


def job_semaphore(limit: int, key: str = CONCURRENCY_POOL) -> threading.BoundedSemaphore:
    """The process-wide semaphore that bounds live jobs for ``(key, limit)``."""
    if limit < 1:
        raise ValueError("max concurrent jobs must be at least 1")
    with _semaphores_lock:
        return _semaphores.setdefault((key, limit), threading.BoundedSemaphore(limit))


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")


def sagemaker_job_name(run_id: str, asset: str, partition: str | None, attempt: int = 0) -> str:
    """A valid SageMaker job name (<= 63 chars), deterministic per (run, asset, partition, attempt).

    A readable prefix (asset, partition, run id start, attempt) is truncated as needed; a hash of the
    full tuple keeps names distinct when the readable part is not.
    """
    digest = hashlib.sha256(f"{run_id}\0{asset}\0{partition or ''}\0{attempt}".encode()).hexdigest()[:10]
    tail = f"-{_slug(run_id)[:8]}-a{attempt}-{digest}"
    head = "-".join(p for p in (_slug(asset), _slug(partition or "")) if p) or "job"
    head = head[: MAX_JOB_NAME - len(tail)].rstrip("-") or "job"
    name = f"{head}{tail}"
    assert len(name) <= MAX_JOB_NAME and JOB_NAME_RE.match(name), name
    return name


def is_throttle(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") in THROTTLE_CODES


def call_with_backoff(
    fn: Callable[..., T],
    /,
    *,
    max_attempts: int = 8,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, float, ClientError], None] | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn(**kwargs)``, retrying throttling errors with exponential backoff and full jitter."""
    for attempt in range(max_attempts):
        try:
            return fn(**kwargs)
        except ClientError as err:
            if not is_throttle(err) or attempt == max_attempts - 1:
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            if on_retry:
                on_retry(attempt + 1, delay, err)
            sleep(delay)
    raise AssertionError("unreachable")


class PipesSageMakerClient(PipesClient, TreatAsResourceParam):
    """Runs a SageMaker Processing or Training job as a Pipes session.

    Args:
        client: boto3 SageMaker client.
        context_injector: defaults to :class:`PipesS3ContextInjector` on ``bucket``.
        message_reader: defaults to :class:`PipesS3MessageReader` on ``bucket`` (stdout/stderr included).
        bucket / s3_client / key_prefix: where the default injector and reader keep their objects.
        max_concurrent_jobs: bound on live jobs in this process (see :data:`CONCURRENCY_POOL`).
        poll_interval: seconds between ``describe_*_job`` calls.
        forward_termination: stop the job when the Dagster step is interrupted.
        sleep: injectable for tests.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        context_injector: PipesContextInjector | None = None,
        message_reader: PipesMessageReader | None = None,
        bucket: str | None = None,
        s3_client: Any = None,
        key_prefix: str = "dagster-pipes/",
        max_concurrent_jobs: int = 8,
        poll_interval: float = 15.0,
        message_interval: float = 10.0,
        forward_termination: bool = True,
        max_throttle_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

        self._client = client or boto3.client("sagemaker")
        if (context_injector is None or message_reader is None) and not bucket:
            raise ValueError("a bucket is needed for the default S3 context injector and message reader")
        s3 = s3_client or (boto3.client("s3") if bucket else None)
        self._context_injector = context_injector or PipesS3ContextInjector(
            bucket=bucket, client=s3, key_prefix=key_prefix
        )
        self._message_reader = message_reader or PipesS3MessageReader(
            bucket=bucket, client=s3, interval=message_interval, include_stdio_in_messages=True
        )
        self.max_concurrent_jobs = max_concurrent_jobs
        self.poll_interval = poll_interval
        self.forward_termination = forward_termination
        self.max_throttle_attempts = max_throttle_attempts
        self._sleep = sleep

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def _call(self, context: Any, method: str, **kwargs: Any) -> Any:
        def warn(n: int, delay: float, err: ClientError) -> None:
            context.log.warning(f"SageMaker {method} throttled (try {n}); retrying in {delay:.2f}s")

        return call_with_backoff(
            getattr(self._client, method),
            max_attempts=self.max_throttle_attempts,
            sleep=self._sleep,
            on_retry=warn,
            **kwargs,
        )

    @contextmanager
    def _slot(self, context: Any) -> Iterator[None]:
        sem = job_semaphore(self.max_concurrent_jobs)
        if not sem.acquire(blocking=False):
            context.log.info(f"waiting for one of {self.max_concurrent_jobs} SageMaker job slots")
            while not sem.acquire(timeout=1.0):
                pass
        try:
            yield
        finally:
            sem.release()

    def run(  # type: ignore[override]
        self,
        *,
        context: OpExecutionContext | AssetExecutionContext,
        processing_job_params: Mapping[str, Any] | None = None,
        training_job_params: Mapping[str, Any] | None = None,
        extras: dict[str, Any] | None = None,
    ) -> PipesClientCompletedInvocation:
        """Create the job (exactly one of the two parameter sets), wait for it, and return its results.

        ``*_job_params`` are the boto3 ``create_processing_job`` / ``create_training_job`` arguments;
        the Pipes bootstrap variables are merged into their ``Environment``.
        """
        if (processing_job_params is None) == (training_job_params is None):
            raise ValueError("pass exactly one of processing_job_params or training_job_params")
        kind: JobKind = "processing" if processing_job_params is not None else "training"
        params = dict(processing_job_params or training_job_params or {})
        name_key = "ProcessingJobName" if kind == "processing" else "TrainingJobName"
        name = params[name_key]
        if not (len(name) <= MAX_JOB_NAME and JOB_NAME_RE.match(name)):
            raise ValueError(f"invalid SageMaker job name {name!r}")

        with (
            self._slot(context),
            open_pipes_session(
                context=context,
                message_reader=self._message_reader,
                context_injector=self._context_injector,
                extras=extras,
            ) as session,
        ):
            env = {**(params.get("Environment") or {}), **session.get_bootstrap_env_vars()}
            limit = ENV_VALUE_LIMIT[kind]
            too_long = {k: len(v) for k, v in env.items() if len(v) > limit}
            if too_long:
                raise ValueError(f"SageMaker caps environment values at {limit} characters: {too_long}")
            params["Environment"] = env
            tags = {t["Key"]: t["Value"] for t in params.get("Tags") or []}
            tags.setdefault("dagster/run-id", context.run_id)
            params["Tags"] = [{"Key": k, "Value": str(v)[:256]} for k, v in tags.items()]

            self._call(context, f"create_{kind}_job", **params)
            context.log.info(f"started SageMaker {kind} job {name}")
            session.report_launched({"extras": {"job_name": name, "job_kind": kind}})
            try:
                response = self._wait(context, kind, name)
            except DagsterExecutionInterruptedError:
                if self.forward_termination:
                    self._stop(context, kind, name)
                raise
            status = response[f"{kind.capitalize()}JobStatus"]
            if status != "Completed":
                reason = response.get("FailureReason") or response.get("ExitMessage") or "no reason given"
                raise dg.Failure(
                    description=f"SageMaker {kind} job {name} ended {status}: {reason}",
                    metadata={"sagemaker_job_name": name, "status": status, "failure_reason": reason},
                )
            context.log.info(f"SageMaker {kind} job {name} completed")
        return PipesClientCompletedInvocation(session, metadata=self._metadata(kind, name, response))

    def _wait(self, context: Any, kind: JobKind, name: str) -> dict[str, Any]:
        name_key = f"{kind.capitalize()}JobName"
        while True:
            response = self._call(context, f"describe_{kind}_job", **{name_key: name})
            if response[f"{kind.capitalize()}JobStatus"] in TERMINAL:
                return response
            self._sleep(self.poll_interval)

    def _stop(self, context: Any, kind: JobKind, name: str) -> None:
        context.log.warning(f"[pipes] execution interrupted, stopping SageMaker {kind} job {name}")
        try:
            self._call(context, f"stop_{kind}_job", **{f"{kind.capitalize()}JobName": name})
        except ClientError as err:
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
        return meta
