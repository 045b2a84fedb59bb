"""Catalog search at fleet scale: a synthetic catalog of N drives x M labels, searched with the real code.

``.venv/bin/python -m bench.search --drives 1000 --labels 10000`` builds (or reuses) the catalog, times
each query through `rosbag_assets.steps.search.search` (median of --repeat, connection included) and as a
user runs it, `rosbag-assets search` in a fresh process (`cli_median_s`: Python start, imports, query,
printing), then one incremental `upsert_drive` of a new drive into the full catalog, and prints the result
row as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rosbag_assets.io.tables import read_table
from rosbag_assets.steps.catalog.db import upsert_drive, writer
from rosbag_assets.steps.catalog.hits import rebuild_derived
from rosbag_assets.steps.catalog.schema import connect, evolve
from rosbag_assets.steps.search import search

EPOCH = 1_714_557_600 * 10**9
GRID_NS = 100_000_000
CLASSES = np.array(["person", "car", "truck", "bicycle", "bus", "traffic light"])
CLASS_P = [0.25, 0.45, 0.1, 0.05, 0.05, 0.1]
QUERIES: list[dict[str, Any]] = [
    {"where": "class_name = 'person' AND in_ego_lane AND speed_mps > 10"},
    {"where": "drive = 'drive_00500' AND confidence > 0.8"},
    {"where": "confidence > 0.5"},
    {"where": "class_name = 'bicycle' AND lateral_offset < 0.5 AND persons >= 3 AND brightness < 60"},
    {"scene": "person_in_ego_lane"},
    {"where": "class_name = 'person' AND confidence > 0.7", "scene": "ego_stopped"},
]


def drive_name(i: int) -> str:
    return f"drive_{i:05d}"


def synthetic_drive(i: int, labels: int, per_frame: int = 5) -> dict[str, pd.DataFrame]:
    """Frames (10 Hz), labels, timeline (100 ms) and scenes of one drive; random but seeded by `i`."""
    rng = np.random.default_rng(i)
    drive = drive_name(i)
    n_frames = max(1, labels // per_frame)
    start = EPOCH + i * 3600 * 10**9
    stamps = start + np.arange(n_frames, dtype=np.int64) * GRID_NS
    keys = np.char.add(np.char.add(f"frames/b0/camera/{drive}-", stamps.astype(str)), ".jpg")
    frames = pd.DataFrame(
        {
            "drive": drive,
            "bag": "b0",
            "topic": "/camera/front/image_raw",
            "stamp_ns": stamps,
            "log_time_ns": stamps + 15_000_000,
            "width": 1280,
            "height": 720,
            "format": "jpg",
            "frame_key": keys,
            "data_key": "frames/b0/camera/shard-00000.tar",
            "offset": np.arange(n_frames, dtype=np.int64) * 90_000,
            "bytes": 90_000,
            "path": f"s3://fleet/{drive}/extracted_frames/versions/v1/frames/b0/camera/shard-00000.tar",
        }
    )
    which = rng.integers(0, n_frames, labels)
    which.sort()
    x1 = rng.uniform(0, 1100, labels)
    y1 = rng.uniform(200, 600, labels)
    lab = pd.DataFrame(
        {
            "drive": drive,
            "bag": "b0",
            "topic": "/camera/front/image_raw",
            "stamp_ns": stamps[which],
            "frame_key": keys[which],
            "image_width": 1280,
            "image_height": 720,
            "class_name": rng.choice(CLASSES, labels, p=CLASS_P),
            "confidence": rng.uniform(0.25, 1.0, labels),
            "x1": x1,
            "y1": y1,
            "x2": x1 + rng.uniform(10, 180, labels),
            "y2": y1 + rng.uniform(10, 120, labels),
            "model": "yolo11n",
            "in_ego_lane": rng.random(labels) < 0.1,
            "lateral_offset": rng.exponential(2.0, labels),
            "drivable_fraction": rng.random(labels),
        }
    )
    lab.insert(7, "class_id", pd.Categorical(lab["class_name"], categories=CLASSES).codes.astype(np.int64))
    speed = np.clip(10 + np.cumsum(rng.normal(0, 0.3, n_frames)), 0, 30)
    timeline = pd.DataFrame(
        {
            "drive": drive,
            "t_ns": stamps,
            "t_s": (stamps - start) / 1e9,
            "speed_mps": speed,
            "accel_x": np.gradient(speed) * 10,
            "accel_y": rng.normal(0, 0.3, n_frames),
            "accel_z": 9.81 + rng.normal(0, 0.1, n_frames),
            "yaw_rate": rng.normal(0, 0.05, n_frames),
            "lat": 48.0 + np.cumsum(speed) * 1e-6,
            "lon": 11.0,
            "camera_topic": "/camera/front/image_raw",
            "frame_key": keys,
            "frame_stamp_ns": stamps,
            "persons": rng.poisson(1.2, n_frames),
            "vehicles": rng.poisson(2.5, n_frames),
            "person_in_ego_lane": rng.random(n_frames) < 0.05,
            "vehicle_in_ego_lane": rng.random(n_frames) < 0.3,
            "min_lateral_offset": rng.exponential(2.0, n_frames),
            "ego_lanes": rng.integers(0, 3, n_frames),
            "ego_lane_offset": rng.normal(0, 0.1, n_frames),
            "brightness": rng.uniform(20, 200, n_frames),
        }
    )
    scenes = []
    for rule in ("person_in_ego_lane", "ego_stopped", "hard_braking", "vehicle_in_ego_lane_ahead"):
        for a in rng.integers(0, max(1, n_frames - 30), 3):
            b = a + int(rng.integers(5, 30))
            scenes.append(
                {
                    "drive": drive,
                    "scene_id": f"{drive}:{rule}:{stamps[a]}",
                    "rule": rule,
                    "start_ns": int(stamps[a]),
                    "end_ns": int(stamps[min(b, n_frames - 1)]),
                    "duration_s": (b - a) / 10,
                    "frame_keys": list(keys[a:b]),
                }
            )
    return {"frames": frames, "labels": lab, "timeline": timeline, "scenes": pd.DataFrame(scenes)}


def build_catalog(db: Path, drives: int, labels: int, chunk: int = 50) -> float:
    """Bulk-load `drives` synthetic drives (chunks of `chunk`), then derive `hits` per drive; seconds taken.

    Only for the benchmark: a real catalog grows by `upsert_drive`, one drive per transaction.
    """
    t0 = time.perf_counter()
    with writer(db) as (con, _):
        for first in range(0, drives, chunk):
            parts = [synthetic_drive(i, labels) for i in range(first, min(drives, first + chunk))]
            for name in ("frames", "labels", "timeline", "scenes"):
                data = read_table(pd.concat([p[name] for p in parts], ignore_index=True))
                con.register("_bulk", data)
                evolve(con, name, "*", "SELECT * FROM _bulk")
                con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _bulk')
                con.unregister("_bulk")
        for i in range(drives):  # one drive at a time, as upsert_drive does
            rebuild_derived(con, drive_name(i))
        con.execute(
            "CREATE TABLE IF NOT EXISTS drives AS SELECT drive, now() AS updated_at, count(*) AS labels_rows "
            "FROM labels GROUP BY drive"
        )
    return time.perf_counter() - t0


def cli_wall(db: Path, query: dict[str, Any]) -> float:
    """Seconds `rosbag-assets search` takes in a fresh Python process, printing its hits."""
    argv = [sys.executable, "-m", "rosbag_assets.cli", "search", "--db", str(db)]
    argv += [query["where"]] if query.get("where") else []
    argv += ["--scene", query["scene"]] if query.get("scene") else []
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t0


def bench_search(db: Path, drives: int, labels: int, repeat: int) -> dict[str, Any]:
    built_s = None
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        built_s = build_catalog(db, drives, labels)
    con = connect(db, read_only=True)
    (n_labels,) = con.execute("SELECT count(*) FROM hits").fetchall()[0]
    (n_drives,) = con.execute("SELECT count(DISTINCT drive) FROM labels").fetchall()[0]
    con.close()
    results = []
    for q in QUERIES:
        walls, query_s = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = search(db, q.get("where"), scene=q.get("scene"), limit=50)
            walls.append(time.perf_counter() - t0)
            query_s.append(res.seconds)
        results.append(
            {
                **q,
                "matches": res.total,
                "rows_shown": len(res.records),
                "median_s": round(statistics.median(walls), 4),
                "query_only_median_s": round(statistics.median(query_s), 4),
                "first_s": round(walls[0], 4),
                "cli_median_s": round(statistics.median(cli_wall(db, q) for _ in range(repeat)), 4),
            }
        )
    new = synthetic_drive(drives + 7, labels)
    name = drive_name(drives + 7)
    report = upsert_drive(db, name, new)
    report_again = upsert_drive(db, name, new)  # replacing a drive that is already there
    return {
        "drives": n_drives,
        "labels": n_labels,
        "db_bytes": db.stat().st_size,
        "build_s": None if built_s is None else round(built_s, 1),
        "queries": results,
        "upsert_new_drive_s": round(report.seconds, 3),
        "upsert_replace_drive_s": round(report_again.seconds, 3),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drives", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=10_000, help="labels per drive")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", type=Path, help="catalog to build or reuse (default: under --work)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rosbag_bench_search"))
    args = parser.parse_args()
    db = args.db or args.work / f"catalog-{args.drives}x{args.labels}.duckdb"
    print(json.dumps(bench_search(db, args.drives, args.labels, args.repeat), indent=2))


if __name__ == "__main__":
    main()
