"""Drive timeline: how to align signals on the grid (numpy vs pandas merge_asof vs DuckDB ASOF JOIN).

``.venv/bin/python -m bench.timeline --hours 1`` interpolates a jittered 100 Hz IMU signal onto a 100 ms
grid three ways (checking they agree), times `build_timeline` on a synthetic drive of that length
(100 Hz IMU, 50 Hz odometry, 5 Hz GPS, 10 Hz camera with 5 labels and 2 lanes per frame), and prints
the result row as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from rosbag_assets.steps.drive_timeline import SignalRule, align, build_timeline

GRID_NS = 100_000_000
MAX_GAP_NS = 250_000_000


def signal(seconds: float, hz: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample times with +-10 % jitter around `hz`, and values."""
    n = int(seconds * hz)
    period = 1e9 / hz
    t = np.cumsum(rng.uniform(0.9 * period, 1.1 * period, n)).astype(np.int64)
    return t, rng.normal(size=n)


def with_numpy(t: np.ndarray, v: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return align(t, v, grid, SignalRule(method="interpolate", max_gap_ms=MAX_GAP_NS / 1e6))


def with_pandas(t: np.ndarray, v: np.ndarray, grid: np.ndarray) -> np.ndarray:
    g = pd.DataFrame({"t": grid})
    src = pd.DataFrame({"ts": t, "v": v})
    b = pd.merge_asof(g, src, left_on="t", right_on="ts", direction="backward")
    f = pd.merge_asof(g, src, left_on="t", right_on="ts", direction="forward")
    span = (f["ts"] - b["ts"]).to_numpy(float)
    w = np.where(span > 0, (grid - b["ts"].to_numpy(float)) / np.where(span > 0, span, 1), 0.0)
    out = b["v"].to_numpy() + w * (f["v"].to_numpy() - b["v"].to_numpy())
    return np.where(span <= MAX_GAP_NS, out, np.nan)


def with_duckdb(t: np.ndarray, v: np.ndarray, grid: np.ndarray) -> np.ndarray:
    con = duckdb.connect()
    con.register("g", pd.DataFrame({"t": grid}))
    con.register("src", pd.DataFrame({"t": t, "v": v}))
    sql = """
        SELECT CASE WHEN f.t - b.t <= $gap THEN
               CASE WHEN f.t = b.t THEN b.v ELSE b.v + (g.t - b.t) * (f.v - b.v) / (f.t - b.t) END END AS v
        FROM g ASOF LEFT JOIN src b ON g.t >= b.t ASOF LEFT JOIN src f ON g.t <= f.t ORDER BY g.t"""
    return con.execute(sql, {"gap": MAX_GAP_NS}).df()["v"].to_numpy(float)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def drive_tables(seconds: float, rng: np.random.Generator) -> dict[str, Any]:
    def table(hz: float, **cols: Any) -> pd.DataFrame:
        t, _ = signal(seconds, hz, rng)
        return pd.DataFrame(
            {"log_time_ns": t + 1_000_000, "header_stamp_ns": t, **{k: rng.normal(size=len(t)) for k in cols}}
        )

    imu_cols = [
        "linear_acceleration.x",
        "linear_acceleration.y",
        "linear_acceleration.z",
        "angular_velocity.z",
    ]
    topics = {
        "/imu": table(100, **dict.fromkeys(imu_cols)),
        "/odom": table(50, **dict.fromkeys(["twist.twist.linear.x", "twist.twist.linear.y"])),
        "/fix": table(5, latitude=None, longitude=None),
    }
    n = int(seconds * 10)
    stamps = np.arange(n, dtype=np.int64) * GRID_NS + 3_000_000
    keys = np.char.add("f", stamps.astype(str))
    frames = pd.DataFrame({"topic": "/cam", "stamp_ns": stamps, "log_time_ns": stamps, "frame_key": keys})
    which = np.repeat(np.arange(n), 5)
    labels = pd.DataFrame(
        {
            "topic": "/cam",
            "stamp_ns": stamps[which],
            "frame_key": keys[which],
            "class_name": rng.choice(["person", "car", "truck"], len(which)),
            "confidence": rng.random(len(which)),
            "in_ego_lane": rng.random(len(which)) < 0.1,
            "lateral_offset": rng.exponential(2, len(which)),
        }
    )
    sides = np.tile(["left", "right"], n)
    lanes = pd.DataFrame(
        {
            "topic": "/cam",
            "stamp_ns": np.repeat(stamps, 2),
            "frame_key": np.repeat(keys, 2),
            "side": sides,
            "score": 0.9,
            "image_width": 1280,
            "image_height": 720,
            "points": [
                [[440.0, 720.0], [600.0, 420.0]] if s == "left" else [[840.0, 720.0], [680.0, 420.0]]
                for s in sides
            ],
        }
    )
    return {"topics": topics, "frames": frames, "labels": labels, "lanes": lanes}


def bench_timeline(hours: float, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    t, v = signal(hours * 3600, 100, rng)
    grid = np.arange(t[0] // GRID_NS * GRID_NS, t[-1] + 1, GRID_NS, dtype=np.int64)
    align_s, outs = {}, {}
    for name, fn in (
        ("numpy", with_numpy),
        ("pandas_merge_asof", with_pandas),
        ("duckdb_asof_join", with_duckdb),
    ):
        align_s[name], outs[name] = timed(lambda fn=fn: fn(t, v, grid), repeat)
    for name, out in outs.items():
        np.testing.assert_allclose(out, outs["numpy"], rtol=1e-9, atol=1e-12, err_msg=name)
    d = drive_tables(hours * 3600, rng)
    build_s, result = timed(
        lambda: build_timeline(
            "bench", d["topics"], labels=d["labels"], lanes=d["lanes"], frames=d["frames"]
        ),
        repeat,
    )
    return {
        "imu_samples": len(t),
        "grid_steps": len(grid),
        "align_median_s": {k: round(s, 4) for k, s in align_s.items()},
        "build_timeline_median_s": round(build_s, 3),
        "timeline_rows": len(result.table),
        "labels": len(d["labels"]),
        "sources": result.sources,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(bench_timeline(args.hours, args.repeat), indent=2))


if __name__ == "__main__":
    main()
