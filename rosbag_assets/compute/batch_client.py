"""`PipesBatchClient`: run a Dagster Pipes process as an AWS Batch job (plain or array), modelled on
dagster-aws's ``PipesECSClient``.

Context goes in through the container environment (or S3 when a bucket is configured); messages and
logs come back through the job's CloudWatch streams (or S3 for messages). The client polls
``describe_jobs`` until the job is terminal, forwards logs while it runs, terminates the job when the
Dagster step is interrupted and raises with the reason and last log lines when the job fails.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import boto3
import botocore.exceptions
import dagster as dg
from dagster import PipesClient
from dagster._core.definitions.resource_annotation import TreatAsResourceParam
from dagster._core.errors import DagsterExecutionInterruptedError, DagsterPipesExecutionError
from dagster._core.pipes.client import PipesClientCompletedInvocation, PipesContextInjector
from dagster._core.pipes.utils import PipesEnvContextInjector, open_pipes_session
from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

from rosbag_assets.compute.cloudwatch import BATCH_LOG_GROUP, CloudWatchTail, PipesBatchLogsMessageReader

TERMINAL = ("SUCCEEDED", "FAILED")
NOT_STARTED = ("SUBMITTED", "PENDING", "RUNNABLE")
PIPES_BUCKET_ENV = "ROSBAG_ASSETS_PIPES_BUCKET"
TAIL_LINES = 20


class DagsterExternalExecutionError(DagsterPipesExecutionError):
    """The Batch job ended FAILED; the message has the reasons, exit codes and last log lines."""


def retry_strategy(attempts: int) -> dict[str, Any]:
    """Retry lost hosts (Spot reclaim, EC2 maintenance) and image pull failures; never code failures.

    Batch evaluates the rules in order and retries when none matches, hence the final catch-all EXIT.
    """
    return {
        "attempts": attempts,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "CannotPullContainerError*", "action": "RETRY"},
            {"onReason": "CannotStartContainerError*", "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


def console_url(region: str, job_id: str) -> str:
    return f"https://{region}.console.aws.amazon.com/batch/home?region={region}#jobs/detail/{job_id}"


def log_url(region: str, stream: str, log_group: str = BATCH_LOG_GROUP) -> str:
    """CloudWatch console link of one log stream (the console double-encodes, with ``$`` for ``%``)."""

    def enc(s: str) -> str:
        return quote(quote(s, safe=""), safe="").replace("%", "$")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{enc(log_group)}/log-events/{enc(stream)}"
    )


def job_name(*parts: str) -> str:
    """A valid Batch job name (letters, digits, - and _; at most 128 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(p for p in parts if p)).strip("-")[:128] or "job"


