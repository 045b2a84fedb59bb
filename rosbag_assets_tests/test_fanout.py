"""The split a step declares (plain Python): extracted_frames' parts, run one after the other as a target
without fan-out could, commit the same frames as the unsplit step."""

import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rosbag_assets.demo.sample_drive import ROS2_BAG
from rosbag_assets.io import publish
from rosbag_assets.io.storage import join_key, storage_from_uri
from rosbag_assets.steps.entrypoint import run_step
from rosbag_assets.steps.fanout import array_extras, part_params, plan_fanout, plan_from_extras


def _params(landing: Path, out: Path, job: str, run_id: str = "run12345") -> dict:
    return {
        "step": job,
        "drive": "sample",
        "source": str(landing / "sample"),
        "output": str(out),
        "run_id": run_id,
    }


def _index(out: Path) -> pd.DataFrame:
    storage = storage_from_uri(str(out))
    manifest = publish.current(storage, "sample/extracted_frames")
    assert manifest is not None
    key = join_key("sample/extracted_frames/versions", manifest["version"], "index.parquet")
    return pd.read_parquet(io.BytesIO(storage.read_bytes(key)))


def test_extracted_frames_splits_per_bag_and_the_parts_commit_what_the_whole_step_does(
    small_sample_landing: Path, tmp_path: Path
) -> None:
    split_out, whole_out = tmp_path / "split", tmp_path / "whole"
    for out in (split_out, whole_out):
        run_step(_params(small_sample_landing, out, "raw_bags"))

    plan = plan_fanout(_params(small_sample_landing, split_out, "extracted_frames"))
    assert plan is not None and len(plan.parts) == 2
    assert [p["bag_names"] for p in plan.parts] == [["front_ros1.bag"], [f"{ROS2_BAG}/"]]
    assert {p["version"] for p in plan.parts} == {plan.finish["version"]}  # one shared version
    assert not any(p["commit"] for p in plan.parts) and plan.finish == {
        **plan.parts[0],
        "bag_names": [],
        "commit": True,
    }
    assert plan_from_extras(array_extras(plan)) == plan  # what a retry reads back from the array job
    extras = array_extras(plan)
    assert part_params(extras, 1) == plan.parts[1]
    with pytest.raises(IndexError, match="array child 2: the plan has 2 parts"):
        part_params(extras, 2)

    for part in plan.parts:
        assert publish.current(storage_from_uri(str(split_out)), "sample/extracted_frames") is None
        run_step(part)
    finish = run_step(plan.finish)
    whole = run_step(_params(small_sample_landing, whole_out, "extracted_frames"))
    columns = ["bag", "topic", "stamp_ns", "width", "height"]
    pd.testing.assert_frame_equal(_index(split_out)[columns], _index(whole_out)[columns])
    assert finish.metadata["frames"] == whole.metadata["frames"]
    assert plan_fanout(_params(small_sample_landing, split_out, "object_labels")) is None  # no split declared


def test_a_single_bag_drive_is_not_split(small_sample_landing: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(small_sample_landing, landing)
    shutil.rmtree(landing / "sample" / ROS2_BAG)
    run_step(_params(landing, tmp_path / "out", "raw_bags"))
    assert plan_fanout(_params(landing, tmp_path / "out", "extracted_frames")) is None


def test_splitting_needs_the_committed_inventory(small_sample_landing: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialize the upstream asset first"):
        plan_fanout(_params(small_sample_landing, tmp_path / "out", "extracted_frames"))
