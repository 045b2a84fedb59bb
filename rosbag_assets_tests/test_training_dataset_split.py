"""training_dataset splits: whole drives or time blocks, a time guard between splits, seeded and reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from rosbag_assets.steps.training_dataset import TrainingDatasetOptions
from rosbag_assets.steps.training_dataset.split import assign_splits

T0 = 1_700_000_000 * 10**9


def timeline(
    drives: dict[str, float], hz: float = 10.0, topics: tuple[str, ...] = ("/front", "/left")
) -> pd.DataFrame:
    """Frames of several drives (name -> seconds), every topic at the same stamps, as a frame index."""
    rows = []
    for n, (drive, seconds) in enumerate(drives.items()):
        start = T0 + n * 3_600 * 10**9
        for i in range(round(seconds * hz)):
            stamp = start + round(i * 1e9 / hz)
            for topic in topics:
                rows.append(
                    {"drive": drive, "topic": topic, "stamp_ns": stamp, "frame_key": f"{topic}/{stamp}.jpg"}
                )
    return pd.DataFrame(rows)


def closest_cross_split_gap_s(frames: pd.DataFrame) -> float:
    """The smallest time between two frames of one drive that sit in different splits."""
    gaps = []
    for _, drive in frames.groupby("drive"):
        d = drive.sort_values("stamp_ns")
        stamps, splits = d["stamp_ns"].to_numpy(), d["split"].to_numpy()
        for s in set(splits):
            mine, other = stamps[splits == s], np.sort(stamps[splits != s])
            if len(other):
                idx = np.clip(np.searchsorted(other, mine), 1, len(other)) - 1
                near = np.minimum(
                    np.abs(mine - other[idx]), np.abs(mine - other[np.clip(idx + 1, 0, len(other) - 1)])
                )
                gaps.append(near.min())
    return min(gaps) / 1e9 if gaps else float("inf")


def test_time_blocks_keep_neighbours_together_and_reach_the_fractions() -> None:
    frames = timeline({"a": 600, "b": 600, "c": 600})  # 60 blocks of 30 s, two cameras
    out, report = assign_splits(frames, "time_block", block_s=30, seed=3, guard_s=2.0)

    # both cameras of one instant are always in the same split
    assert out.groupby(["drive", "stamp_ns"])["split"].nunique().max() == 1
    # no frame of one split is within the guard of a frame of another split in the same drive
    assert closest_cross_split_gap_s(out) >= 2.0
    # consecutive frames (100 ms apart) therefore never straddle a split
    assert report.guard_dropped > 0
    assert report.guard_dropped == len(frames) - len(out)
    assert set(out["split"]) == {"train", "val", "test"}
    for split, target in report.targets.items():
        assert abs(report.achieved[split] - target) < 0.03, report.achieved
    assert sum(report.frames.values()) == len(out)
    assert report.groups == {s: out.loc[out["split"] == s, "split_group"].nunique() for s in report.groups}


def test_splits_are_deterministic_from_the_seed_and_independent_of_row_order() -> None:
    frames = timeline({"a": 300, "b": 300})
    first, _ = assign_splits(frames, "time_block", block_s=10, seed=7)
    shuffled = frames.sample(frac=1.0, random_state=1)
    again, _ = assign_splits(shuffled, "time_block", block_s=10, seed=7)
    key = ["drive", "topic", "stamp_ns"]
    pd.testing.assert_frame_equal(
        first.sort_values(key).reset_index(drop=True), again.sort_values(key).reset_index(drop=True)
    )
    other, _ = assign_splits(frames, "time_block", block_s=10, seed=8)
    assert not first.set_index(key)["split"].equals(
        other.set_index(key)["split"].reindex(first.set_index(key).index)
    )


def test_split_by_drive_puts_each_drive_in_one_split_even_with_three_drives() -> None:
    frames = timeline({"a": 60, "b": 50, "c": 40}, topics=("/front",))
    out, report = assign_splits(frames, "drive", seed=0)
    assert out.groupby("drive")["split"].nunique().max() == 1
    assert sorted(out.groupby("drive")["split"].first()) == ["test", "train", "val"]
    assert report.guard_dropped == 0 and len(out) == len(frames)
    assert report.frames["train"] == 600  # the largest drive goes to the largest split


def test_stable_method_keeps_a_groups_split_when_drives_are_added() -> None:
    before, _ = assign_splits(
        timeline({"a": 300, "b": 300}), "time_block", block_s=10, method="stable", seed=1
    )
    after, _ = assign_splits(
        timeline({"a": 300, "b": 300, "c": 900}), "time_block", block_s=10, method="stable", seed=1
    )
    old = before.groupby("split_group")["split"].first()
    new = after.groupby("split_group")["split"].first()
    assert (new.reindex(old.index) == old).all()
    assert set(new) == {"train", "val", "test"}


def test_options_reject_bad_fractions_guards_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="sum to 1"):
        TrainingDatasetOptions(fractions={"train": 0.8, "val": 0.3})
    with pytest.raises(ValidationError, match="unknown splits"):
        TrainingDatasetOptions(fractions={"train": 0.5, "dev": 0.5})
    with pytest.raises(ValidationError, match="guard_s"):
        TrainingDatasetOptions(block_s=2.0, guard_s=2.0)
    with pytest.raises(ValidationError, match="min_confidnce"):
        TrainingDatasetOptions(min_confidnce=0.3)
    assert TrainingDatasetOptions(fractions={"train": 0.9, "val": 0.1}).fractions == {
        "train": 0.9,
        "val": 0.1,
        "test": 0.0,
    }
