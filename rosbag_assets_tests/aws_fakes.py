"""A local stand-in for the AWS Batch service, in the style of dagster-aws's ``LocalECSMockClient``.

`LocalBatchClient` wraps a real boto3 Batch client pointed at moto: every call really reaches moto (so
job ids, ``describe_jobs`` and ``terminate_job`` are real round trips), and ``submit_job`` also runs the
job's command as a local subprocess per job (per child for array jobs) with the environment the
service would give the container: the job definition's environment, the container overrides and
``AWS_BATCH_JOB_ID``/``AWS_BATCH_JOB_ARRAY_INDEX``. Its output goes to a CloudWatch stream in
``/aws/batch/job`` and its exit code decides SUCCEEDED/FAILED.

Faults for the polling tests: ``describe_faults`` is a queue of exceptions raised by the next
``describe_jobs`` calls (``None`` entries let a call through), ``vanished`` makes ``describe_jobs`` return no
jobs (as for a job id Batch no longer knows); `ThrottlingLogs` throttles CloudWatch reads.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rosbag_assets.compute.cloudwatch import BATCH_LOG_GROUP

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LocalJob:
    """One container run: a plain job or one array child."""

    job_id: str
    stream: str
    env: dict[str, str]
    command: list[str]
    process: subprocess.Popen | None = None
    status: str = "RUNNING"
    exit_code: int | None = None
    status_reason: str | None = None
    lines: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def setup_batch(moto: Any, *, environment: dict[str, str] | None = None) -> dict[str, str]:
    """A compute environment, queues ``cpu``/``gpu`` and job definition ``rosbag`` in moto."""
    batch, iam = moto.client("batch"), moto.client("iam")
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    env_arn = batch.create_compute_environment(
        computeEnvironmentName="rosbag-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )["computeEnvironmentArn"]
    for queue in ("cpu", "gpu"):
        batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env_arn}],
        )
    batch.register_job_definition(
        jobDefinitionName="rosbag",
        type="container",
        containerProperties={
            "image": "rosbag-assets:latest",
            "command": ["python", "-m", "rosbag_assets.steps.entrypoint"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
            "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
        },
    )
    return {"job_queue": "cpu", "job_definition": "rosbag"}


class LocalBatchClient:
    """Batch client whose jobs really run here (see module docstring); other calls pass through to moto."""

    def __init__(self, client: Any, logs_client: Any, *, log_group: str = BATCH_LOG_GROUP):
        self._client = client
        self._logs = logs_client
        self.log_group = log_group
        self.submitted: list[dict[str, Any]] = []
        self.terminated: list[str] = []
        self.jobs: dict[str, LocalJob] = {}
        self.arrays: dict[str, int] = {}
        self.describe_faults: list[BaseException | None] = []
        self.vanished = False
        self.describe_calls = 0
        with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
            self._logs.create_log_group(logGroupName=log_group)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    # --- the service side -------------------------------------------------------------------------
    def _definition(self, name: str) -> dict[str, Any]:
        if name.startswith("arn:"):
            defs = self._client.describe_job_definitions(jobDefinitions=[name])["jobDefinitions"]
        else:
            base, _, rev = name.partition(":")
            defs = self._client.describe_job_definitions(jobDefinitionName=base)["jobDefinitions"]
            defs = [d for d in defs if not rev or str(d["revision"]) == rev]
        return max(defs, key=lambda d: d["revision"])

    def submit_job(self, **params: Any) -> dict[str, Any]:
        response = self._client.submit_job(**params)
        self.submitted.append(copy.deepcopy(params))
        definition = self._definition(params["jobDefinition"])
        props = definition.get("containerProperties") or {}
        overrides = params.get("containerOverrides") or {}
        env = {e["name"]: e["value"] for e in props.get("environment", [])}
        env.update({e["name"]: e["value"] for e in overrides.get("environment", [])})
        command = list(overrides.get("command") or props.get("command") or [])
        size = (params.get("arrayProperties") or {}).get("size")
        job_id = response["jobId"]
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")},
            **env,
            "AWS_BATCH_JQ_NAME": params["jobQueue"],
            "AWS_BATCH_CE_NAME": "rosbag-ce",
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if size:
            self.arrays[job_id] = size
            for index in range(size):
                child_env = {
                    **base,
                    "AWS_BATCH_JOB_ID": f"{job_id}:{index}",
                    "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
                }
                self._start(f"{job_id}:{index}", definition["jobDefinitionName"], command, child_env)
        else:
            self._start(
                job_id, definition["jobDefinitionName"], command, {**base, "AWS_BATCH_JOB_ID": job_id}
            )
        return response

    def _start(self, job_id: str, definition: str, command: list[str], env: dict[str, str]) -> None:
        stream = f"{definition}/default/{uuid.uuid4().hex}"
        self._logs.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        if command and command[0] == "python":  # the image's python is this virtualenv's
            command = [sys.executable, *command[1:]]
        job = LocalJob(job_id=job_id, stream=stream, env=env, command=command)
        job.process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.jobs[job_id] = job
        threading.Thread(target=self._pump, args=(job,), daemon=True).start()

    def _pump(self, job: LocalJob) -> None:
        """Copy the container's output into its log stream; report the exit once all of it is there."""
        assert job.process is not None and job.process.stdout is not None
        for raw in job.process.stdout:
            line = raw.rstrip("\n")
            job.lines.append(line)
            self._logs.put_log_events(
                logGroupName=self.log_group,
                logStreamName=job.stream,
                logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
            )
        job.exit_code = job.process.wait()
        if job.status == "RUNNING":
            job.status = "SUCCEEDED" if job.exit_code == 0 else "FAILED"
            if job.exit_code != 0:
                job.status_reason = "Essential container in task exited"
        job.done.set()

    def _view(self, job_id: str, described: dict[str, Any]) -> dict[str, Any]:
        """moto's description with the local run's status, exit code and log stream."""
        view = copy.deepcopy(described)
        view["jobId"] = job_id
        if job_id in self.arrays:
            children = [self.jobs[f"{job_id}:{i}"] for i in range(self.arrays[job_id])]
            states = [c.status for c in children]
            if "RUNNING" in states:
                view["status"] = "RUNNING"
            elif "FAILED" in states:
                view["status"], view["statusReason"] = "FAILED", "Array Child Job failed"
            else:
                view["status"] = "SUCCEEDED"
            container = dict(view.get("container") or {})  # an array parent has no stream or exit code
            container.pop("logStreamName", None)
            container.pop("exitCode", None)
            view["container"] = container
            view["arrayProperties"] = {
                "size": len(children),
                "statusSummary": {s: states.count(s) for s in set(states)},
            }
            return view
        job = self.jobs.get(job_id)
        if job is None:
            return view
        view["status"] = job.status
        if job.status_reason:
            view["statusReason"] = job.status_reason
        else:
            view.pop("statusReason", None)
        container = dict(view.get("container") or {})
        container["logStreamName"] = job.stream
        if job.exit_code is not None:
            container["exitCode"] = job.exit_code
        view["container"] = container
        return view

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        self.describe_calls += 1
        if self.describe_faults:
            fault = self.describe_faults.pop(0)
            if fault is not None:
                raise fault
        if self.vanished:
            return {"jobs": []}
        described = {j["jobId"]: j for j in self._client.describe_jobs(jobs=jobs)["jobs"]}
        known = [j for j in jobs if j in described or j in self.jobs or j in self.arrays]
        return {"jobs": [self._view(j, described.get(j, {})) for j in known]}

    def list_jobs(self, **kwargs: Any) -> dict[str, Any]:
        """moto's listing with the local runs' statuses (moto's own job lifecycle is not the local one)."""
        response = self._client.list_jobs(**kwargs)
        for summary in response.get("jobSummaryList", []):
            job_id = summary["jobId"]
            if job_id in self.arrays or job_id in self.jobs:
                summary["status"] = self._view(job_id, {})["status"]
        return response

    def terminate_job(self, jobId: str, reason: str) -> dict[str, Any]:
        response = self._client.terminate_job(jobId=jobId, reason=reason)
        self.terminated.append(jobId)
        targets = [j for k, j in self.jobs.items() if k == jobId or k.startswith(f"{jobId}:")]
        for job in targets:
            if job.status == "RUNNING":
                job.status, job.status_reason = "FAILED", reason
                if job.process is not None and job.process.poll() is None:
                    os.killpg(job.process.pid, signal.SIGTERM)
        for job in targets:
            if not job.done.wait(10) and job.process is not None:
                os.killpg(job.process.pid, signal.SIGKILL)
                job.done.wait(10)
        return response

    def close(self) -> None:
        """Kill whatever is still running (test teardown)."""
        for job in self.jobs.values():
            if job.process is not None and job.process.poll() is None:
                os.killpg(job.process.pid, signal.SIGKILL)
                job.process.wait()


def throttle(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


class ThrottlingLogs:
    """A CloudWatch Logs client that throttles every ``get_log_events`` once it has delivered the Pipes
    ``closed`` message: the final reads after a successful job all fail."""

    def __init__(self, client: Any):
        self._client = client
        self.closed_seen = False
        self.throttled = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_log_events(self, **kwargs: Any) -> dict[str, Any]:
        if self.closed_seen:
            self.throttled += 1
            raise throttle("GetLogEvents")
        response = self._client.get_log_events(**kwargs)
        if any('"method": "closed"' in e.get("message", "") for e in response.get("events", [])):
            self.closed_seen = True
        return response
