"""Per-source signal extraction for `drive_timeline`: which topic feeds speed, IMU and GPS, and their samples.

Sources are chosen by ROS message type when `raw_bags`' topics.parquet gives it, otherwise by the fields a
table has. Each source yields raw (time ns, value) samples; putting them on the grid is `grid`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rosbag_assets.steps.drive_timeline.options import (
    EARTH_RADIUS_M,
    GPS_FIX,
    IMU,
    IMU_COLUMNS,
    NAV_SAT_FIX,
    ODOMETRY_LIKE,
    SPEED_SOURCES,
    TWIST_STAMPED,
    DriveTimelineOptions,
    TimelineError,
)


def signal_samples(
    tables: dict[str, pd.DataFrame], topic_types: Mapping[str, str] | None, opts: DriveTimelineOptions
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str | None]]:
    """(signal -> (t ns, values), signal group -> "topic (how)") for speed, IMU and GPS."""
    types = {t: _norm_type(m) for t, m in (topic_types or {}).items()}
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
    return samples, sources


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


def _norm_type(msgtype: str) -> str:
    return msgtype.replace("/msg/", "/")
