"""Reliability, operations: failed drives are retried (bounded), instances monitor runs and bound pools, and
every check result says which drive it is about; a drive of unreadable bags never turns green in Dagster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml
from bagwriting import make_image, write_bag
from dagster._core.test_utils import create_run_for_test
from support import tick

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.sensors import ATTEMPT_TAG, FINGERPRINT_TAG, MAX_ATTEMPTS

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000


def cam_bag(path: Path) -> Path:
    img = np.zeros((8, 8, 3), np.uint8).tobytes()
    return write_bag(path, "ros1", {"/cam": [(T0, make_image("ros1", "bgr8", 8, 8, 24, img, stamp_ns=T0))]})


def finished(instance: dg.DagsterInstance, request: dg.RunRequest, status: dg.DagsterRunStatus) -> None:
    """What the daemon and the run would do with `request`: a run of process_drive that ended in `status`."""
    tags = {**request.tags, "dagster/partition": request.partition_key, "dagster/run_key": request.run_key}
    create_run_for_test(instance, job_name="process_drive", status=status, tags=tags)


def test_a_failed_drive_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    for name in ("flaky", "fine"):
        (landing / name).mkdir(parents=True)
        cam_bag(landing / name / "a.bag")
    storage = DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "out"))
    instance = dg.DagsterInstance.ephemeral()
    first = tick(instance, storage, None)
    requests = {r.partition_key: r for r in first.run_requests}
    fingerprint = requests["flaky"].tags[FINGERPRINT_TAG]
    finished(instance, requests["flaky"], dg.DagsterRunStatus.FAILURE)
    finished(instance, requests["fine"], dg.DagsterRunStatus.SUCCESS)
    cursor = first.cursor
    keys = []
    for attempt in range(2, MAX_ATTEMPTS + 1):  # the bags did not change, yet the failed drive runs again
        result = tick(instance, storage, cursor)
        (retry,) = result.run_requests
        assert retry.partition_key == "flaky" and retry.tags["rosbag_assets/reason"] == "last run failed"
        assert retry.run_key == f"flaky:{fingerprint}:attempt{attempt}" and retry.tags[ATTEMPT_TAG] == str(
            attempt
        )
        keys.append(retry.run_key)
        assert tick(instance, storage, result.cursor).run_requests == []  # one retry per failure
        finished(instance, retry, dg.DagsterRunStatus.FAILURE)
        cursor = result.cursor
    assert tick(instance, storage, cursor).run_requests == []  # bounded: no attempt beyond MAX_ATTEMPTS
    # a change to the drive starts over, with a plain run key
    cam_bag(landing / "flaky" / "b.bag")
    (fresh,) = tick(instance, storage, cursor).run_requests
    assert fresh.run_key.count(":") == 1 and fresh.tags[ATTEMPT_TAG] == "1"


def test_a_drive_whose_last_run_succeeded_or_was_manual_is_not_retried(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "d").mkdir(parents=True)
    cam_bag(landing / "d" / "a.bag")
    storage = DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "out"))
    instance = dg.DagsterInstance.ephemeral()
    first = tick(instance, storage, None)
    (request,) = first.run_requests
    finished(instance, request, dg.DagsterRunStatus.FAILURE)
    finished(instance, request, dg.DagsterRunStatus.SUCCESS)  # e.g. re-executed by hand, and it worked
    assert tick(instance, storage, first.cursor).run_requests == []
    # a failed run somebody launched by hand (no discovery tags) is theirs to retry
    create_run_for_test(
        instance,
        job_name="process_drive",
        status=dg.DagsterRunStatus.FAILURE,
        tags={"dagster/partition": "d"},
    )
    assert tick(instance, storage, first.cursor).run_requests == []


@pytest.mark.slow
def test_instances_monitor_runs_and_bound_pools(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    deploy = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert deploy["run_monitoring"]["enabled"] is True
    assert deploy["concurrency"]["pools"]["default_limit"] >= 1
    dagster_instance_config(str(REPO / "deploy"), config_filename="dagster.yaml")
    # the dev instance the Makefile writes (the venv is this one; nothing is installed)
    home = tmp_path / "home"
    venv = Path(sys.executable).parents[1]
    done = subprocess.run(
        [
            "make",
            "-C",
            str(REPO),
            f"DAGSTER_HOME={home}",
            f"VENV={venv}",
            f"STAMP={REPO / 'Makefile'}",
            f"{home}/dagster.yaml",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.global_op_concurrency_default_limit >= 1
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1


def materialize(drive: str, storage: DriveStorage, config: dict | None = None) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(drives.name, [drive])
    return dg.materialize(
        [raw_bags, extracted_frames],
        partition_key=drive,
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode="in_process"))},
        run_config={"ops": config or {}},
        raise_on_error=False,
    )


@pytest.mark.slow
def test_unreadable_drive_is_never_green_and_checks_name_their_drive(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "junk").mkdir(parents=True)
    (landing / "junk" / "zero.bag").write_bytes(b"")
    (landing / "junk" / "noise.bag").write_bytes(b"#ROSBAG V2.0\n" + bytes(500))
    storage = DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "out"))
    result = materialize("junk", storage)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "extracted_frames"
    text = str(failure.step_failure_data.error)
    assert "IncompleteDriveError" in text and "zero.bag" in text and "noise.bag" in text
    readable = {e.check_name: e for e in result.get_asset_check_evaluations()}["all_bags_readable"]
    assert readable.metadata["drive"].value == "junk" and readable.description.startswith("drive junk:")

    partial = materialize("junk", storage, {"extracted_frames": {"config": {"allow_partial": True}}})
    assert not partial.success  # the blocking check stops the run: red, even though it published
    checks = {e.check_name: e for e in partial.get_asset_check_evaluations()}
    extracted = checks["all_bags_extracted"]
    assert not extracted.passed and extracted.metadata["drive"].value == "junk"
    assert extracted.description.startswith("drive junk:") and "made current" in extracted.description
    mats = partial.asset_materializations_for_node("extracted_frames")
    assert mats and mats[0].metadata["frames"].value == 0
