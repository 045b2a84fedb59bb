"""Orchestration: per-partition overhead of materializing ``raw_bags`` locally versus calling the job directly.

``.venv/bin/python -m bench.overhead [--repeats 3]`` prints the result row as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DRIVE = "tiny"
MODES = ("in_process", "subprocess")


def make_tiny_drive(drive_dir: Path) -> Path:
    """One small ROS1 bag (1 s at 10 Hz, 64x64 frames, 4 topics) in `drive_dir`; returns its path."""
    from rosbag_assets.demo.sample_drive import write_sample_drive

    shutil.rmtree(drive_dir, ignore_errors=True)
    ros1, ros2 = write_sample_drive(drive_dir, seconds=1.0, hz=10.0, width=64, height=64)
    shutil.rmtree(ros2)
    return ros1


def _median_s(fn: Callable[[], Any], reset: Callable[[], None], repeats: int) -> tuple[float, float]:
    """(first call, median of `repeats` further calls) in seconds; `reset` runs untimed before each call."""
    times = []
    for _ in range(repeats + 1):
        reset()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:])


def _materializer(
    mode: str, storage: Any, reset: Callable[[], None]
) -> tuple[Callable[[], None], Callable[[], None]]:
    """(materialize ``raw_bags`` for DRIVE in `mode`, reset: clear outputs + fresh instance with the partition)."""
    import dagster as dg

    from rosbag_assets.compute import ComputeTargets, LocalCompute
    from rosbag_assets.defs.drives import raw_bags
    from rosbag_assets.defs.partitions import drives

    resources = {"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode=mode))}
    instance: list[dg.DagsterInstance] = []

    def reset_all() -> None:
        reset()
        fresh = dg.DagsterInstance.ephemeral()
        fresh.add_dynamic_partitions(drives.name, [DRIVE])
        instance[:] = [fresh]

    def run() -> None:
        result = dg.materialize(
            [raw_bags], partition_key=DRIVE, instance=instance[0], resources=resources, raise_on_error=True
        )
        assert result.success

    return run, reset_all


def bench_overhead(work: Path, repeats: int = 3) -> dict[str, Any]:
    """Median seconds of the plain inventory job and of ``dagster.materialize([raw_bags])`` in both local modes.

    Each variant's first call (imports, cold caches) is left out of the median and reported as ``*_first_s``.
    """
    from rosbag_assets.defs.resources import DriveStorage
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.raw_bags import run_raw_bags

    landing, out = work / "landing", work / "out"
    bag = make_tiny_drive(landing / DRIVE)

    def reset() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)

    def direct() -> None:
        run_raw_bags(drive=DRIVE, source=LocalStorage(landing / DRIVE), output=LocalStorage(out))

    row: dict[str, Any] = {"bag_kb": bag.stat().st_size / 1024, "repeats": repeats}
    row["direct_first_s"], row["direct_s"] = _median_s(direct, reset, repeats)

    storage = DriveStorage(landing_root=str(landing), output_root=str(out))
    for mode in MODES:
        row[f"{mode}_first_s"], row[f"{mode}_s"] = _median_s(*_materializer(mode, storage, reset), repeats)
        row[f"{mode}_overhead_s"] = row[f"{mode}_s"] - row["direct_s"]
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rosbag_bench_orch/overhead"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(bench_overhead(args.work, args.repeats), indent=2))


if __name__ == "__main__":
    main()
