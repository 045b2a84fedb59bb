"""SageMaker Pipes target: real round trips against a moto server and the real job entry point.

``FakeSageMaker`` (sagemaker_fakes.py) wraps a boto3 client on moto: create_* really calls moto, then runs the
job's container entry point as a local subprocess with only the environment SageMaker would give it (the
request's ``Environment`` plus role credentials), so the Pipes context and messages really go through S3.
Throttling is injected below botocore's retry handler (a ``before-send`` hook answers 400
ThrottlingException), so it is botocore's retry configuration that is tested, not a hand-written loop.
"""

import random
import re
import socket
import string
import uuid
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.pipes import utils as pipes_utils
from moto.server import ThreadedMotoServer
from sagemaker_fakes import CREDS, REGION, ROLE, FakeSageMaker, FakeSageMakerCompute

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.compute.sagemaker import SageMakerCompute
from rosbag_assets.compute.sagemaker_client import JOB_NAME_RE, PipesSageMakerClient, sagemaker_job_name
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.demo.sample_drive import write_sample_drive


class Targets(ComputeTargets):
    sagemaker: FakeSageMakerCompute | None = None


@pytest.fixture(autouse=True)
def _short_pipes_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster waits 10 s for messages after a session whose process never closed it (cancel, refusal)."""
    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)


@pytest.fixture(scope="module")
def moto_endpoint() -> Any:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in CREDS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint


def _bucket(endpoint: str) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=name)
    return name


def _compute(endpoint: str, pipes_bucket: str, **kw: Any) -> FakeSageMakerCompute:
    return FakeSageMakerCompute(
        image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/rosbag-assets-lanes:test",
        role_arn=ROLE,
        region=REGION,
        endpoint_url=endpoint,
        s3_endpoint_url=endpoint,
        pipes_bucket=pipes_bucket,
        poll_interval_s=0.05,
        message_interval_s=0.1,
        **kw,
    )


@pytest.fixture
def drive_on_s3(aws: str, tmp_path: Path) -> tuple[dg.DagsterInstance, DriveStorage]:
    """A real sample drive, inventoried and extracted in-process into moto S3."""
    write_sample_drive(tmp_path / "landing" / "d1", seconds=1.0, width=320, height=180)
    storage = DriveStorage(
        landing_root=str(tmp_path / "landing"), output_root=f"s3://{_bucket(aws)}/out", s3_endpoint_url=aws
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("drives", ["d1"])
    res = dg.materialize(
        [raw_bags, extracted_frames],
        partition_key="d1",
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode="in_process"))},
    )
    assert res.success
    return instance, storage


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["processing", "training"])
def test_lane_labels_round_trip_through_sagemaker(
    drive_on_s3: tuple[dg.DagsterInstance, DriveStorage], aws: str, kind: str
) -> None:
    instance, storage = drive_on_s3
    op = "ProcessingJob" if kind == "processing" else "TrainingJob"
    fake = FakeSageMaker(aws, throttle={f"Create{op}": 2, f"Describe{op}": 1})
    FakeSageMakerCompute.fake = fake
    pipes_bucket = _bucket(aws)
    compute = Targets(
        local=LocalCompute(),
        assets={"lane_labels": "sagemaker"},
        sagemaker=_compute(aws, pipes_bucket, per_asset={"lane_labels": {"job_kind": kind}}),
    )
    res = dg.materialize(
        [lane_labels],
        partition_key="d1",
        instance=instance,
        resources={"storage": storage, "compute": compute},
    )
    assert res.success
    # throttled twice on create and once on describe; botocore retried; exactly one job was created
    assert fake.attempts[f"Create{op}"] == 3 and fake.calls[f"create_{kind}_job"] == 1
    assert fake.throttle[f"Describe{op}"] == 0
    assert len(fake.requests) == 1
    ((name, request),) = fake.requests.items()
    assert JOB_NAME_RE.match(name) and len(name) <= 63 and name.startswith("lane-labels-d1-")
    assert name == sagemaker_job_name(res.run_id, "lane_labels", "d1", 0)
    env = request["Environment"]
    assert {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES", "ROSBAG_ASSETS_PIPES_BUCKET"} <= set(env)
    assert max(len(v) for v in env.values()) <= 256
    if kind == "processing":
        assert request["AppSpecification"]["ContainerEntrypoint"][1:] == [
            "-m",
            "rosbag_assets.steps.entrypoint",
        ]
        assert request["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"
    else:
        assert (
            request["AlgorithmSpecification"]["ContainerEntrypoint"][-1] == "rosbag_assets.steps.entrypoint"
        )

    # metadata and check results came back from the remote process through S3 messages
    mat = res.asset_materializations_for_node("lane_labels")[0]
    assert mat.metadata["sagemaker_job_name"].value == name
    assert any(
        k not in ("sagemaker_job_name", "sagemaker_job_url", "sagemaker_job_seconds") for k in mat.metadata
    )
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert set(checks) == {"lanes_point_at_frames", "lane_points_inside_image"}
    assert all(c.passed for c in checks.values())
    s3 = boto3.client("s3", endpoint_url=aws, region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=pipes_bucket)["Contents"]]
    assert any(re.search(r"/\d+\.json$", k) for k in keys), keys  # message chunks written by the job
    assert any(k.endswith(f"jobs/{name}/params/params.json") for k in keys)


def _one_shot_asset(
    extras: dict[str, Any], kind: str = "processing", retries: int = 0, forward_termination: bool = True
) -> dg.AssetsDefinition:
    @dg.asset(name="probe", retry_policy=dg.RetryPolicy(max_retries=retries) if retries else None)
    def probe(context: dg.AssetExecutionContext) -> Any:
        fake = FakeSageMakerCompute.fake
        client = PipesSageMakerClient(
            fake,
            bucket=extras["bucket"],
            s3_client=boto3.client("s3", endpoint_url=extras["endpoint"], region_name=REGION),
            poll_interval=0.01,
            message_interval=0.05,
            forward_termination=forward_termination,
        )
        name = sagemaker_job_name(context.run_id, "probe", None, context.retry_number)
        params = {"ProcessingJobName": name, **extras["job"]} if kind == "processing" else None
        return client.run(
            context=context, processing_job_params=params, extras=extras.get("extras", {})
        ).get_results()

    return probe


# A container that reports a materialization through the S3 Pipes transport, as the entry point does.
WORKER = """
import os, boto3
from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter, open_dagster_pipes
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
with open_dagster_pipes(context_loader=PipesS3ContextLoader(s3), message_writer=PipesS3MessageWriter(s3)) as p:
    p.report_asset_materialization(metadata={"answer": 42})
