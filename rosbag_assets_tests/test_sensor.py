"""Drive discovery: a new drive becomes a partition with a run; unchanged drives are left alone."""

import json
import shutil
from pathlib import Path

import dagster as dg
from conftest import shared
from support import tick

from rosbag_assets.defs.definitions import defs
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage


def test_new_changed_and_unchanged_drives(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "drive-a").mkdir(parents=True)
    shutil.copy(shared("bags", "ros1", "get_images_tiny.bag"), landing / "drive-a" / "a.bag")
    (landing / "not a drive").mkdir()
    (landing / "not a drive" / "x.bag").write_bytes(b"x")
    (landing / "empty").mkdir()
    storage = DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "out"))
    instance = dg.DagsterInstance.ephemeral()

    first = tick(instance, storage, None)
    assert [r.partition_key for r in first.run_requests] == ["drive-a"]
    assert first.run_requests[0].tags["rosbag_assets/reason"] == "new drive"
    assert instance.get_dynamic_partitions(drives.name) == ["drive-a"]

    second = tick(instance, storage, first.cursor)
    assert second.run_requests == [] and not second.dynamic_partitions_requests

    # a new drive and a new bag in an existing drive
    (landing / "drive-b").mkdir()
    shutil.copy(shared("bags", "ros1", "duckietown_sim_compressed.bag"), landing / "drive-b" / "b.bag")
    shutil.copy(shared("bags", "ros1", "duckietown_sim_compressed.bag"), landing / "drive-a" / "b.bag")
    third = tick(instance, storage, second.cursor)
    reasons = {r.partition_key: r.tags["rosbag_assets/reason"] for r in third.run_requests}
    assert reasons == {"drive-a": "bags changed", "drive-b": "new drive"}
    assert sorted(instance.get_dynamic_partitions(drives.name)) == ["drive-a", "drive-b"]
    run_keys = {r.run_key for r in third.run_requests}
    assert len(run_keys) == 2 and all(k.split(":")[0] in reasons for k in run_keys)
    assert tick(instance, storage, third.cursor).run_requests == []
    assert set(json.loads(third.cursor)["drives"]) == {"drive-a", "drive-b"}


def test_seed_file_drives(tmp_path: Path) -> None:
    drive = tmp_path / "elsewhere" / "recording"
    drive.mkdir(parents=True)
    shutil.copy(shared("bags", "ros1", "get_images_tiny.bag"), drive / "a.bag")
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"drives_to_process": {"seeded-1": {"path": str(drive)}}}))
    storage = DriveStorage(drives_file=str(seed), output_root=str(tmp_path / "out"))
    result = tick(dg.DagsterInstance.ephemeral(), storage, None)
    assert [r.partition_key for r in result.run_requests] == ["seeded-1"]
    assert storage.drive_uri("seeded-1") == str(drive)


def test_sensor_targets_the_whole_chain() -> None:
    job = defs.resolve_job_def("process_drive")
    chain = "raw_bags extracted_frames object_labels lane_labels anonymized_frames drive_report topic_tables"
    chain += " drive_timeline scenes foxglove"
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(chain.split())
    assert defs.resolve_sensor_def("drive_discovery_sensor").job_name == "process_drive"
