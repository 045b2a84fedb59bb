"""AWS Batch compute target over Dagster Pipes: moto (S3, Logs, Batch) plus `LocalBatchClient`, which runs
each submitted job's real entry point as a local subprocess with the container's environment."""

import _thread
import io
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pandas as pd
import pytest
from aws_fakes import LocalBatchClient, setup_batch
from conftest_aws import MotoEndpoint, _moto_server_process, moto_server  # noqa: F401
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster_pipes import decode_param

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.compute.batch import BatchCompute
from rosbag_assets.compute.batch_client import PipesBatchClient, console_url
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.demo.sample_drive import ROS2_BAG, write_sample_drive
from rosbag_assets.io import publish
from rosbag_assets.io.storage import join_key, storage_from_uri

pytestmark = pytest.mark.timeout(120)


class LocalBatchCompute(BatchCompute):
    """BatchCompute whose Batch client is a registered `LocalBatchClient` (resources hold config only)."""

    fake_key: str
    FAKES: ClassVar[dict[str, LocalBatchClient]] = {}

    def boto_client(self, service: str) -> Any:
        return self.FAKES[self.fake_key] if service == "batch" else super().boto_client(service)


class BatchTargets(ComputeTargets):
    """ComputeTargets with the Batch target as default (what the lead wires as field ``batch``)."""

    default: str = "batch"  # type: ignore[assignment]
    batch: LocalBatchCompute


@dataclass
class Batch:
    fake: LocalBatchClient
    key: str
    moto: MotoEndpoint


@pytest.fixture
def batch(moto_server: MotoEndpoint) -> Iterator[Batch]:  # noqa: F811
    """moto with queues and a job definition; jobs run locally through `LocalBatchClient`."""
    setup_batch(moto_server, environment={"AWS_ENDPOINT_URL_S3": moto_server.url})
    fake = LocalBatchClient(moto_server.client("batch"), moto_server.client("logs"))
    key = uuid.uuid4().hex
    LocalBatchCompute.FAKES[key] = fake
    try:
        yield Batch(fake, key, moto_server)
    finally:
        fake.close()
        LocalBatchCompute.FAKES.pop(key, None)


def _compute(moto: MotoEndpoint, key: str, **config: Any) -> LocalBatchCompute:
    return LocalBatchCompute(
        job_queue="cpu",
        job_definition="rosbag",
        region=moto.region,
        endpoint_url=moto.url,
        poll_interval_s=0.2,
        logs_grace_s=10,
        fake_key=key,
        **config,
    )


def _drive(root: Path, name: str, bags: int) -> Path:
    write_sample_drive(root / name, seconds=1.0, width=320, height=180)
    if bags == 1:
        shutil.rmtree(root / name / ROS2_BAG)
    return root


INSTANCE: dict[str, dg.DagsterInstance] = {}


def _materialize(assets: list, drive: str, landing: Path, out: Path, compute: BatchCompute) -> Any:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(drives.name, [drive])
    result = dg.materialize(
        assets,
        partition_key=drive,
        instance=instance,
        resources={
            "storage": DriveStorage(landing_root=str(landing), output_root=str(out)),
            "compute": BatchTargets(batch=compute, local=LocalCompute()),
        },
        raise_on_error=False,
    )
    INSTANCE[result.run_id] = instance
    return result


def _messages(result: Any) -> list[str]:
    """Every log line of the run's event log (user log messages and Dagster events)."""
    return [e.user_message for e in INSTANCE[result.run_id].all_logs(result.run_id) if e.user_message]


def _env(params: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in params["containerOverrides"]["environment"]}