"""


def _worker_job(endpoint: str, bucket: str) -> dict[str, Any]:
    job = _job(endpoint, bucket, ["python", "-c", WORKER])
    job["Environment"]["AWS_ENDPOINT_URL_S3"] = endpoint
    return job


def _job(endpoint: str, bucket: str, entrypoint: list[str]) -> dict[str, Any]:
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).put_object(
        Bucket=bucket, Key="in/params.json", Body=b"{}"
    )
    return {
        "RoleArn": ROLE,
        "Environment": {"ROSBAG_ASSETS_PIPES_BUCKET": bucket},
        "AppSpecification": {"ImageUri": "img:1", "ContainerEntrypoint": entrypoint},
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
        },
        "ProcessingInputs": [
            {
                "InputName": "p",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/in",
                    "LocalPath": "/opt/ml/processing/input/p",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
    }


@pytest.mark.slow
def test_failure_raises_with_failure_reason(aws: str) -> None:
    """The real entry point fails inside the container; Dagster fails with SageMaker's FailureReason."""
    fake = FakeSageMaker(aws)
    FakeSageMakerCompute.fake = fake
    bucket = _bucket(aws)
    job = _job(aws, bucket, ["python", "-m", "rosbag_assets.steps.entrypoint"])
    job["Environment"]["AWS_ENDPOINT_URL_S3"] = aws
    probe = _one_shot_asset({"bucket": bucket, "endpoint": aws, "job": job, "extras": {"step": "nope"}})
    res = dg.materialize([probe], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not res.success
    (name,) = fake.requests
    assert fake.outcomes[name]["status"] == "Failed"
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(failure.step_failure_data.error)
    assert f"SageMaker processing job {name} ended Failed" in text
    assert "AlgorithmError" in text and "unknown step 'nope'" in text


def test_cancel_stops_the_job(aws: str) -> None:
    fake = FakeSageMaker(aws, hang=True)
    FakeSageMakerCompute.fake = fake
    bucket = _bucket(aws)
    job = _job(aws, bucket, ["python", "-c", "pass"])
    probe = _one_shot_asset({"bucket": bucket, "endpoint": aws, "job": job})
    with pytest.raises(DagsterExecutionInterruptedError):
        dg.materialize([probe], instance=dg.DagsterInstance.ephemeral())
    (name,) = fake.requests
    assert fake.stopped == [name]
    assert fake._sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] == "Stopped"


