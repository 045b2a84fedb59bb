"""`drive_timeline`: a drive's chosen signals on one fixed time grid (default 100 ms).

Topics are recorded at their own rates (IMU 100 Hz, GPS 1-10 Hz, cameras 10-30 Hz) and jitter, so rules
over several signals ("a person in the ego lane while the car moves") need them on common instants. Each
signal has an explicit rule: `interpolate` (linear between the samples around a grid step, if they are at
most `max_gap_ms` apart) or `asof` (the last sample, if at most `max_gap_ms` old). Nothing is
extrapolated or bridged over longer gaps: a missing signal is NULL, not a guess.

Alignment is numpy `searchsorted` over sorted sample times. `bench/timeline.py` (one hour of 100 Hz IMU
onto a 100 ms grid, 2-core VM under load): numpy incl. sorting 57-69 ms, pandas `merge_asof` (backward +
forward) 45-56 ms, a DuckDB double ASOF JOIN 0.49-0.61 s. numpy and pandas are within noise; numpy is the
shortest code and the same index serves the asof rule and the per-frame summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rosbag_assets.steps.catalog import Table, read_table

ODOMETRY_LIKE = ("nav_msgs/Odometry", "geometry_msgs/TwistWithCovarianceStamped")
TWIST_STAMPED = "geometry_msgs/TwistStamped"
GPS_FIX = "gps_common/GPSFix"
NAV_SAT_FIX = "sensor_msgs/NavSatFix"
IMU = "sensor_msgs/Imu"
# Velocity columns per speed source, best source first; speed is the horizontal norm of the vector.
SPEED_SOURCES: list[tuple[str, tuple[str, ...]]] = [
    ("odometry", ("twist.twist.linear.x", "twist.twist.linear.y")),
    ("twist", ("twist.linear.x", "twist.linear.y")),
    ("gps_speed", ("speed",)),
    ("gps_positions", ("latitude", "longitude")),
]
IMU_COLUMNS = {
    "accel_x": "linear_acceleration.x",
    "accel_y": "linear_acceleration.y",
    "accel_z": "linear_acceleration.z",
    "yaw_rate": "angular_velocity.z",
}
SIGNALS = ("speed_mps", *IMU_COLUMNS, "lat", "lon", "frame")
TIMELINE_COLUMNS = [
    "drive",
    "t_ns",
    "t_s",
    "speed_mps",
    *IMU_COLUMNS,
    "lat",
    "lon",
    "camera_topic",
    "frame_key",
    "frame_stamp_ns",
    "persons",
    "vehicles",
    "person_in_ego_lane",
    "vehicle_in_ego_lane",
    "min_lateral_offset",
    "ego_lanes",
    "ego_lane_offset",
    "brightness",
]
EARTH_RADIUS_M = 6_371_008.8


class TimelineError(ValueError):
    """A chosen topic or table cannot feed the timeline (names the topic and what is missing)."""


class SignalRule(BaseModel):
    """How one signal is put on the grid."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["interpolate", "asof"]
    # interpolate: the samples on both sides of a step are at most this far apart; asof: at most this old.
    max_gap_ms: float = Field(gt=0)
    # centred moving average over the raw samples first (IMU vibration), 0 = none
    smooth_ms: float = Field(0.0, ge=0)


DEFAULT_RULES: dict[str, SignalRule] = {
    # 1.5 s bridges 1 Hz GPS-derived speed; odometry at 50 Hz never needs it
    "speed_mps": SignalRule(method="interpolate", max_gap_ms=1500),
    **{s: SignalRule(method="interpolate", max_gap_ms=250, smooth_ms=100) for s in IMU_COLUMNS},
    "lat": SignalRule(method="interpolate", max_gap_ms=2500),
    "lon": SignalRule(method="interpolate", max_gap_ms=2500),
    # per-frame summaries: the last camera frame, if it is at most 200 ms old
    "frame": SignalRule(method="asof", max_gap_ms=200),
}


