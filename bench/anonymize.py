"""Anonymisation: `anonymized_frames` on the bench bag's frames vs the limits measured on the same frames.

``python -m bench.anonymize [--frames 24] [--repeat 3]``. A bag is written by `bench.genbag` (real BDD100K
frames: bgr8 1920x1080 and 1280x720, JPEG 1280x720), extracted by `extracted_frames` and labelled by
`object_labels` with the shipped YOLO11n int8 model (set-up, not timed). Then, alternating, median of repeats:

- ``limit``: read each frame's bytes from the shards, decode, re-encode as JPEG q95, on a thread pool over
  all cores: what re-writing these frames costs with no detection at all (the ceiling).
- ``models``: the same frames through the anonymizer's own detectors and blur in a bare loop (decode,
  `AnonymizeSequence.push` with the frame's vehicle boxes, encode): what the models cost.
- ``ours``: `run_anonymized_frames` on the same frames (shards, index, regions, preview, commit).
  ``ours_fps`` is its own frames/s over the frame loop; ``ours_wall_fps`` includes model load and publication.

The ratios are what matter on a shared machine: ``ours_vs_models`` is the step's overhead over its models,
``ours_vs_limit`` how far detection puts it from plain re-encoding.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DRIVE = "bench_anon"
MODEL = ROOT / "rosbag_assets" / "vision" / "models" / "yolo11n_int8.tflite"
JPEG_QUALITY = 95  # anonymized_frames' default


def prepare(work: Path, n_frames: int) -> tuple[Any, list[dict[str, Any]], dict[str, list]]:
    """An output root with the bag's committed frames and labels; the first `n_frames` frames the step will
    anonymize (same choice as the step) and their vehicle boxes."""
    from bench.genbag import load_frames, write_bag
    from rosbag_assets.io import frames, publish
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.anonymized_frames import choose_frames, vehicle_boxes_by_frame
    from rosbag_assets.steps.extracted_frames import run_extracted_frames
    from rosbag_assets.steps.object_labels import run_object_labels
    from rosbag_assets.steps.raw_bags import run_raw_bags
    from rosbag_assets.vision.anonymize import VEHICLE_CLASSES

    shutil.rmtree(work, ignore_errors=True)
    landing = work / "landing" / DRIVE
    landing.mkdir(parents=True)
    big, small, jpeg = load_frames()[0]
    ticks = math.ceil(n_frames / 3) + 1
    write_bag(landing / "cams.bag", "ros1", ticks * (big.nbytes + small.nbytes + jpeg.nbytes))
    out = LocalStorage(work / "out")
    run_raw_bags(drive=DRIVE, source=LocalStorage(landing), output=out)
    run_extracted_frames(drive=DRIVE, source=LocalStorage(landing), output=out)
    run_object_labels(drive=DRIVE, output=out, options={"weights": str(MODEL)})
    version, index = frames.committed_frames(out, DRIVE)
    chosen = choose_frames(index, None, n_frames).to_dict("records")
    labels, _ = publish.require_current(out, f"{DRIVE}/object_labels")
    vehicles = vehicle_boxes_by_frame(labels.read_parquet("labels.parquet"), sorted(VEHICLE_CLASSES))
    return (out, version), chosen, vehicles


def _read(store: tuple[Any, Any], row: dict[str, Any]) -> bytes:
    from rosbag_assets.io import frames

    out, version = store
    return frames.read_frame_bytes(out, version, row)


def run_limit(store: tuple[Any, Any], rows: list[dict[str, Any]]) -> float:
    """Seconds to read, decode and re-encode every frame on all cores."""

    def one(row: dict[str, Any]) -> int:
        img = cv2.imdecode(np.frombuffer(_read(store, row), np.uint8), cv2.IMREAD_COLOR)
        return len(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, rows))
    return time.perf_counter() - t0


def run_models(store: tuple[Any, Any], rows: list[dict[str, Any]], vehicles: dict[str, list]) -> float:
    """Seconds for the anonymizer's detectors and blur on every frame, in a bare loop (models loaded first)."""
    from rosbag_assets.vision.anonymize import Anonymizer

    anonymizer = Anonymizer()
    sequences: dict[tuple[str, str], Any] = {}
    t0 = time.perf_counter()
    for row in rows:
        img = cv2.imdecode(np.frombuffer(_read(store, row), np.uint8), cv2.IMREAD_COLOR)
        seq = sequences.setdefault((row["bag"], row["topic"]), anonymizer.sequence())
        out, _ = seq.push(img, vehicles.get(row["frame_key"], ()))
        cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return time.perf_counter() - t0


def run_ours(store: tuple[Any, Any], n_frames: int) -> tuple[float, float, int]:
    """(wall seconds, the step's own frames/s over its frame loop, regions found) of `run_anonymized_frames`."""
    from rosbag_assets.steps.anonymized_frames import run_anonymized_frames

    out, _ = store
    t0 = time.perf_counter()
    res = run_anonymized_frames(drive=DRIVE, output=out, options={"max_frames": n_frames})
    wall = time.perf_counter() - t0
    return wall, float(res.metadata["frames_per_s"]["raw_value"]), int(res.metadata["regions"]["raw_value"])


def bench_anonymize(work: Path, n_frames: int = 24, repeats: int = 3) -> dict[str, Any]:
    """frames/s of limit / models / ours on the same frames (median of `repeats`, alternating order)."""
    store, rows, vehicles = prepare(work / "anon", n_frames)
    n = len(rows)
    times: dict[str, list[float]] = {"limit": [], "models": [], "ours_wall": [], "ours_loop": []}
    regions = 0
    run_models(store, rows[:2], vehicles)  # warm-up: model load, first-run allocations
    try:
        for r in range(repeats):
            order = ["limit", "models", "ours"] if r % 2 == 0 else ["ours", "models", "limit"]
            for side in order:
                if side == "limit":
                    times["limit"].append(run_limit(store, rows))
                elif side == "models":
                    times["models"].append(run_models(store, rows, vehicles))
                else:
                    wall, fps, regions = run_ours(store, n)
                    times["ours_wall"].append(wall)
                    times["ours_loop"].append(n / fps)
    finally:
        shutil.rmtree(work / "anon", ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    sizes = sorted({f"{row['width']}x{row['height']}" for row in rows})
    return {
        "frames": n,
        "sizes": ",".join(sizes),
        "vehicle_frames": sum(1 for row in rows if vehicles.get(row["frame_key"])),
        "regions": regions,
        "limit_fps": round(n / med["limit"], 2),
        "models_fps": round(n / med["models"], 2),
        "ours_fps": round(n / med["ours_loop"], 2),
        "ours_wall_fps": round(n / med["ours_wall"], 2),
        "ours_vs_models": round(med["models"] / med["ours_loop"], 3),
        "ours_vs_limit": round(med["limit"] / med["ours_loop"], 4),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/rosbag_bench")
    args = parser.parse_args(argv)
    result = bench_anonymize(Path(args.workdir), args.frames, args.repeat)
    for key, value in result.items():
        print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