def test_env_values_over_256_chars_are_rejected_before_create(aws: str) -> None:
    fake = FakeSageMaker(aws)
    FakeSageMakerCompute.fake = fake
    bucket = _bucket(aws)
    job = _job(aws, bucket, ["python", "-c", "pass"])
    job["Environment"]["BIG"] = "x" * 257
    probe = _one_shot_asset({"bucket": bucket, "endpoint": aws, "job": job})
    res = dg.materialize([probe], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not res.success
    assert fake.calls["create_processing_job"] == 0
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert "caps environment values at 256" in str(failure.step_failure_data.error)


@pytest.mark.slow
def test_throttled_create_is_retried_by_botocore(aws: str) -> None:
    fake = FakeSageMaker(aws, throttle={"CreateProcessingJob": 2})
    FakeSageMakerCompute.fake = fake
    bucket = _bucket(aws)
    probe = _one_shot_asset({"bucket": bucket, "endpoint": aws, "job": _worker_job(aws, bucket)})
    res = dg.materialize([probe], instance=dg.DagsterInstance.ephemeral())
    assert res.success and fake.attempts["CreateProcessingJob"] == 3 and len(fake.requests) == 1
    assert res.asset_materializations_for_node("probe")[0].metadata["answer"].value == 42
    config = _compute(aws, bucket).sagemaker_client().meta.config.retries
    assert config["mode"] == "adaptive"


@pytest.mark.parametrize(
    "fault",
    [
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Describe"),
        pytest.param(
            EndpointConnectionError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com"),
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Describe"),
            marks=pytest.mark.slow,
        ),
    ],
    ids=["throttled", "network", "access-denied"],
)
def test_polling_that_fails_for_good_stops_the_job(aws: str, fault: Exception) -> None:
    fake = FakeSageMaker(aws, faults=[fault] * 20)  # botocore's own retries are already used up
    FakeSageMakerCompute.fake = fake
    bucket = _bucket(aws)
    probe = _one_shot_asset(
        {"bucket": bucket, "endpoint": aws, "job": _job(aws, bucket, ["python", "-c", "pass"])}
    )
    res = dg.materialize([probe], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not res.success
    (name,) = fake.requests
    assert fake.stopped == [name]
    error = str(
        next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    )
    assert ("RemoteJobLost" in error) is ("AccessDenied" not in str(fault))


@pytest.mark.slow
def test_a_retry_attaches_to_the_job_an_earlier_attempt_left_running(aws: str) -> None:
    # The first attempt dies while polling without stopping its job (as a killed step process would);
    # the job is still InProgress when Dagster's retry policy runs the step again.
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Describe")
    fake = FakeSageMaker(aws, faults=[denied], in_progress_polls=2)
    FakeSageMakerCompute.fake = fake
    bucket = _bucket(aws)
    job = _worker_job(aws, bucket)
    probe = _one_shot_asset(
        {"bucket": bucket, "endpoint": aws, "job": job}, retries=1, forward_termination=False
    )
    res = dg.materialize([probe], instance=dg.DagsterInstance.ephemeral())
    assert res.success
    assert len(fake.requests) == 1 and fake.stopped == []  # attached, not created again
    # the messages the job wrote under the first attempt's S3 prefix reached the retry's session
    assert res.asset_materializations_for_node("probe")[0].metadata["answer"].value == 42
    assert "STEP_UP_FOR_RETRY" in [e.event_type_value for e in res.all_events]


def test_local_output_is_refused() -> None:
    compute = _compute("http://127.0.0.1:1", "pipes")
    ctx = dg.build_asset_context()
    with pytest.raises(ValueError, match="need S3 storage"):
        compute.run_step(ctx, "lane_labels", {"step": "lane_labels", "drive": "d1", "output": "/tmp/out"})


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = string.ascii_letters + string.digits + "-_.:/ ~é"
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_job_names_are_valid_deterministic_and_unique() -> None:
    rng = random.Random(7)
    seen: dict[str, tuple[str, str, str | None, int]] = {}
    for i in range(3000):
        run_id = str(uuid.UUID(int=rng.getrandbits(128))) if i % 2 else _random_text(rng, rng.randint(0, 80))
        asset = rng.choice(["object_labels", "lane_labels", "raw_bags", "extracted_frames", "__", ""])
        partition = rng.choice([None, "", _random_text(rng, rng.randint(1, 120)), "2024-06-01_drive.07"])
        attempt = rng.randint(0, 5)
        name = sagemaker_job_name(run_id, asset, partition, attempt)
        assert len(name) <= 63 and JOB_NAME_RE.match(name), name
        assert name == sagemaker_job_name(run_id, asset, partition, attempt)
        key = (run_id, asset, partition or None, attempt)
        assert seen.setdefault(name, key) == key, f"collision: {name}"
    # retries of the same step get new names (SageMaker job names are unique per account forever)
    names = {sagemaker_job_name("r1", "lane_labels", "d1", a) for a in range(4)}
    assert len(names) == 4


def test_training_jobs_checkpoint_to_s3_and_can_run_on_managed_spot() -> None:
    """An interrupted spot training job resumes: /opt/ml/checkpoints is synced to S3, and spot waits are bounded."""
    target = SageMakerCompute(
        image_uri="registry/img:1",
        role_arn="arn:aws:iam::1:role/r",
        pipes_bucket="pipes",
        managed_spot=True,
        max_runtime_s=3600,
    )
    params = target.training_job_params("detector_model", "job-1", "s3://pipes/p", "s3://pipes/j")
    assert params["CheckpointConfig"] == {
        "S3Uri": "s3://pipes/checkpoints/detector_model",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert params["EnableManagedSpotTraining"] is True
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    on_demand = SageMakerCompute(image_uri="i", role_arn="r", pipes_bucket="pipes")
    assert "EnableManagedSpotTraining" not in on_demand.training_job_params("a", "n", "s3://p", "s3://j")