class DriveTimelineOptions(BaseModel):
    """Grid, sources and rules. A topic left None is chosen by message type (see `build_timeline`)."""

    model_config = ConfigDict(extra="forbid")
    grid_ms: float = Field(100.0, gt=0)
    time_base: Literal["header", "log"] = "header"  # header stamps (log time where a stamp is 0) or log time
    speed_topic: str | None = None
    imu_topic: str | None = None
    gps_topic: str | None = None
    camera_topic: str | None = (
        None  # the camera whose labels are summarised (None: a "front" one, else busiest)
    )
    person_classes: list[str] = ["person"]
    vehicle_classes: list[str] = ["car", "truck", "bus", "motorcycle", "bicycle", "train"]
    min_confidence: float = Field(0.0, ge=0, le=1)
    brightness_column: str = "brightness"  # in the frame index or the labels; NULL when neither has it
    rules: dict[str, SignalRule] = {}  # overrides of DEFAULT_RULES, by signal name

    @field_validator("rules")
    @classmethod
    def _known_signals(cls, rules: dict[str, SignalRule]) -> dict[str, SignalRule]:
        unknown = set(rules) - set(SIGNALS)
        if unknown:
            raise ValueError(f"rules for unknown signals {sorted(unknown)}; signals: {list(SIGNALS)}")
        if "frame" in rules and rules["frame"].method != "asof":
            raise ValueError(
                "the frame rule must be asof: counts and flags of a frame cannot be interpolated"
            )
        return rules

    def rule(self, signal: str) -> SignalRule:
        return self.rules.get(signal, DEFAULT_RULES[signal])


@dataclass
class DriveTimeline:
    table: pd.DataFrame  # TIMELINE_COLUMNS, one row per grid step
    sources: dict[str, str | None] = field(default_factory=dict)  # signal group -> "topic (how)"


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
    types = {t: _norm_type(m) for t, m in (topic_types or {}).items()}
    tables = {name: read_table(t).to_pandas() for name, t in topics.items()}
    sources: dict[str, str | None] = {}
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    speed = _speed_samples(tables, types, opts)
    if speed is not None:
        sources["speed"], samples["speed_mps"] = speed[0], speed[1]
    imu_topic = opts.imu_topic or _pick(tables, types, IMU, ("linear_acceleration.x", "angular_velocity.z"))
    if imu_topic is not None:
        df = _require(tables, imu_topic, list(IMU_COLUMNS.values()))
        t = _times(df, opts.time_base, imu_topic)
        for signal, col in IMU_COLUMNS.items():
            samples[signal] = (t, df[col].to_numpy(float))
        sources["imu"] = imu_topic
    gps_topic = opts.gps_topic or _pick(tables, types, (NAV_SAT_FIX, GPS_FIX), ("latitude", "longitude"))
    if gps_topic is not None:
        df = _fixes(_require(tables, gps_topic, ["latitude", "longitude"]))
        t = _times(df, opts.time_base, gps_topic)
        samples["lat"], samples["lon"] = (
            (t, df["latitude"].to_numpy(float)),
            (t, df["longitude"].to_numpy(float)),
        )
        sources["gps"] = gps_topic

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


