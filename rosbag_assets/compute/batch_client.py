"""`PipesBatchClient`: run a Dagster Pipes process as an AWS Batch job (plain or array), in the manner of
dagster-aws's ``PipesECSClient``: the context injector and message reader come from outside.

Defaults: the context goes in through the container environment, messages and logs come back through
the job's CloudWatch streams (`PipesBatchLogsMessageReader`, which also serves array jobs). Any other
reader (e.g. S3) works for plain jobs; the client then tails the streams only to forward logs.

The job is never left behind: whatever ends the wait early (an interrupt, the API failing for good, the
job vanishing) terminates it, best effort. Polling retries transient errors a bounded number of times,
on top of botocore's own retries. A retry of the step first looks for a live job of the same run, asset
and partition (job name and tags) and attaches to it instead of submitting a duplicate.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster._core.pipes.client import (
    PipesClientCompletedInvocation,
    PipesContextInjector,
    PipesMessageReader,
)
from dagster._core.pipes.utils import PipesEnvContextInjector, open_pipes_session

from rosbag_assets.compute.attach import environment, identity_tags, resume_messages, tag_value
from rosbag_assets.compute.aws import aws_client, is_transient
from rosbag_assets.compute.cloudwatch import (
    BATCH_LOG_GROUP,
    CloudWatchTail,
    PipesBatchLogsMessageReader,
    log_url,
)
from rosbag_assets.compute.errors import BatchJobFailed
from rosbag_assets.compute.remote_client import RemoteJobClient

TERMINAL = ("SUCCEEDED", "FAILED")
LIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
NOT_STARTED = ("SUBMITTED", "PENDING", "RUNNABLE")
TAIL_LINES = 20


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


def job_name(*parts: str) -> str:
    """A valid Batch job name (letters, digits, - and _; at most 128 characters)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(p for p in parts if p)).strip("-")[:128] or "job"