@pytest.mark.slow
def test_single_bag_drive_runs_plain_jobs_with_pipes(batch: Batch, tmp_path: Path) -> None:
    fake, key, moto = batch.fake, batch.key, batch.moto
    landing, out = _drive(tmp_path / "landing", "single", bags=1), tmp_path / "out"
    compute = _compute(
        moto,
        key,
        per_asset={"raw_bags": {"job_queue": "gpu", "timeout_s": 120, "retry_attempts": 2}},
    )
    result = _materialize([raw_bags, extracted_frames], "single", landing, out, compute)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    inventory, extract = fake.submitted
    assert inventory["jobQueue"] == "gpu" and extract["jobQueue"] == "cpu"
    assert inventory["timeout"] == {"attemptDurationSeconds": 120}
    retry = inventory["retryStrategy"]
    assert retry["attempts"] == 2
    assert retry["evaluateOnExit"][0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}
    assert {"onReason": "CannotPullContainerError*", "action": "RETRY"} in retry["evaluateOnExit"]
    assert retry["evaluateOnExit"][-1]["action"] == "EXIT"
    assert inventory["propagateTags"] is True
    assert inventory["tags"]["dagster/run-id"] == result.run_id
    assert inventory["tags"]["dagster/partition"] == "single"
    assert inventory["tags"]["dagster/asset-key"] == "raw_bags"
    assert inventory["containerOverrides"]["command"] == ["python", "-m", "rosbag_assets.steps.entrypoint"]
    assert "arrayProperties" not in extract  # one bag: Batch needs array size >= 2
    assert "DAGSTER_PIPES_CONTEXT" in _env(extract)
    assert all(job.exit_code == 0 for job in fake.jobs.values()) and len(fake.jobs) == 2

    mat = result.asset_materializations_for_node("extracted_frames")[0]
    job_id = mat.metadata["AWS Batch job id"].value
    assert job_id in fake.jobs and mat.metadata["AWS Batch job ARN"].value.endswith(job_id)
    assert mat.metadata["frames"].value > 0  # reported from inside the job
    assert mat.metadata["bags"].value == 1
    assert mat.metadata["AWS Batch job URL"].url == console_url(moto.region, job_id)
    assert "log-events" in mat.metadata["AWS Batch log URL"].url
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["every_image_topic_has_frames"] and checks["all_bags_readable"]
    assert any("committed" in m and "frames at" in m for m in _messages(result))  # forwarded job log


@pytest.mark.slow
def test_multi_bag_extract_fans_out_as_array_job(batch: Batch, tmp_path: Path) -> None:
    fake, key, moto = batch.fake, batch.key, batch.moto
    landing, out = _drive(tmp_path / "landing", "multi", bags=2), tmp_path / "out"
    result = _materialize([raw_bags, extracted_frames], "multi", landing, out, _compute(moto, key))
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    arrays = [p for p in fake.submitted if "arrayProperties" in p]
    assert len(arrays) == 1 and arrays[0]["arrayProperties"] == {"size": 2}
    array_id = next(j for j in fake.arrays)
    children = [fake.jobs[f"{array_id}:{i}"] for i in range(2)]
    assert [c.env["AWS_BATCH_JOB_ARRAY_INDEX"] for c in children] == ["0", "1"]
    assert all(c.exit_code == 0 for c in children)
    assert len(fake.submitted) == 3  # inventory, array extract, merge/commit
    assert [p["jobName"].split("-")[-2] for p in fake.submitted[1:]] == ["parts", "finish"]
    plan = decode_param(_env(arrays[0])["DAGSTER_PIPES_CONTEXT"])["data"]["extras"]
    parts, finish = plan["fanout_parts"], plan["fanout_finish"]  # the plan the step declared
    assert [p["bag_names"] for p in parts] == [["front_ros1.bag"], ["front_ros2/"]]
    assert {p["version"] for p in parts} == {finish["version"]} and not any(p["commit"] for p in parts)
    assert finish["bag_names"] == [] and finish["commit"] is True

    storage = storage_from_uri(str(out))
    manifest = publish.current(storage, "multi/extracted_frames")
    assert manifest is not None
    index = pd.read_parquet(
        io.BytesIO(
            storage.read_bytes(
                join_key("multi/extracted_frames/versions", manifest["version"], "index.parquet")
            )
        )
    )
    assert set(index["bag"]) == {"front_ros1.bag", "front_ros2/"}
    assert len(result.asset_materializations_for_node("extracted_frames")) == 1
    messages = _messages(result)
    assert any(m.startswith("[child 0]") for m in messages) and any(
        m.startswith("[child 1]") for m in messages
    )