def frame_summaries(
    labels: Table | None, lanes: Table | None, frames: Table | None, opts: DriveTimelineOptions
) -> tuple[pd.DataFrame, str | None]:
    """One row per frame of the chosen camera (time `t`, object counts and flags, ego lanes, brightness)."""
    lab = read_table(labels).to_pandas() if labels is not None else None
    lan = _lanes_with_bottom_x(read_table(lanes)) if lanes is not None else None
    idx = read_table(frames).to_pandas() if frames is not None else None
    camera = opts.camera_topic or _pick_camera(lab, idx)
    cols = ["t", *TIMELINE_COLUMNS[TIMELINE_COLUMNS.index("frame_key") :]]
    cols.remove("frame_stamp_ns")
    if camera is None:
        return pd.DataFrame(columns=cols), None
    if idx is not None and len(idx):
        base = idx[idx["topic"] == camera].copy()
        stamp = base["stamp_ns"].to_numpy(np.int64)
        log = base["log_time_ns"].to_numpy(np.int64) if "log_time_ns" in base else stamp
        base["t"] = np.where((stamp > 0) & (opts.time_base == "header"), stamp, log)
    else:  # only frames that have labels or lanes are known
        parts = [d[d["topic"] == camera][["frame_key", "stamp_ns"]] for d in (lab, lan) if d is not None]
        base = (
            pd.concat(parts).drop_duplicates("frame_key")
            if parts
            else pd.DataFrame(columns=["frame_key", "stamp_ns"])
        )
        base["t"] = base["stamp_ns"].astype(np.int64)
    base = base.sort_values("t", kind="stable").drop_duplicates("t", keep="last").reset_index(drop=True)
    out = base[["t", "frame_key"]].copy()
    out = out.merge(_object_summary(lab, camera, opts), on="frame_key", how="left")
    if lab is not None:
        for col in ("persons", "vehicles"):
            out[col] = out[col].fillna(0)
        for col in ("person_in_ego_lane", "vehicle_in_ego_lane"):
            if "in_ego_lane" in lab:
                out[col] = out[col].fillna(False)
    out = out.merge(_lane_summary(lan, camera), on="frame_key", how="left")
    if lan is not None:
        out["ego_lanes"] = out["ego_lanes"].fillna(0)
    bright = opts.brightness_column
    if bright in base:
        out["brightness"] = base[bright].to_numpy(float)
    elif lab is not None and bright in lab:
        per = lab[lab["topic"] == camera].groupby("frame_key")[bright].first()
        out["brightness"] = out["frame_key"].map(per)
    else:
        out["brightness"] = np.nan
    return out[cols], camera


def _object_summary(lab: pd.DataFrame | None, camera: str, opts: DriveTimelineOptions) -> pd.DataFrame:
    names = [
        "frame_key",
        "persons",
        "vehicles",
        "person_in_ego_lane",
        "vehicle_in_ego_lane",
        "min_lateral_offset",
    ]
    if lab is None or not len(lab):
        return pd.DataFrame(columns=names)
    lab = lab[(lab["topic"] == camera) & (lab["confidence"] >= opts.min_confidence)]
    person = lab["class_name"].isin(opts.person_classes)
    vehicle = lab["class_name"].isin(opts.vehicle_classes)
    has_lane = "in_ego_lane" in lab
    in_lane = lab["in_ego_lane"].fillna(False).astype(bool) if has_lane else pd.Series(False, index=lab.index)
    offset = lab["lateral_offset"].abs() if "lateral_offset" in lab else pd.Series(np.nan, index=lab.index)
    parts = pd.DataFrame(
        {
            "frame_key": lab["frame_key"],
            "persons": person,
            "vehicles": vehicle,
            "person_in_ego_lane": person & in_lane,
            "vehicle_in_ego_lane": vehicle & in_lane,
            "min_lateral_offset": offset.where(person | vehicle),
        }
    )
    out = parts.groupby("frame_key", as_index=False).agg(
        persons=("persons", "sum"),
        vehicles=("vehicles", "sum"),
        person_in_ego_lane=("person_in_ego_lane", "any"),
        vehicle_in_ego_lane=("vehicle_in_ego_lane", "any"),
        min_lateral_offset=("min_lateral_offset", "min"),
    )
    if not has_lane:  # unknown, not "no": the labels were made without lane geometry
        out[["person_in_ego_lane", "vehicle_in_ego_lane"]] = None
    return out


