"""`BatchCompute`: the AWS Batch compute target.

Each step runs ``python -m rosbag_assets.steps.entrypoint`` in a container of the configured job definition;
``per_asset`` changes any setting for one asset (GPU queue for ``object_labels``, Spot CPU for
``extracted_frames``, Fargate for ``raw_bags``). When the step declares a split (`steps.fanout`) and
``fan_out`` is on, its parts run as one array job (a child per part) and its finish step as a second job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.aws import RetryMode, aws_client
from rosbag_assets.compute.target import ENTRY_POINT, ComputeTarget, RunOutput

if TYPE_CHECKING:
    from rosbag_assets.compute.batch_client import PipesBatchClient
    from rosbag_assets.steps.fanout import FanOut

# The Pipes client, dagster-aws and boto3 are imported when a step runs on Batch, not when the code location
# loads: a deployment that only runs locally never pays their start-up (seconds).

PIPES_BUCKET_ENV = "ROSBAG_ASSETS_PIPES_BUCKET"


class BatchCompute(ComputeTarget):
    """Runs steps as AWS Batch jobs through Dagster Pipes."""

    job_queue: str = Field(description="Job queue.")
    job_definition: str = Field(description="Job definition (name, name:revision or ARN).")
    region: str | None = Field(default=None, description="AWS region; default: the boto3 default.")
    endpoint_url: str | None = Field(default=None, description="Endpoint for Batch, Logs and S3 (moto, VPC).")
    timeout_s: int = Field(default=6 * 3600, ge=60, description="Per-attempt timeout (Batch minimum 60).")
    retry_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts; only host/Spot losses and image pulls are retried."
    )
    pipes_bucket: str | None = Field(
        default=None, description="S3 bucket for a plain job's Pipes context and messages (else env + logs)."
    )
    fan_out: bool = Field(
        default=True, description="Run a step that declares a split as an array job plus a finish job."
    )
    finish_on: Literal["batch", "in_process"] = Field(
        default="batch", description="Where the finish (merge/commit) step of a fanned-out step runs."
    )
    environment: dict[str, str] = Field(default_factory=dict, description="Extra container environment.")
    poll_interval_s: float = Field(default=10.0, gt=0, description="Seconds between describe_jobs calls.")
    logs_grace_s: float = Field(default=30.0, ge=0, description="Wait for CloudWatch's last messages.")
    max_poll_errors: int = Field(default=5, ge=0, description="Failed polls in a row before giving up.")
    retry_mode: RetryMode = Field(default="adaptive", description="botocore retry mode of the AWS clients.")
    max_attempts: int = Field(default=10, ge=1, description="botocore attempts per AWS call.")

    def boto_client(self, service: str) -> Any:
        """A boto3 client for `service` (``batch``, ``logs``, ``s3``); tests substitute fakes here."""
        return aws_client(
            service,
            region=self.region,
            endpoint_url=self.endpoint_url,
            retry_mode=self.retry_mode,
            max_attempts=self.max_attempts,
        )

    def uses_s3_pipes(self, array: bool) -> bool:
        return bool(self.pipes_bucket) and not array

    def pipes_client(self, *, array: bool = False) -> PipesBatchClient:
        """The Pipes client: S3 context/messages for plain jobs with a bucket, else env + CloudWatch."""
        from dagster._core.pipes.utils import PipesEnvContextInjector
        from dagster_aws.pipes import PipesS3ContextInjector

        from rosbag_assets.compute.attach import ResumableS3MessageReader
        from rosbag_assets.compute.batch_client import TAIL_LINES, PipesBatchClient
        from rosbag_assets.compute.cloudwatch import PipesBatchLogsMessageReader

        logs = self.boto_client("logs")
        if self.uses_s3_pipes(array):
            s3 = self.boto_client("s3")
            injector: Any = PipesS3ContextInjector(bucket=str(self.pipes_bucket), client=s3)
            reader: Any = ResumableS3MessageReader(
                bucket=str(self.pipes_bucket), client=s3, interval=min(self.poll_interval_s, 2.0)
            )
        else:
            injector = PipesEnvContextInjector()
            reader = PipesBatchLogsMessageReader(
                logs, poll_interval_s=min(self.poll_interval_s, 2.0), keep_lines=TAIL_LINES
            )
        return PipesBatchClient(
            self.boto_client("batch"),
            injector,
            reader,
            logs_client=logs,
            poll_interval_s=self.poll_interval_s,
            logs_grace_s=self.logs_grace_s,
            max_poll_errors=self.max_poll_errors,
        )

    def submit_params(
        self, context: dg.AssetExecutionContext, asset: str, suffix: str = "", array: bool = False
    ) -> dict[str, Any]:
        """``submit_job`` parameters (the Pipes client adds the Pipes env, tags and array size).

        The name is the same for every attempt of the step, so a retry can find a job left running.
        """
        from rosbag_assets.compute.batch_client import job_name, retry_strategy

        partition = context.partition_key if context.has_partition_key else ""
        env = dict(self.environment)
        if self.uses_s3_pipes(array):
            env[PIPES_BUCKET_ENV] = str(self.pipes_bucket)
        return {
            "jobName": job_name(asset, partition, suffix, context.run_id[:8]),
            "jobQueue": self.job_queue,
            "jobDefinition": self.job_definition,
            "containerOverrides": {
                "command": list(ENTRY_POINT),
                "environment": [{"name": k, "value": v} for k, v in env.items()],
            },
            "timeout": {"attemptDurationSeconds": max(60, int(self.timeout_s))},
            "retryStrategy": retry_strategy(int(self.retry_attempts)),
            "propagateTags": True,
        }

    def run_step(self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any]) -> RunOutput:
        from rosbag_assets.steps.fanout import plan_fanout

        plan = plan_fanout(params) if self.fan_out else None
        if plan is None:
            return self._run_plain(context, asset, params)
        return self._run_fanout(context, asset, plan)

    def _run_plain(
        self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any], suffix: str = ""
    ) -> RunOutput:
        invocation = self.pipes_client().run(
            context=context, submit_job_params=self.submit_params(context, asset, suffix), extras=params
        )
        return invocation.get_results()

    def _run_fanout(self, context: dg.AssetExecutionContext, asset: str, plan: FanOut) -> RunOutput:
        from rosbag_assets.defs.resources import ContextLog, result_to_dagster
        from rosbag_assets.steps.entrypoint import run_step
        from rosbag_assets.steps.fanout import array_extras

        client = self.pipes_client(array=True)
        submit = self.submit_params(context, asset, "parts", array=True)
        live = client.find_live_job(context, submit)
        adopted = self._plan_of(live) if live is not None else None
        if adopted is not None:  # an earlier attempt's array job: keep its plan (and its shared version)
            context.log.info(f"resuming the {len(adopted.parts)}-part plan of Batch job {live['jobId']}")  # type: ignore[index]
            plan = adopted
        context.log.info(f"{asset}: {len(plan.parts)} parts as a Batch array job, then the finish step")
        if len(plan.parts) >= 2:
            client.run(
                context=context,
                submit_job_params=submit,
                extras=array_extras(plan),
                array_size=len(plan.parts),
            )
        elif plan.parts:
            self._run_plain(context, asset, plan.parts[0], "parts")
        if plan.finish is None:
            return dg.MaterializeResult(metadata={"parts": len(plan.parts)})
        if self.finish_on == "in_process":
            return result_to_dagster(run_step(plan.finish, log=ContextLog(context)))
        return self._run_plain(context, asset, plan.finish, "finish")

    @staticmethod
    def _plan_of(job: dict[str, Any]) -> FanOut | None:
        """The plan a live array job was started with (in its inline Pipes context), if any."""
        from rosbag_assets.compute.attach import environment, pipes_extras
        from rosbag_assets.steps.fanout import plan_from_extras

        extras = pipes_extras(environment((job.get("container") or {}).get("environment")))
        return plan_from_extras(extras) if extras else None
