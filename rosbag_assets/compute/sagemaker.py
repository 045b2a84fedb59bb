"""SageMaker compute target: each asset's step runs the Pipes entry point in a SageMaker job.

A Processing job by default (``AppSpecification.ContainerEntrypoint`` = the entry point), a Training job
with ``job_kind: training`` (per asset through ``per_asset``). Both read and write the drive's S3 storage
directly with the job role; the Pipes context and messages go through ``pipes_bucket``.

How many jobs run at once is bounded by the asset's Dagster concurrency pool (``pool=``, limits in
``dagster.yaml`` / ``dagster instance concurrency set``), across every run process.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.aws import RetryMode, aws_client
from rosbag_assets.compute.target import ENTRY_POINT, ComputeTarget, RunOutput

if TYPE_CHECKING:  # the Pipes client (dagster-aws, botocore) is imported when a job is started
    from rosbag_assets.compute.sagemaker_client import PipesSageMakerClient

PARAMS_DIR = "/opt/ml/processing/input/params"
SCRATCH_DIR = "/opt/ml/processing/output"


class SageMakerCompute(ComputeTarget):
    """Runs steps as SageMaker Processing (or Training) jobs through Dagster Pipes."""

    image_uri: str = Field(description="ECR image (see containers/README.md).")
    role_arn: str = Field(description="Execution role the job runs as (deploy/iam/).")
    job_kind: Literal["processing", "training"] = Field(
        default="processing", description="A Processing job, or a Training job (e.g. for a training asset)."
    )
    instance_type: str = Field(default="ml.m5.xlarge", description="Instance type (ml.g5.* for a GPU).")
    instance_count: int = Field(default=1, ge=1, description="Instances per job (the jobs are single-host).")
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    max_runtime_s: int = Field(default=24 * 3600, ge=1)
    managed_spot: bool = Field(
        default=False,
        description="Training jobs on managed spot capacity; checkpoints go to S3 so an interrupted job resumes.",
    )
    max_wait_s: int | None = Field(
        default=None,
        ge=1,
        description="Spot: longest wait for capacity plus run time; default 2 x max_runtime_s.",
    )
    checkpoint_s3_uri: str | None = Field(
        default=None,
        description="Where /opt/ml/checkpoints is synced (training); default: s3://<pipes_bucket>/checkpoints/<asset>.",
    )
    region: str | None = Field(default=None, description="AWS region; default: the boto3 default.")
    endpoint_url: str | None = Field(
        default=None, description="SageMaker API endpoint (VPC endpoint, emulator)."
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint for Pipes objects; also given to the job as AWS_ENDPOINT_URL_S3.",
    )
    pipes_bucket: str = Field(description="Bucket for Pipes context/messages and job parameters.")
    pipes_prefix: str = Field(default="dagster-pipes/", description="Key prefix in pipes_bucket.")
    poll_interval_s: float = Field(default=15.0, gt=0)
    message_interval_s: float = Field(default=10.0, gt=0)
    max_poll_errors: int = Field(default=5, ge=0, description="Failed polls in a row before giving up.")
    retry_mode: RetryMode = Field(default="adaptive", description="botocore retry mode of the AWS clients.")
    max_attempts: int = Field(default=10, ge=1, description="botocore attempts per AWS call.")
    subnets: list[str] = Field(default_factory=list, description="VPC subnets (with security_group_ids).")
    security_group_ids: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra job environment (values <= 256 chars)."
    )
    tags: dict[str, str] = Field(default_factory=dict)

    def _client(self, service: str, endpoint_url: str | None) -> Any:
        return aws_client(
            service,
            region=self.region,
            endpoint_url=endpoint_url,
            retry_mode=self.retry_mode,
            max_attempts=self.max_attempts,
        )

    def sagemaker_client(self) -> Any:
        return self._client("sagemaker", self.endpoint_url)

    def s3_client(self) -> Any:
        return self._client("s3", self.s3_endpoint_url)

    def pipes_client(self) -> PipesSageMakerClient:
        from rosbag_assets.compute.sagemaker_client import PipesSageMakerClient

        return PipesSageMakerClient(
            self.sagemaker_client(),
            bucket=self.pipes_bucket,
            s3_client=self.s3_client(),
            key_prefix=self.pipes_prefix,
            poll_interval=self.poll_interval_s,
            message_interval=self.message_interval_s,
            max_poll_errors=self.max_poll_errors,
        )

    def job_environment(self) -> dict[str, str]:
        env = {"ROSBAG_ASSETS_PIPES_BUCKET": self.pipes_bucket, "PYTHONUNBUFFERED": "1", **self.env}
        if self.s3_endpoint_url:
            env["AWS_ENDPOINT_URL_S3"] = self.s3_endpoint_url
        return env

    def _common(self, asset: str, name: str) -> dict[str, Any]:
        common: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime_s},
            "Environment": self.job_environment(),
            "Tags": [{"Key": k, "Value": v} for k, v in {"rosbag_assets/asset": asset, **self.tags}.items()],
        }
        return common

    def _network(self) -> dict[str, Any]:
        if not self.subnets:
            return {}
        return {"Subnets": self.subnets, "SecurityGroupIds": self.security_group_ids}

    def processing_job_params(self, asset: str, name: str, params_uri: str, job_uri: str) -> dict[str, Any]:
        """``create_processing_job`` arguments for one job (the Pipes environment is added by the client)."""
        out: dict[str, Any] = {
            "ProcessingJobName": name,
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": self.instance_count,
                    "InstanceType": self.instance_type,
                    "VolumeSizeInGB": self.volume_size_gb,
                }
            },
            "AppSpecification": {
                "ImageUri": self.image_uri,
                "ContainerEntrypoint": list(ENTRY_POINT),
            },
            # The job parameters, for audit and a manual re-run with `--params`; the job itself
            # reads and publishes the drive's storage directly (its commit protocol is atomic).
            "ProcessingInputs": [
                {
                    "InputName": "params",
                    "S3Input": {
                        "S3Uri": params_uri,
                        "LocalPath": PARAMS_DIR,
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                        "S3DataDistributionType": "FullyReplicated",
                    },
                }
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "scratch",
                        "S3Output": {
                            "S3Uri": f"{job_uri}/output",
                            "LocalPath": SCRATCH_DIR,
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            **self._common(asset, name),
        }
        if self.subnets:
            out["NetworkConfig"] = {"VpcConfig": self._network()}
        return out

    def training_job_params(self, asset: str, name: str, params_uri: str, job_uri: str) -> dict[str, Any]:
        """``create_training_job`` arguments for one job."""
        out: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": self.image_uri,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": list(ENTRY_POINT),
            },
            "InputDataConfig": [
                {
                    "ChannelName": "params",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": params_uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"{job_uri}/model"},
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
                "VolumeSizeInGB": self.volume_size_gb,
            },
            **self._common(asset, name),
        }
        # /opt/ml/checkpoints is synced to S3: a spot-interrupted or retried job resumes from last.pt there
        # (steps/detector_assets.checkpoint_dir uses that folder when it exists).
        checkpoints = self.checkpoint_s3_uri or f"s3://{self.pipes_bucket}/checkpoints/{asset}"
        out["CheckpointConfig"] = {"S3Uri": checkpoints, "LocalPath": "/opt/ml/checkpoints"}
        if self.managed_spot:
            out["EnableManagedSpotTraining"] = True
            stopping = out.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": self.max_runtime_s})
            stopping["MaxWaitTimeInSeconds"] = self.max_wait_s or 2 * self.max_runtime_s
        if self.subnets:
            out["VpcConfig"] = self._network()
        return out

    def run_step(self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any]) -> RunOutput:
        """Run ``params`` on SageMaker; same contract as ``LocalCompute.run``."""
        for key in ("output", "source"):
            if key in params and not str(params[key]).startswith("s3://"):
                raise ValueError(f"SageMaker jobs need S3 storage; {key}={params[key]!r} is not s3://")
        from rosbag_assets.compute.sagemaker_client import sagemaker_job_name

        partition = context.partition_key if context.has_partition_key else None
        name = sagemaker_job_name(context.run_id, asset, partition, context.retry_number)
        job_uri = f"s3://{self.pipes_bucket}/{self.pipes_prefix}jobs/{name}"
        params_key = f"{self.pipes_prefix}jobs/{name}/params/params.json"
        self.s3_client().put_object(
            Bucket=self.pipes_bucket, Key=params_key, Body=json.dumps(params, default=str).encode()
        )
        params_uri = f"s3://{self.pipes_bucket}/{self.pipes_prefix}jobs/{name}/params"
        client = self.pipes_client()
        if self.job_kind == "training":
            invocation = client.run(
                context=context,
                training_job_params=self.training_job_params(asset, name, params_uri, job_uri),
                extras=params,
            )
        else:
            invocation = client.run(
                context=context,
                processing_job_params=self.processing_job_params(asset, name, params_uri, job_uri),
                extras=params,
            )
        return invocation.get_results()
