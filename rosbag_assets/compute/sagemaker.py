"""SageMaker compute target: each asset's step runs the Pipes entry point in a SageMaker job.

A Processing job by default (``AppSpecification.ContainerEntrypoint`` = the entry point), a Training job
with ``job_kind: training`` (per asset through ``per_asset``). Both read and write the drive's S3 storage
directly with the job role; the Pipes context and messages go through ``pipes_bucket``.

A Training job runs ``training_image_uri`` (containers/Dockerfile.train), gets the input channels its step
declares (`rosbag_assets.steps.remote_inputs`: ``detector_model`` gets its pinned training_dataset version),
writes its model artefact under the output root (``models/_sagemaker/<asset>/``), syncs checkpoints to S3
(managed spot resumes from them) and reports its metrics (``metric_names``); with ``tuning`` it is preceded
by a hyper-parameter tuning job (`rosbag_assets.compute.sagemaker_tuning`).

How many jobs run at once is bounded by the asset's Dagster concurrency pool (``pool=``, limits in
``dagster.yaml`` / ``dagster instance concurrency set``), across every run process.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field, model_validator

from rosbag_assets.compute.aws import RetryMode, aws_client
from rosbag_assets.compute.sagemaker_tuning import (
    DEFAULT_METRICS,
    TUNED_MODEL_OPTION,
    SageMakerTuning,
    metric_definitions,
    training_definition,
    tuning_job_name,
)
from rosbag_assets.compute.target import ENTRY_POINT, ComputeTarget, RunOutput

if TYPE_CHECKING:  # the Pipes client (dagster-aws, botocore) is imported when a job is started
    from rosbag_assets.compute.sagemaker_client import PipesSageMakerClient

PARAMS_DIR = "/opt/ml/processing/input/params"
SCRATCH_DIR = "/opt/ml/processing/output"
MODEL_OUTPUT_PREFIX = "models/_sagemaker"  # under the output root; '_' never starts a dataset name


class SageMakerCompute(ComputeTarget):
    """Runs steps as SageMaker Processing (or Training) jobs through Dagster Pipes."""

    image_uri: str = Field(description="ECR image (see containers/README.md).")
    training_image_uri: str | None = Field(
        default=None,
        description="Image of Training jobs and tuning trials (containers/Dockerfile.train); default image_uri.",
    )
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
    metric_names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        description="Training metrics SageMaker reads from 'name=value' in the job log (charts, tuning).",
    )
    tuning: SageMakerTuning | None = Field(
        default=None, description="Run a hyper-parameter tuning job first (training); its best trial is kept."
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

    @model_validator(mode="after")
    def _tuning_fits(self) -> SageMakerCompute:
        if self.tuning is not None:
            if self.job_kind != "training":
                raise ValueError("tuning needs job_kind: training (trials are SageMaker Training jobs)")
            if self.tuning.objective_metric not in self.metric_names:
                raise ValueError(
                    f"tuning objective {self.tuning.objective_metric!r} is not in metric_names {self.metric_names}"
                )
        return self

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

    def training_job_params(
        self,
        asset: str,
        name: str,
        params_uri: str,
        job_uri: str,
        *,
        channels: dict[str, str] | None = None,
        model_uri: str | None = None,
    ) -> dict[str, Any]:
        """``create_training_job`` arguments for one job: the ``params`` channel plus the step's `channels`
        (name -> S3 prefix), the model artefact under `model_uri` (default: the job's Pipes folder)."""
        inputs = {"params": params_uri, **(channels or {})}
        out: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": self.training_image_uri or self.image_uri,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": list(ENTRY_POINT),
                "MetricDefinitions": metric_definitions(self.metric_names),
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
                for channel, uri in inputs.items()
            ],
            "OutputDataConfig": {"S3OutputPath": model_uri or f"{job_uri}/model"},
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
                "VolumeSizeInGB": self.volume_size_gb,
            },
            **self._common(asset, name),
        }
        # /opt/ml/checkpoints is synced to S3: a spot-interrupted or retried job resumes from last.pt there
        # (steps/detector_model.checkpoint_dir uses that folder when it exists).
        checkpoints = self.checkpoint_s3_uri or f"s3://{self.pipes_bucket}/checkpoints/{asset}"
        out["CheckpointConfig"] = {"S3Uri": checkpoints, "LocalPath": "/opt/ml/checkpoints"}
        if self.managed_spot:
            out["EnableManagedSpotTraining"] = True
            out["StoppingCondition"]["MaxWaitTimeInSeconds"] = self.max_wait_s or 2 * self.max_runtime_s
        if self.subnets:
            out["VpcConfig"] = self._network()
        return out

    def _put_params(self, job: str, params: dict[str, Any]) -> tuple[str, str]:
        """Upload a job's parameters (for audit, a manual re-run, a tuning trial); (params channel, job folder)."""
        folder = f"{self.pipes_prefix}jobs/{job}"
        self.s3_client().put_object(
            Bucket=self.pipes_bucket,
            Key=f"{folder}/params/params.json",
            Body=json.dumps(params, default=str).encode(),
        )
        return f"s3://{self.pipes_bucket}/{folder}/params/", f"s3://{self.pipes_bucket}/{folder}"

    def run_step(self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any]) -> RunOutput:
        """Run ``params`` on SageMaker; same contract as ``LocalCompute.run``."""
        for key in ("output", "source"):
            if key in params and not str(params[key]).startswith("s3://"):
                raise ValueError(f"SageMaker jobs need S3 storage; {key}={params[key]!r} is not s3://")
        from rosbag_assets.compute.sagemaker_client import sagemaker_job_name

        partition = context.partition_key if context.has_partition_key else None
        name = sagemaker_job_name(context.run_id, asset, partition, context.retry_number)
        client = self.pipes_client()
        if self.job_kind == "processing":
            params_uri, job_uri = self._put_params(name, params)
            job = self.processing_job_params(asset, name, params_uri, job_uri)
            return client.run(context=context, processing_job_params=job, extras=params).get_results()
        from rosbag_assets.steps.remote_inputs import input_channels

        params, channels = input_channels(params)  # e.g. the dataset version, pinned now
        model_uri = f"{str(params['output']).rstrip('/')}/{MODEL_OUTPUT_PREFIX}/{asset}"
        metadata: dict[str, Any] = {}
        if self.tuning is not None:
            params, metadata = self._tune(context, client, asset, params, channels, model_uri)
        params_uri, job_uri = self._put_params(name, params)
        job = self.training_job_params(
            asset, name, params_uri, job_uri, channels=channels, model_uri=model_uri
        )
        invocation = client.run(context=context, training_job_params=job, extras=params, metadata=metadata)
        return invocation.get_results()

    def _tune(
        self,
        context: dg.AssetExecutionContext,
        client: PipesSageMakerClient,
        asset: str,
        params: dict[str, Any],
        channels: dict[str, str],
        model_uri: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the tuning job; the step's parameters with the best trial's artefact, and metadata about it."""
        assert self.tuning is not None
        from rosbag_assets.steps.tuning_trial import check_ranges

        check_ranges(params, {r.name: r.samples() for r in self.tuning.ranges})
        partition = context.partition_key if context.has_partition_key else None
        names = [
            tuning_job_name(context.run_id, asset, partition, a) for a in range(context.retry_number + 1)
        ]
        name = names[-1]
        params_uri, job_uri = self._put_params(name, params)
        trial = self.training_job_params(
            asset, name, params_uri, job_uri, channels=channels, model_uri=model_uri
        )
        from rosbag_assets.compute.attach import identity_tags

        tags = {"rosbag_assets/asset": asset, **self.tags, **identity_tags(context)}
        found = client.tune(
            context, self.tuning.request(name, training_definition(trial), tags), names[-2::-1]
        )
        best, artefact = found["best"], found["trial"]["ModelArtifacts"]["S3ModelArtifacts"]
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        context.log.info(
            f"tuning job {found['tuning_job']}: best trial {best['TrainingJobName']} "
            f"({objective.get('MetricName')}={objective.get('Value')}); evaluating and publishing {artefact}"
        )
        metadata = {
            "sagemaker_tuning_job": found["tuning_job"],
            "sagemaker_best_trial": best["TrainingJobName"],
            "sagemaker_best_objective": dg.MetadataValue.json(objective),
            "sagemaker_tuned_hyperparameters": dg.MetadataValue.json(best.get("TunedHyperParameters") or {}),
            "trained_model": artefact,
        }
        options = {**(params.get("options") or {}), TUNED_MODEL_OPTION: artefact}
        return {**params, "options": options}, metadata
