"""`BatchCompute`: the AWS Batch compute target. Same ``run(context, params)`` as `LocalCompute`.

Each asset's job runs ``python -m rosbag_assets.steps.entrypoint`` in a container of the configured job
definition; ``per_asset`` picks another queue/definition per asset (GPU queue for ``object_labels``, Spot
CPU for ``extracted_frames``, Fargate for ``raw_bags``). With ``array_per_bag`` the extract job fans out as
an array job, one child per readable bag of the committed ``raw_bags`` inventory, all writing into one
shared uncommitted version; a final merge step (a second Batch job, or in-process) commits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import boto3
import dagster as dg
from pydantic import BaseModel, Field

from rosbag_assets.compute.batch_client import PipesBatchClient, job_name, retry_strategy
from rosbag_assets.defs.resources import ContextLog, result_to_dagster
from rosbag_assets.io import publish
from rosbag_assets.io.storage import join_key, storage_from_uri
from rosbag_assets.steps.entrypoint import run_step

BATCH_COMMAND = ["python", "-m", "rosbag_assets.steps.entrypoint"]
RunOutput = dg.MaterializeResult | Sequence[dg.MaterializeResult | dg.AssetCheckResult]


class AssetBatchSettings(BaseModel):
    """Per-asset overrides of `BatchCompute`'s defaults; unset fields fall back to them."""

    job_queue: str | None = None
    job_definition: str | None = None
    timeout_s: int | None = None
    retry_attempts: int | None = None
    array_per_bag: bool | None = None


class BatchCompute(dg.ConfigurableResource):
    """Runs jobs as AWS Batch jobs through Dagster Pipes."""

    job_queue: str = Field(description="Default job queue.")
    job_definition: str = Field(description="Default job definition (name, name:revision or ARN).")
    per_asset: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Overrides per asset, e.g. {"object_labels": {"job_queue": "gpu", "job_definition": '
        '"rosbag-gpu"}}; keys: job_queue, job_definition, timeout_s, retry_attempts, array_per_bag.',
    )
    region: str | None = Field(default=None, description="AWS region; default: the boto3 default.")
    endpoint_url: str | None = Field(default=None, description="Endpoint for Batch, Logs and S3 (moto, VPC).")
    timeout_s: int = Field(default=6 * 3600, ge=60, description="Per-attempt timeout (Batch minimum 60).")
    retry_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts; only host/Spot losses and image pulls are retried."
    )
    pipes_bucket: str | None = Field(
        default=None, description="S3 bucket for the Pipes context and messages (else env + CloudWatch)."
    )
    array_per_bag: bool = Field(
        default=False, description="Extract as an array job, one child per bag, then merge and commit."
    )
    merge: Literal["batch", "in_process"] = Field(
        default="batch", description="Where the array extract's merge/commit step runs."
    )
    environment: dict[str, str] = Field(default_factory=dict, description="Extra container environment.")
    poll_interval_s: float = Field(default=10.0, gt=0, description="Seconds between describe_jobs calls.")
    logs_grace_s: float = Field(default=30.0, ge=0, description="Wait for CloudWatch's last messages.")

    def settings(self, asset: str) -> AssetBatchSettings:
        """This asset's queue, definition, timeout, retries and fan-out after overrides."""
        override = AssetBatchSettings.model_validate(self.per_asset.get(asset, {}))
        return AssetBatchSettings(
            job_queue=override.job_queue or self.job_queue,
            job_definition=override.job_definition or self.job_definition,
            timeout_s=override.timeout_s or self.timeout_s,
            retry_attempts=override.retry_attempts or self.retry_attempts,
            array_per_bag=self.array_per_bag if override.array_per_bag is None else override.array_per_bag,
        )

    def boto_client(self, service: str) -> Any:
        """A boto3 client for `service` (``batch``, ``logs``, ``s3``); tests substitute fakes here."""
        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint_url)

    def pipes_client(self) -> PipesBatchClient:
        return PipesBatchClient(
            client=self.boto_client("batch"),
            logs_client=self.boto_client("logs"),
            s3_client=self.boto_client("s3") if self.pipes_bucket else None,
            pipes_bucket=self.pipes_bucket,
            poll_interval_s=self.poll_interval_s,
            logs_grace_s=self.logs_grace_s,
        )

    def submit_params(
        self, context: dg.AssetExecutionContext, asset: str, suffix: str = ""
    ) -> dict[str, Any]:
        """``submit_job`` parameters for `asset` (the Pipes client adds env, tags and array size)."""
        s = self.settings(asset)
        partition = context.partition_key if context.has_partition_key else ""
        params: dict[str, Any] = {
            "jobName": job_name(asset, partition, suffix, context.run_id[:8]),
            "jobQueue": s.job_queue,
            "jobDefinition": s.job_definition,
            "containerOverrides": {
                "command": list(BATCH_COMMAND),
                "environment": [{"name": k, "value": v} for k, v in self.environment.items()],
            },
            "timeout": {"attemptDurationSeconds": max(60, int(s.timeout_s or self.timeout_s))},
            "retryStrategy": retry_strategy(int(s.retry_attempts or self.retry_attempts)),
            "propagateTags": True,
        }
        return params

    def run(self, context: dg.AssetExecutionContext, params: dict[str, Any]) -> RunOutput:
        asset = context.asset_key.path[-1]
        client = self.pipes_client()
        if params.get("step") == "extracted_frames" and self.settings(asset).array_per_bag:
            bags = self._inventory_bags(params)
            if len(bags) >= 2:
                return self._run_array_extract(context, client, asset, params, bags)
            context.log.info(f"drive {params['drive']}: {len(bags)} bag(s), submitting a plain job")
        invocation = client.run(
            context=context, submit_job_params=self.submit_params(context, asset), extras=params
        )
        return invocation.get_results()

    @staticmethod
    def _inventory_bags(params: dict[str, Any]) -> list[str]:
        """Readable bag names of the drive's committed raw_bags inventory."""
        storage = storage_from_uri(params["output"], endpoint_url=params.get("s3_endpoint_url"))
        manifest = publish.current(storage, join_key(params["drive"], "raw_bags"))
        if manifest is None:
            raise dg.Failure(
                f"drive {params['drive']}: raw_bags has no committed version; materialize it first"
            )
        return [b["name"] for b in manifest["bags"] if b.get("ok")]

    def _run_array_extract(
        self,
        context: dg.AssetExecutionContext,
        client: PipesBatchClient,
        asset: str,
        params: dict[str, Any],
        bags: list[str],
    ) -> RunOutput:
        version = publish.new_version_id(context.run_id)
        context.log.info(f"extracting {len(bags)} bags as a Batch array job into version {version}")
        children = {**params, "version": version, "array_bags": bags}
        client.run(
            context=context,
            submit_job_params=self.submit_params(context, asset, "bags"),
            extras=children,
            array_size=len(bags),
        )
        final = {**params, "version": version, "bag_names": [], "commit": True}
        if self.merge == "in_process":
            return result_to_dagster(run_step(final, log=ContextLog(context)))
        return client.run(
            context=context, submit_job_params=self.submit_params(context, asset, "merge"), extras=final
        ).get_results()