class PipesBatchClient(PipesClient, TreatAsResourceParam):
    """A Pipes client that runs AWS Batch jobs.

    Args:
        client: boto3 Batch client.
        logs_client: boto3 CloudWatch Logs client (log forwarding; messages unless S3 is used).
        s3_client: boto3 S3 client, needed with `pipes_bucket`.
        pipes_bucket: when set, plain jobs get their context and send their messages through S3
            (``PipesS3ContextInjector``/``PipesS3MessageReader``); the container learns the bucket from
            ``ROSBAG_ASSETS_PIPES_BUCKET``. Array jobs always use the environment and their log streams,
            since all children would write the same S3 message chunks.
        context_injector: overrides the context injector for plain jobs.
        poll_interval_s: seconds between ``describe_jobs`` calls.
        logs_grace_s: how long to wait after the job ends for CloudWatch to deliver its last messages.
        forward_termination: terminate the job when the Dagster step is interrupted.
    """

    def __init__(
        self,
        client: Any = None,
        logs_client: Any = None,
        s3_client: Any = None,
        pipes_bucket: str | None = None,
        context_injector: PipesContextInjector | None = None,
        poll_interval_s: float = 5.0,
        logs_grace_s: float = 30.0,
        forward_termination: bool = True,
        log_group: str = BATCH_LOG_GROUP,
    ):
        self._client = client or boto3.client("batch")
        self._logs = logs_client or boto3.client("logs")
        self._s3 = s3_client
        self.pipes_bucket = pipes_bucket
        if pipes_bucket and s3_client is None:
            self._s3 = boto3.client("s3")
        self._context_injector = context_injector
        self.poll_interval_s = poll_interval_s
        self.logs_grace_s = logs_grace_s
        self.forward_termination = forward_termination
        self.log_group = log_group

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    @property
    def region(self) -> str:
        return self._client.meta.region_name

    def run(  # type: ignore[override]
        self,
        *,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        submit_job_params: Mapping[str, Any],
        extras: dict[str, Any] | None = None,
        array_size: int | None = None,
    ) -> PipesClientCompletedInvocation:
        """Submit a Batch job enriched with the Pipes protocol and wait for it.

        Args:
            context: the executing op/asset's context.
            submit_job_params: ``submit_job`` parameters; needs ``jobName``, ``jobQueue`` and ``jobDefinition``.
            extras: the Pipes extras (job parameters) the process reads.
            array_size: children of an array job (``AWS_BATCH_JOB_ARRAY_INDEX`` tells them apart); below 2
                the job is a plain job, as Batch requires array sizes of at least 2.
        """
        is_array = array_size is not None and array_size >= 2
        use_s3 = bool(self.pipes_bucket) and not is_array
        logs_reader = PipesBatchLogsMessageReader(
            self._logs,
            context.log,
            writers=array_size if is_array else 1,
            log_group=self.log_group,
            poll_interval_s=min(self.poll_interval_s, 2.0),
            keep_lines=TAIL_LINES,
        )
        if use_s3:
            message_reader: Any = PipesS3MessageReader(
                bucket=str(self.pipes_bucket), client=self._s3, interval=min(self.poll_interval_s, 2.0)
            )
            injector = self._context_injector or PipesS3ContextInjector(
                bucket=str(self.pipes_bucket), client=self._s3
            )
            tailer = CloudWatchTail(
                self._logs,
                lambda label, line: context.log.info(f"[batch] {line}"),
                self.log_group,
                min(self.poll_interval_s, 2.0),
                TAIL_LINES,
            )
        else:
            message_reader = logs_reader
            injector = self._context_injector or PipesEnvContextInjector()
            tailer = logs_reader.tailer

        with open_pipes_session(
            context=context, message_reader=message_reader, context_injector=injector, extras=extras
        ) as session:
            params = self._submit_params(context, session, submit_job_params, is_array, array_size, use_s3)
            response = self._client.submit_job(**params)
            job_id, job_arn = response["jobId"], response["jobArn"]
            context.log.info(
                f"[pipes] submitted Batch {'array ' if is_array else ''}job {job_id} "
                f"({params['jobDefinition']} on {params['jobQueue']}): {console_url(self.region, job_id)}"
            )
            if use_s3:
                tailer.start()
            status = "SUBMITTED"
            try:
                job = self._wait(context, job_id, array_size if is_array else None, tailer)
                status = job["status"]
            except (DagsterExecutionInterruptedError, KeyboardInterrupt):
                if self.forward_termination:
                    context.log.warning(f"[pipes] Dagster step interrupted: terminating Batch job {job_id}")
                    self._terminate(context, job_id)
                raise
            finally:
                if use_s3:
                    tailer.stop()
            grace = self.logs_grace_s if status == "SUCCEEDED" else min(self.logs_grace_s, 5.0)
            if not use_s3 and not logs_reader.wait_closed(grace):
                context.log.warning(f"[pipes] Batch job {job_id}: not every Pipes writer closed")
            if status == "FAILED":
                raise DagsterExternalExecutionError(self._failure_message(job, array_size, tailer))
            context.log.info(f"[pipes] Batch job {job_id} succeeded")
            metadata = self._metadata(job_id, job_arn, tailer.streams)
        return PipesClientCompletedInvocation(session, metadata=metadata)

    def _submit_params(
        self,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        session: Any,
        submit_job_params: Mapping[str, Any],
        is_array: bool,
        array_size: int | None,
        use_s3: bool,
    ) -> dict[str, Any]:
        params = copy.deepcopy(dict(submit_job_params))
        overrides = params.setdefault("containerOverrides", {})
        env = [e for e in overrides.get("environment", []) if e["name"] != PIPES_BUCKET_ENV]
        env += [{"name": k, "value": v} for k, v in session.get_bootstrap_env_vars().items()]
        if use_s3:
            env.append({"name": PIPES_BUCKET_ENV, "value": str(self.pipes_bucket)})
        overrides["environment"] = env
        tags = dict(params.get("tags") or {})
        tags.update(session.default_remote_invocation_info)
        if context.has_partition_key:
            tags["dagster/partition"] = context.partition_key
        if getattr(context, "has_assets_def", False) and context.has_assets_def:
            tags["dagster/asset-key"] = "-".join(
                key.to_user_string().replace("/", "-") for key in context.selected_asset_keys
            )
        params["tags"] = {k[:128]: re.sub(r"[^\w .:/=+\-@]", "_", str(v))[:256] for k, v in tags.items()}
        params.setdefault("propagateTags", True)
        if is_array:
            params["arrayProperties"] = {"size": int(array_size or 0)}
        else:
            params.pop("arrayProperties", None)
        return params

    def _describe(self, job_ids: Sequence[str]) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        for i in range(0, len(job_ids), 100):
            jobs += self._client.describe_jobs(jobs=list(job_ids[i : i + 100]))["jobs"]
        return jobs

    def _wait(
        self,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        job_id: str,
        array_size: int | None,
        tailer: CloudWatchTail,
    ) -> dict[str, Any]:
        """Poll until the job is terminal, following each (child) container's log stream as it appears."""
        last = None
        children_done: set[str] = set()
        while True:
            job = self._describe([job_id])[0]
            status = job["status"]
            if status != last:
                reason = f" ({job['statusReason']})" if job.get("statusReason") else ""
                context.log.info(f"[pipes] Batch job {job_id}: {status}{reason}")
                last = status
            if array_size is None:
                stream = (job.get("container") or {}).get("logStreamName")
                if stream:
                    tailer.add_stream(stream)
            elif status not in NOT_STARTED:
                pending = [f"{job_id}:{i}" for i in range(array_size) if f"{job_id}:{i}" not in children_done]
                for child in self._describe(pending) if pending else []:
                    stream = (child.get("container") or {}).get("logStreamName")
                    if stream:
                        tailer.add_stream(stream, label=f"child {child['jobId'].rsplit(':', 1)[-1]}")
                    if child["status"] in TERMINAL and stream:
                        children_done.add(child["jobId"])
            if status in TERMINAL:
                return job
            time.sleep(self.poll_interval_s)

    def _terminate(self, context: dg.OpExecutionContext | dg.AssetExecutionContext, job_id: str) -> None:
        """``terminate_job`` stops running jobs and cancels ones that have not started."""
        try:
            self._client.terminate_job(jobId=job_id, reason="Dagster step was interrupted")
        except botocore.exceptions.ClientError as exc:
            context.log.warning(f"[pipes] could not terminate Batch job {job_id}: {exc}")

    def _failure_message(self, job: dict[str, Any], array_size: int | None, tailer: CloudWatchTail) -> str:
        job_id = job["jobId"]
        lines = [f"AWS Batch job {job_id} failed: {job.get('statusReason') or 'no status reason'}"]
        failed = [job] if array_size is None else []
        if array_size:
            children = self._describe([f"{job_id}:{i}" for i in range(array_size)])
            failed = [c for c in children if c["status"] == "FAILED"]
            lines.append(f"{len(failed)} of {array_size} array children failed")
        streams = tailer.streams
        for failed_job in failed[:5]:
            container = failed_job.get("container") or {}
            attempts = failed_job.get("attempts") or []
            last_container = (attempts[-1].get("container") or {}) if attempts else {}
            exit_code = container.get("exitCode", last_container.get("exitCode"))
            reason = container.get("reason") or last_container.get("reason")
            lines.append(
                f"job {failed_job['jobId']}: status reason: {failed_job.get('statusReason')}; "
                f"container reason: {reason}; exit code: {exit_code}"
            )
            stream = container.get("logStreamName") or last_container.get("logStreamName")
            tail = tailer.tail(stream) if stream in streams else []
            if tail:
                lines.append(f"last {len(tail)} log lines of {stream}:")
                lines += [f"  {line}" for line in tail]
        return "\n".join(lines)

    def _metadata(self, job_id: str, job_arn: str, streams: Mapping[str, str | None]) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "AWS Batch job id": dg.MetadataValue.text(job_id),
            "AWS Batch job ARN": dg.MetadataValue.text(job_arn),
            "AWS Batch job URL": dg.MetadataValue.url(console_url(self.region, job_id)),
        }
        if len(streams) == 1:
            metadata["AWS Batch log URL"] = dg.MetadataValue.url(log_url(self.region, next(iter(streams))))
        elif streams:
            metadata["AWS Batch log streams"] = dg.MetadataValue.json(sorted(streams))
        return metadata
