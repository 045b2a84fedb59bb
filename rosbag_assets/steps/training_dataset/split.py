"""Train/val/test split by drive or by time block, so neighbouring frames never sit on both sides.

Frames 100 ms apart are nearly the same picture: a random per-frame split would put copies of test frames in
train. Whole groups (a drive, or a block of `block_s` seconds of one drive, all cameras together) go to one
split, and frames of different splits closer than `guard_s` in the same drive are dropped.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rosbag_assets.steps.training_dataset.options import SPLITS


@dataclass
class SplitReport:
    by: str
    method: str
    seed: int
    targets: dict[str, float]
    frames: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    guard_dropped: int = 0

    @property
    def achieved(self) -> dict[str, float]:
        total = sum(self.frames.values())
        return {s: (self.frames.get(s, 0) / total if total else 0.0) for s in SPLITS}


def split_groups(frames: pd.DataFrame, by: str, block_s: float) -> pd.Series:
    """The group of each frame: its drive, or drive + absolute time block (stable as a drive grows)."""
    if by == "drive":
        return frames["drive"].astype(str)
    block = (frames["stamp_ns"].astype("int64") // round(block_s * 1e9)).astype(str)
    return frames["drive"].astype(str) + "@" + block


def _stable_unit(seed: int, group: str) -> float:
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_groups(
    sizes: dict[str, int], fractions: dict[str, float], seed: int, method: str
) -> dict[str, str]:
    """Group -> split.

    balanced: groups in seeded random order, largest first, each to the split furthest below its target
    (relative), so even three drives give train, val and test one each. stable: a seeded hash of the group
    name picks the split, so a group keeps its split when more drives are added (fractions are approximate).
    """
    active = [s for s in SPLITS if fractions.get(s, 0) > 0]
    if method == "stable":
        edges = np.cumsum([fractions[s] for s in active])
        return {
            g: active[min(int(np.searchsorted(edges, _stable_unit(seed, g), "right")), len(active) - 1)]
            for g in sizes
        }
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sizes[g])  # stable: equal sizes keep the seeded order
    total = sum(sizes.values())
    counts = dict.fromkeys(active, 0)
    out: dict[str, str] = {}
    for g in order:
        best = max(active, key=lambda s: (fractions[s] * total - counts[s]) / (fractions[s] * total))
        out[g] = best
        counts[best] += sizes[g]
    return out


def _guard(frames: pd.DataFrame, guard_ns: int) -> np.ndarray:
    """Keep-mask: drop a frame when a kept frame of another split in its drive is less than guard_ns before it.

    One pass in time order per drive, so every pair of kept frames from different splits is >= guard apart.
    """
    keep = np.ones(len(frames), bool)
    if guard_ns <= 0:
        return keep
    order = frames.reset_index(drop=True).sort_values(["drive", "stamp_ns"], kind="stable")
    last: dict[str, int] = {}
    drive_now = None
    for pos, drive, stamp, split in zip(
        order.index, order["drive"], order["stamp_ns"].astype("int64"), order["split"], strict=True
    ):
        if drive != drive_now:
            drive_now, last = drive, {}
        if any(s != split and stamp - t < guard_ns for s, t in last.items()):
            keep[pos] = False
            continue
        last[split] = int(stamp)
    return keep


def assign_splits(
    frames: pd.DataFrame,
    by: str = "time_block",
    block_s: float = 30.0,
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    guard_s: float = 2.0,
    method: str = "balanced",
) -> tuple[pd.DataFrame, SplitReport]:
    """The frames with `split` and `split_group` columns (guard-dropped frames removed), and what was achieved."""
    fractions = fractions or {"train": 0.8, "val": 0.1, "test": 0.1}
    report = SplitReport(by=by, method=method, seed=seed, targets=dict(fractions))
    if frames.empty:
        return frames.assign(split=pd.Series(dtype=str), split_group=pd.Series(dtype=str)), report
    out = frames.reset_index(drop=True).copy()
    out["split_group"] = split_groups(out, by, block_s)
    sizes = out.groupby("split_group").size().to_dict()
    mapping = assign_groups(sizes, fractions, seed, method)
    out["split"] = out["split_group"].map(mapping)
    if by == "time_block":
        keep = _guard(out, round(guard_s * 1e9))
        report.guard_dropped = int((~keep).sum())
        out = out[keep].reset_index(drop=True)
    report.frames = {s: int((out["split"] == s).sum()) for s in SPLITS}
    report.groups = {s: sum(1 for v in mapping.values() if v == s) for s in SPLITS}
    return out, report