def _lane_summary(lan: pd.DataFrame | None, camera: str) -> pd.DataFrame:
    """Per frame: how many ego lines (left/right) were found and where the ego sits between them.

    `ego_lane_offset` is (image centre - lane centre) / lane width at the image bottom: 0 centred, +0.5 on
    the right line. Crossing a line makes it jump by about one (+0.5 -> -0.5), which `lane_change` finds.
    """
    names = ["frame_key", "ego_lanes", "ego_lane_offset"]
    if lan is None or not len(lan):
        return pd.DataFrame(columns=names)
    lan = lan[(lan["topic"] == camera) & lan["side"].isin(["left", "right"])]
    best = lan.sort_values("score", ascending=False, kind="stable").drop_duplicates(["frame_key", "side"])
    wide = best.pivot(index="frame_key", columns="side", values="x_bottom")
    wide = wide.reindex(columns=["left", "right"])
    width = best.groupby("frame_key")["image_width"].first().reindex(wide.index).astype(float)
    xl, xr = wide["left"], wide["right"]
    offset = ((width / 2 - (xl + xr) / 2) / (xr - xl)).where(xr > xl)
    counts = best.groupby("frame_key").size().reindex(wide.index)
    return pd.DataFrame(
        {"frame_key": wide.index, "ego_lanes": counts.to_numpy(), "ego_lane_offset": offset.to_numpy()}
    )


def _lanes_with_bottom_x(lanes: pa.Table) -> pd.DataFrame:
    """Lane rows (without their polylines) plus `x_bottom`: x at the image bottom, extended along the
    polyline's two lowest points. Vectorised over Arrow's flat point arrays (a Python loop over the
    72,000 lanes of an hour took 3 s of the timeline's 5)."""
    points = (
        lanes.column("points").combine_chunks()
        if lanes.num_rows
        else pa.array([], pa.list_(pa.list_(pa.float64())))
    )
    per_point = pc.list_flatten(points)
    if len(per_point) and pc.min(pc.list_value_length(per_point)).as_py() != 2:
        raise TimelineError("lane points must be [x, y] pairs")
    lane = pc.list_parent_indices(points).to_numpy()
    xy = pc.list_flatten(per_point).to_numpy(zero_copy_only=False).astype(float).reshape(-1, 2)
    order = np.lexsort((xy[:, 1], lane))  # by lane, then by y (down the image)
    lane, x, y = lane[order], xy[order, 0], xy[order, 1]
    last = np.flatnonzero(np.r_[lane[1:] != lane[:-1], True]) if len(lane) else np.array([], int)
    prev = np.maximum(last - 1, 0)
    two = (last > 0) & (lane[prev] == lane[last]) & (y[prev] != y[last])
    slope = np.where(two, (x[last] - x[prev]) / np.where(two, y[last] - y[prev], 1.0), 0.0)
    height = lanes.column("image_height").to_numpy(zero_copy_only=False).astype(float)[lane[last]]
    bottom = np.full(lanes.num_rows, np.nan)
    bottom[lane[last]] = x[last] + slope * (height - y[last])
    out = lanes.drop_columns(["points"]).to_pandas()
    out["x_bottom"] = bottom
    return out


def _speed_samples(
    tables: dict[str, pd.DataFrame], types: dict[str, str], opts: DriveTimelineOptions
) -> tuple[str, tuple[np.ndarray, np.ndarray]] | None:
    """(source description, (t, speed m/s)) from the chosen or best speed topic."""
    if opts.speed_topic is not None:
        candidates = [opts.speed_topic]
        _require(tables, opts.speed_topic, [])
    else:
        ranked = []
        for topic, df in tables.items():
            kind = _speed_kind(df, types.get(topic))
            if kind is not None and "cmd" not in topic.lower():
                ranked.append((kind, -len(df), topic))
        candidates = [topic for _, _, topic in sorted(ranked)]
    if not candidates:
        return None
    topic = candidates[0]
    df = tables[topic]
    kind = _speed_kind(df, types.get(topic))
    if kind is None:
        raise TimelineError(
            f"speed topic {topic}: no velocity fields (want one of {SPEED_SOURCES}); has {list(df.columns)[:12]}"
        )
    name, cols = SPEED_SOURCES[kind]
    if name == "gps_positions":
        df = _fixes(df)
        t = _times(df, opts.time_base, topic)
        return f"{topic} (speed derived from positions)", gps_speed(
            t, df["latitude"].to_numpy(float), df["longitude"].to_numpy(float)
        )
    t = _times(df, opts.time_base, topic)
    v = np.hypot(*[df[c].to_numpy(float) for c in cols]) if len(cols) == 2 else df[cols[0]].to_numpy(float)
    return f"{topic} ({name})", (t, v)


