"""Grid synchronisation for `drive_timeline`: the fixed grid, the interpolate/asof rules, typed output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from rosbag_assets.io.tables import Table, read_table
from rosbag_assets.steps.drive_timeline.frames import frame_summaries
from rosbag_assets.steps.drive_timeline.options import (
    IMU_COLUMNS,
    TIMELINE_COLUMNS,
    DriveTimeline,
    DriveTimelineOptions,
    SignalRule,
)
from rosbag_assets.steps.drive_timeline.signals import signal_samples


def build_timeline(
    drive: str,
    topics: Mapping[str, Table],
    *,
    topic_types: Mapping[str, str] | None = None,
    labels: Table | None = None,
    lanes: Table | None = None,
    frames: Table | None = None,
    options: DriveTimelineOptions | dict[str, Any] | None = None,
) -> DriveTimeline:
    """Put a drive's speed, IMU, GPS and per-frame object/lane summaries on one grid.

    `topics` maps topic name -> topic table (`log_time_ns`, `header_stamp_ns`, flattened message fields);
    `topic_types` (topic -> ROS type, from `raw_bags`' topics.parquet) picks sources by type, otherwise
    the fields tell. Speed prefers odometry, then a TwistStamped (not a `cmd` topic), then GPS speed, then
    speed derived from NavSatFix positions. `frames` (the frame index) lets frames without any detection
    count as "0 persons"; without it only frames that have labels or lanes are known.
    """
    opts = options if isinstance(options, DriveTimelineOptions) else DriveTimelineOptions(**(options or {}))
    tables = {name: read_table(t).to_pandas() for name, t in topics.items()}
    samples, sources = signal_samples(tables, topic_types, opts)
    per_frame, camera = frame_summaries(labels, lanes, frames, opts)
    sources["camera"] = camera
    times = [t for t, _ in samples.values() if len(t)] + (
        [per_frame["t"].to_numpy()] if len(per_frame) else []
    )
    if not times:
        return DriveTimeline(pd.DataFrame(columns=TIMELINE_COLUMNS), sources)
    grid_ns = round(opts.grid_ms * 1e6)
    start = min(int(t.min()) for t in times) // grid_ns * grid_ns
    grid = np.arange(start, max(int(t.max()) for t in times) + 1, grid_ns, dtype=np.int64)

    out = pd.DataFrame({"drive": drive, "t_ns": grid, "t_s": (grid - grid[0]) / 1e9})
    for signal in ("speed_mps", *IMU_COLUMNS, "lat", "lon"):
        if signal in samples:
            out[signal] = align(*samples[signal], grid, opts.rule(signal))
        else:
            out[signal] = np.nan
    out["camera_topic"] = camera
    rule = opts.rule("frame")
    pick = asof_index(per_frame["t"].to_numpy(np.int64), grid, rule.max_gap_ms)
    found = pick >= 0
    for col in TIMELINE_COLUMNS[TIMELINE_COLUMNS.index("frame_key") :]:
        source = "t" if col == "frame_stamp_ns" else col
        values = (
            per_frame[source].take(np.where(found, pick, 0))
            if len(per_frame)
            else pd.Series([None] * len(grid))
        )
        out[col] = values.reset_index(drop=True).where(pd.Series(found), None)
    return DriveTimeline(_typed(out), sources)


def align(t: np.ndarray, v: np.ndarray, grid: np.ndarray, rule: SignalRule) -> np.ndarray:
    """Values of samples (t, v) at the grid instants under `rule`; NaN where the rule finds nothing."""
    t, v = _clean(np.asarray(t, np.int64), np.asarray(v, float), rule.smooth_ms)
    if not len(t):
        return np.full(len(grid), np.nan)
    if rule.method == "asof":
        i = asof_index(t, grid, rule.max_gap_ms)
        return np.where(i >= 0, v[np.maximum(i, 0)], np.nan)
    i = np.searchsorted(t, grid, "right") - 1  # t[i] <= step < t[i + 1]
    before = np.clip(i, 0, len(t) - 1)
    after = np.clip(i + 1, 0, len(t) - 1)
    exact = (i >= 0) & (t[before] == grid)
    inside = (i >= 0) & (i + 1 < len(t))
    span = (t[after] - t[before]).astype(float)
    weight = np.where(span > 0, (grid - t[before]) / np.where(span > 0, span, 1.0), 0.0)
    value = v[before] + weight * (v[after] - v[before])
    ok = exact | (inside & (span <= rule.max_gap_ms * 1e6))
    return np.where(exact, v[before], np.where(ok, value, np.nan))


def asof_index(t: np.ndarray, grid: np.ndarray, max_gap_ms: float) -> np.ndarray:
    """Per grid step, the index of the last sample at or before it and at most `max_gap_ms` old, else -1."""
    if not len(t):
        return np.full(len(grid), -1)
    i = np.searchsorted(t, grid, "right") - 1
    age = grid - t[np.maximum(i, 0)]
    return np.where((i >= 0) & (age <= max_gap_ms * 1e6), i, -1)


def _clean(t: np.ndarray, v: np.ndarray, smooth_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Finite samples, sorted by time, one per instant (the last), optionally smoothed."""
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    last = np.append(t[1:] != t[:-1], True)
    t, v = t[last], v[last]
    if smooth_ms > 0 and len(t) > 1:
        s = pd.Series(v, index=pd.to_datetime(t, unit="ns"))
        v = s.rolling(pd.Timedelta(milliseconds=smooth_ms), center=True, min_periods=1).mean().to_numpy()
    return t, v


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    """Nullable dtypes, so 'unknown' stays NULL in Parquet and DuckDB instead of becoming 0 or False."""
    kinds = {
        "frame_stamp_ns": "Int64",
        "persons": "Int64",
        "vehicles": "Int64",
        "ego_lanes": "Int64",
        "person_in_ego_lane": "boolean",
        "vehicle_in_ego_lane": "boolean",
        "min_lateral_offset": "float64",
        "ego_lane_offset": "float64",
        "brightness": "float64",
    }
    for col, kind in kinds.items():
        out[col] = (
            pd.array(out[col].tolist(), dtype=kind)
            if kind != "float64"
            else pd.to_numeric(out[col]).astype(float)
        )
    return out[TIMELINE_COLUMNS]
