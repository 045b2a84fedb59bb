"""Errors named after what failed remotely: which job, why, its exit code and its last log lines.

They are `dagster.Failure`s, so the run shows the description and metadata, and the asset's retry policy
still applies (a retry first attaches to a job of the same run that is still alive; see the clients).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg


class RemoteJobFailed(dg.Failure):
    """A remote job ended without success."""

    def __init__(self, description: str, metadata: dict | None = None):
        super().__init__(description=description, metadata=metadata or {})


def _describe(
    what: str, reason: str | None, exit_code: int | None, log_tail: Sequence[str], extra: str
) -> str:
    lines = [f"{what} failed: {reason or 'no reason given'}"]
    if exit_code is not None:
        lines.append(f"exit code: {exit_code}")
    if extra:
        lines.append(extra)
    if log_tail:
        lines.append(f"last {len(log_tail)} log lines:")
        lines += [f"  {line}" for line in log_tail]
    return "\n".join(lines)


class BatchJobFailed(RemoteJobFailed):
    """An AWS Batch job (or a child of an array job) ended FAILED."""

    def __init__(
        self,
        job_id: str,
        reason: str | None,
        exit_code: int | None,
        log_tail: Sequence[str] = (),
        details: str = "",
    ):
        self.job_id, self.reason, self.exit_code, self.log_tail = job_id, reason, exit_code, list(log_tail)
        super().__init__(
            _describe(f"AWS Batch job {job_id}", reason, exit_code, self.log_tail, details),
            {"AWS Batch job id": job_id, "reason": reason or "", "exit code": exit_code},
        )


class SageMakerJobFailed(RemoteJobFailed):
    """A SageMaker Processing or Training job ended Failed or Stopped."""

    def __init__(self, job_name: str, kind: str, status: str, reason: str | None):
        self.job_name, self.kind, self.status, self.reason = job_name, kind, status, reason
        super().__init__(
            f"SageMaker {kind} job {job_name} ended {status}: {reason or 'no reason given'}",
            {"sagemaker_job_name": job_name, "status": status, "failure_reason": reason or ""},
        )


class PodFailed(RemoteJobFailed):
    """A Kubernetes job pod's container exited non-zero (or the pod could not start)."""

    def __init__(
        self, pod_name: str, reason: str | None, exit_code: int | None, log_tail: Sequence[str] = ()
    ):
        self.pod_name, self.reason, self.exit_code, self.log_tail = (
            pod_name,
            reason,
            exit_code,
            list(log_tail),
        )
        super().__init__(
            _describe(f"Kubernetes pod {pod_name}", reason, exit_code, self.log_tail, ""),
            {"pod": pod_name, "reason": reason or "", "exit code": exit_code},
        )


class RemoteJobLost(RuntimeError):
    """Following a remote job failed for good (it vanished, or the API kept failing); it was stopped."""