def _speed_kind(df: pd.DataFrame, msgtype: str | None) -> int | None:
    """Index into SPEED_SOURCES for a table, by its type when known, else by its fields."""
    by_type = {ODOMETRY_LIKE[0]: 0, ODOMETRY_LIKE[1]: 0, TWIST_STAMPED: 1, GPS_FIX: 2, NAV_SAT_FIX: 3}
    if msgtype is not None:
        kind = by_type.get(msgtype)
        return kind if kind is not None and all(c in df for c in SPEED_SOURCES[kind][1]) else None
    return next((k for k, (_, cols) in enumerate(SPEED_SOURCES) if all(c in df for c in cols)), None)


def gps_speed(t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ground speed between consecutive fixes (haversine distance / time), placed at their midpoints."""
    if len(t) < 2:
        return np.array([], np.int64), np.array([])
    la, lo = np.radians(lat), np.radians(lon)
    a = np.sin(np.diff(la) / 2) ** 2 + np.cos(la[:-1]) * np.cos(la[1:]) * np.sin(np.diff(lo) / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
    dt = np.diff(t) / 1e9
    ok = dt > 0
    return (t[:-1] + np.diff(t) // 2)[ok], (dist[ok] / dt[ok])


def _pick(
    tables: dict[str, pd.DataFrame],
    types: dict[str, str],
    msgtypes: str | tuple[str, ...],
    cols: tuple[str, ...],
) -> str | None:
    """The busiest topic of one of `msgtypes` (or, for topics of unknown type, having `cols`)."""
    msgtypes = (msgtypes,) if isinstance(msgtypes, str) else msgtypes
    fits = [
        (len(df), topic)
        for topic, df in tables.items()
        if (types[topic] in msgtypes if topic in types else all(c in df for c in cols))
    ]
    return max(fits)[1] if fits else None


def _pick_camera(lab: pd.DataFrame | None, idx: pd.DataFrame | None) -> str | None:
    source = lab if lab is not None and len(lab) else idx
    if source is None or not len(source):
        return None
    counts = source["topic"].value_counts()
    front = sorted(t for t in counts.index if "front" in str(t).lower())
    return front[0] if front else str(counts.index[0])


def _require(tables: dict[str, pd.DataFrame], topic: str, cols: list[str]) -> pd.DataFrame:
    if topic not in tables:
        raise TimelineError(f"topic {topic} was chosen but has no table; tables: {sorted(tables)}")
    missing = [c for c in cols if c not in tables[topic]]
    if missing:
        raise TimelineError(
            f"topic {topic} lacks fields {missing}; it has {list(tables[topic].columns)[:12]}"
        )
    return tables[topic]


def _times(df: pd.DataFrame, base: str, topic: str) -> np.ndarray:
    """Sample times in ns: header stamps (log time where a stamp is 0) or log times."""
    log = df["log_time_ns"].to_numpy(np.int64) if "log_time_ns" in df else None
    hdr = df["header_stamp_ns"].to_numpy(np.int64) if "header_stamp_ns" in df else None
    if hdr is None and log is None:
        raise TimelineError(f"topic {topic} has neither log_time_ns nor header_stamp_ns")
    if base == "header" and hdr is not None:
        return np.where(hdr > 0, hdr, log) if log is not None else hdr
    return log if log is not None else hdr


def _fixes(df: pd.DataFrame) -> pd.DataFrame:
    """GPS rows with a fix (status >= 0 when the field exists) and finite coordinates."""
    ok = np.isfinite(df["latitude"].to_numpy(float)) & np.isfinite(df["longitude"].to_numpy(float))
    if "status.status" in df:
        ok &= df["status.status"].to_numpy() >= 0
    return df[ok]


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


def _norm_type(msgtype: str) -> str:
    return msgtype.replace("/msg/", "/")


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