def test_failed_job_fails_the_step_with_reason_and_log_tail(batch: Batch, tmp_path: Path) -> None:
    fake, key, moto = batch.fake, batch.key, batch.moto
    (tmp_path / "landing" / "nobags").mkdir(parents=True)

    @dg.asset(name="extracted_frames", partitions_def=drives)  # no retry policy: one failing job
    def extract_without_inventory(
        context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets
    ):
        params = storage.step_params("extracted_frames", context.partition_key, context.run_id)
        return compute.for_asset("extracted_frames").run(context, params)

    compute = _compute(moto, key, fan_out=False)  # no plan to make: the job itself finds no inventory
    result = _materialize(
        [extract_without_inventory], "nobags", tmp_path / "landing", tmp_path / "out", compute
    )
    assert not result.success
    (job,) = fake.jobs.values()
    assert job.exit_code not in (0, None)
    error = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "BatchJobFailed" in error and f"AWS Batch job {job.job_id} failed" in error
    assert "Essential container in task exited" in error and f"exit code: {job.exit_code}" in error
    assert "materialize the upstream asset first" in error  # from the job's last log lines


SLEEPER = """
import time
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    pipes.log.info("sleeper started")
    time.sleep(120)
"""


def test_interrupt_terminates_the_batch_job(batch: Batch) -> None:
    fake = batch.fake
    client = PipesBatchClient(client=fake, logs_client=batch.moto.client("logs"), poll_interval_s=0.2)

    @dg.asset
    def sleeper(context: dg.AssetExecutionContext):
        params = {
            "jobName": "sleeper",
            "jobQueue": "cpu",
            "jobDefinition": "rosbag",
            "containerOverrides": {"command": ["python", "-c", SLEEPER]},
        }
        return client.run(context=context, submit_job_params=params).get_results()

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any("sleeper started" in line for job in list(fake.jobs.values()) for line in job.lines):
                _thread.interrupt_main()
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    try:
        result = dg.materialize([sleeper], raise_on_error=False)
        assert not result.success
    except (KeyboardInterrupt, DagsterExecutionInterruptedError):
        pass
    (job,) = fake.jobs.values()
    assert fake.terminated == [job.job_id]
    assert job.process is not None and job.process.poll() is not None  # the container is gone
    assert job.status == "FAILED" and job.status_reason.startswith(
        "Dagster: the Dagster step stopped waiting"
    )


@pytest.mark.slow
def test_s3_pipes_transport_for_plain_jobs(batch: Batch, tmp_path: Path) -> None:
    fake, key, moto = batch.fake, batch.key, batch.moto
    moto.client("s3").create_bucket(Bucket="pipes")
    landing = _drive(tmp_path / "landing", "s3pipes", bags=1)
    compute = _compute(moto, key, pipes_bucket="pipes")
    result = _materialize([raw_bags], "s3pipes", landing, tmp_path / "out", compute)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    env = _env(fake.submitted[0])
    assert env["ROSBAG_ASSETS_PIPES_BUCKET"] == "pipes"
    assert decode_param(env["DAGSTER_PIPES_CONTEXT"])["bucket"] == "pipes"
    assert decode_param(env["DAGSTER_PIPES_MESSAGES"])["bucket"] == "pipes"
    mat = result.asset_materializations_for_node("raw_bags")[0]
    assert mat.metadata["bags"].value == 1 and "AWS Batch job id" in mat.metadata
    assert json.dumps(fake.submitted[0]["tags"])  # tags are plain strings