class PipesBatchClient(RemoteJobClient):
    """A Pipes client that runs AWS Batch jobs.

    Args:
        client: boto3 Batch client (default: one with botocore's adaptive retries).
        context_injector: how the context reaches the container; default `PipesEnvContextInjector`.
        message_reader: where messages come from; default `PipesBatchLogsMessageReader` (CloudWatch),
            required for array jobs, whose children all write messages.
        logs_client: boto3 CloudWatch Logs client for log forwarding and failure tails.
        forward_termination: stop the job whenever the step stops waiting for it before it finished.
        attach: look for a live job of the same run, asset and partition before submitting.
        poll_interval_s: seconds between ``describe_jobs`` calls.
        logs_grace_s: how long to wait after the job ends for CloudWatch to deliver its last messages.
        max_poll_errors: transient ``describe_jobs`` failures in a row (or polls finding no job) tolerated.
    """

    def __init__(
        self,
        client: Any = None,
        context_injector: PipesContextInjector | None = None,
        message_reader: PipesMessageReader | None = None,
        *,
        logs_client: Any = None,
        forward_termination: bool = True,
        attach: bool = True,
        poll_interval_s: float = 5.0,
        logs_grace_s: float = 30.0,
        max_poll_errors: int = 5,
        log_group: str = BATCH_LOG_GROUP,
    ):
        self._client = client or aws_client("batch")
        if logs_client is None and isinstance(message_reader, PipesBatchLogsMessageReader):
            logs_client = message_reader.client
        self._logs = logs_client or aws_client("logs")
        super().__init__(
            context_injector or PipesEnvContextInjector(),
            message_reader
            or PipesBatchLogsMessageReader(
                self._logs,
                log_group=log_group,
                poll_interval_s=min(poll_interval_s, 2.0),
                keep_lines=TAIL_LINES,
            ),
            forward_termination=forward_termination,
            attach=attach,
            max_poll_errors=max_poll_errors,
        )
        self.poll_interval_s = poll_interval_s
        self.logs_grace_s = logs_grace_s
        self.log_group = log_group

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
        """Submit (or attach to) a Batch job enriched with the Pipes protocol and wait for it.

        Args:
            context: the executing op/asset's context.
            submit_job_params: ``submit_job`` parameters; needs ``jobName``, ``jobQueue`` and ``jobDefinition``.
                The name should be the same for every attempt of the step (a retry finds the job by it).
            extras: the Pipes extras (job parameters) the process reads.
            array_size: children of an array job (``AWS_BATCH_JOB_ARRAY_INDEX`` tells them apart); below 2
                the job is a plain job, as Batch requires array sizes of at least 2.
        """
        is_array = array_size is not None and array_size >= 2
        logs_reader = (
            self._message_reader if isinstance(self._message_reader, PipesBatchLogsMessageReader) else None
        )
        if is_array and logs_reader is None:
            raise ValueError(
                "array jobs need PipesBatchLogsMessageReader: every child writes messages, and only their "
                "separate log streams keep them apart"
            )
        live = self.find_live_job(context, submit_job_params) if self.attach else None
        if (
            live is not None
            and logs_reader is None
            and not resume_messages(
                self._message_reader, environment((live.get("container") or {}).get("environment"))
            )
        ):
            self._stop(context, live["jobId"], "replaced by a retry that cannot read its messages")
            live = None
        if logs_reader is not None:
            logs_reader.prepare(context.log, writers=array_size if is_array and array_size else 1)
            tailer = logs_reader.tailer
        else:
            tailer = CloudWatchTail(
                self._logs,
                lambda label, line: context.log.info(f"[batch] {line}"),
                self.log_group,
                min(self.poll_interval_s, 2.0),
                TAIL_LINES,
            )

        with open_pipes_session(
            context=context,
            message_reader=self._message_reader,
            context_injector=self._context_injector,
            extras=extras,
        ) as session:
            if live is None:
                params = self._submit_params(context, session, submit_job_params, is_array, array_size)
                response = self._client.submit_job(**params)
                job_id, job_arn = response["jobId"], response["jobArn"]
                context.log.info(
                    f"[pipes] submitted Batch {'array ' if is_array else ''}job {job_id} "
                    f"({params['jobDefinition']} on {params['jobQueue']}): {console_url(self.region, job_id)}"
                )
            else:
                job_id, job_arn = live["jobId"], live["jobArn"]
                context.log.info(
                    f"[pipes] attached to Batch job {job_id} ({live['status']}), left running by an earlier "
                    f"attempt of this step: {console_url(self.region, job_id)}"
                )
            session.report_launched({"extras": {"job_id": job_id, "job_arn": job_arn}})
            if logs_reader is None:
                tailer.start()
            try:
                job = self._wait(context, job_id, array_size if is_array else None, tailer)
            except BaseException as exc:  # interrupt, API failing for good, job vanished: never orphan it
                if self.forward_termination:
                    self._stop(context, job_id, f"the Dagster step stopped waiting ({type(exc).__name__})")
                raise
            finally:
                if logs_reader is None and not tailer.stop():
                    context.log.warning(f"[pipes] Batch job {job_id}: the last log lines could not be read")
            succeeded = job["status"] == "SUCCEEDED"
            grace = self.logs_grace_s if succeeded else min(self.logs_grace_s, 5.0)
            if logs_reader is not None and not logs_reader.wait_closed(grace):
                context.log.warning(f"[pipes] Batch job {job_id}: not every Pipes writer closed")
            if tailer.errors:
                context.log.warning(
                    f"[pipes] {len(tailer.errors)} CloudWatch reads failed (last: {tailer.errors[-1]})"
                )
            if not succeeded:
                raise self._failure(job, array_size if is_array else None, tailer)
            context.log.info(f"[pipes] Batch job {job_id} succeeded")
            metadata = self._metadata(job_id, job_arn, tailer.streams)
        return PipesClientCompletedInvocation(session, metadata=metadata)

    def find_live_job(
        self, context: dg.OpExecutionContext | dg.AssetExecutionContext, submit_job_params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """A job of this run, asset and partition with this name that has not finished, or None."""
        name, queue = submit_job_params["jobName"], submit_job_params["jobQueue"]
        wanted = identity_tags(context)
        try:
            ids: list[str] = []
            kwargs: dict[str, Any] = {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
            while True:
                page = self._client.list_jobs(**kwargs)
                ids += [s["jobId"] for s in page.get("jobSummaryList", []) if s.get("status") in LIVE]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
            jobs = self._describe(ids) if ids else []
        except Exception as exc:  # looking is an optimisation; submitting is always possible
            context.log.warning(f"[pipes] could not look for a live Batch job {name} to attach to: {exc}")
            return None
        for job in jobs:
            tags = job.get("tags") or {}
            if job.get("status") in LIVE and all(tags.get(k) == v for k, v in wanted.items()):
                return job
        return None

    def _submit_params(
        self,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        session: Any,
        submit_job_params: Mapping[str, Any],
        is_array: bool,
        array_size: int | None,
    ) -> dict[str, Any]:
        params = copy.deepcopy(dict(submit_job_params))
        overrides = params.setdefault("containerOverrides", {})
        env = list(overrides.get("environment", []))
        env += [{"name": k, "value": v} for k, v in session.get_bootstrap_env_vars().items()]
        overrides["environment"] = env
        tags = {
            k: tag_value(v)
            for k, v in {**(params.get("tags") or {}), **session.default_remote_invocation_info}.items()
        }
        tags.update(identity_tags(context))
        params["tags"] = {k[:128]: v for k, v in tags.items()}
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
        """Poll until the job is terminal, following each (child) container's log stream as it appears.

        Transient API errors and polls that do not find the job are retried ``max_poll_errors`` times in a
        row, waiting longer each time; then `RemoteJobLost` is raised (and the caller stops the job).
        """
        last = None
        children_done: set[str] = set()
        failures = 0
        while True:
            try:
                jobs = self._describe([job_id])
                if not jobs:
                    raise LookupError(f"describe_jobs does not know job {job_id}")
                job = jobs[0]
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
                    pending = [
                        f"{job_id}:{i}" for i in range(array_size) if f"{job_id}:{i}" not in children_done
                    ]
                    for child in self._describe(pending) if pending else []:
                        stream = (child.get("container") or {}).get("logStreamName")
                        if stream:
                            tailer.add_stream(stream, label=f"child {child['jobId'].rsplit(':', 1)[-1]}")
                        if child["status"] in TERMINAL and stream:
                            children_done.add(child["jobId"])
                failures = 0
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, LookupError)):
                    raise
                failures += 1
                time.sleep(
                    self.poll_failed(context, f"AWS Batch job {job_id}", failures, exc, self.poll_interval_s)
                )
                continue
            if status in TERMINAL:
                return job
            time.sleep(self.poll_interval_s)

    def _stop(self, context: dg.OpExecutionContext | dg.AssetExecutionContext, job_id: str, why: str) -> None:
        """``terminate_job`` (stops running jobs, cancels waiting ones; a no-op on finished ones); best effort."""
        context.log.warning(f"[pipes] terminating Batch job {job_id}: {why}")
        try:
            self._client.terminate_job(jobId=job_id, reason=f"Dagster: {why}"[:1024])
        except Exception as exc:
            context.log.warning(f"[pipes] could not terminate Batch job {job_id}: {exc}")

    def _failure(self, job: dict[str, Any], array_size: int | None, tailer: CloudWatchTail) -> BatchJobFailed:
        """The error for a FAILED job: for an array, the first failed child's exit code and log tail."""
        job_id = job["jobId"]
        failed, details = [job], ""
        if array_size:
            try:
                children = self._describe([f"{job_id}:{i}" for i in range(array_size)])
                failed = [c for c in children if c["status"] == "FAILED"]
                details = f"{len(failed)} of {array_size} array children failed"
                failed = failed or [job]
            except Exception as exc:
                details = f"array children could not be described: {exc}"
        summaries = []
        for failed_job in failed:
            container = failed_job.get("container") or {}
            attempts = failed_job.get("attempts") or []
            last_container = (attempts[-1].get("container") or {}) if attempts else {}
            summaries.append(
                (
                    failed_job["jobId"],
                    container.get("exitCode", last_container.get("exitCode")),
                    container.get("reason") or last_container.get("reason"),
                    container.get("logStreamName") or last_container.get("logStreamName"),
                )
            )
        first_id, exit_code, container_reason, stream = summaries[0]
        lines = [details] if details else []
        lines += [
            f"job {jid}: exit code {code}; container reason: {why}" for jid, code, why, _ in summaries[:5]
        ]
        reason = job.get("statusReason") or container_reason
        tail = tailer.tail(stream) if stream and stream in tailer.streams else []
        if first_id != job_id:
            lines.append(f"log tail below is from {first_id}")
        return BatchJobFailed(job_id, reason, exit_code, tail, "\n".join(lines))

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
