"""Orchestration: per-partition overhead of materializing ``raw_bags`` locally versus calling the job directly.

Two yardsticks: ``dg.materialize`` inside this process (what tests do), and the `dagster asset materialize`
command (what a run worker does under ``dagster dev``: a fresh process that loads the code location, runs the
steps with the code location's executor, each step a Pipes subprocess), for one step (raw_bags) and two
(raw_bags + extracted_frames). Wall time and CPU time (this process's children) are reported: CPU seconds are
what a busy machine cannot hide.

``.venv/bin/python -m bench.overhead [--repeats 3] [--cli-only]`` prints the result row as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
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


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the command and everything it waited for)."""
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, cpu


def bench_cli(work: Path, repeats: int = 1) -> dict[str, Any]:
    """`dagster asset materialize` of one step and of two, against the step functions run in one process.

    ``cli_per_step_s`` = (two steps - one step) - the direct time of the second step: what one more step costs
    in orchestration; ``cli_run_s`` = one step - its direct time: the fixed cost of a run.
    """
    landing, out, home = work / "landing", work / "out", work / "home"
    make_tiny_drive(landing / DRIVE)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ROSBAG_ASSETS_LANDING_ROOT": str(landing),
        "ROSBAG_ASSETS_OUTPUT_ROOT": str(out),
        "PYTHONWARNINGS": "ignore",
    }
    add = "import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('drives', ['tiny'])"
    subprocess.run([sys.executable, "-c", add], env=env, check=True)
    step = (
        "import sys, time, json; from rosbag_assets.steps.entrypoint import run_step; t = time.perf_counter(); "
        f"run_step(dict(step=sys.argv[1], drive='{DRIVE}', source='{landing / DRIVE}', output='{out}')); "
        "print(time.perf_counter() - t)"
    )
    dagster = str(Path(sys.executable).with_name("dagster"))
    row: dict[str, Any] = {"repeats": repeats}
    samples: dict[str, list[tuple[float, float]]] = {"direct_raw_bags": [], "direct_extracted_frames": []}
    for selection in ("raw_bags", "raw_bags,extracted_frames"):
        samples[selection] = []
    for _ in range(repeats):
        for name in ("raw_bags", "extracted_frames"):
            done = subprocess.run([sys.executable, "-c", step, name], env=env, capture_output=True, text=True)
            samples[f"direct_{name}"].append((float(done.stdout.strip().splitlines()[-1]), 0.0))
        for selection in ("raw_bags", "raw_bags,extracted_frames"):
            cmd = [dagster, "asset", "materialize", "-m", "rosbag_assets.defs.definitions"]
            samples[selection].append(_timed([*cmd, "--select", selection, "--partition", DRIVE], env))
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in samples.items()
    }
    row["cli_1_step_wall_s"], row["cli_1_step_cpu_s"] = med["raw_bags"]
    row["cli_2_steps_wall_s"], row["cli_2_steps_cpu_s"] = med["raw_bags,extracted_frames"]
    row["direct_raw_bags_s"], row["direct_extracted_frames_s"] = (
        med["direct_raw_bags"][0],
        med["direct_extracted_frames"][0],
    )
    row["cli_run_s"] = row["cli_1_step_wall_s"] - row["direct_raw_bags_s"]
    row["cli_per_step_s"] = (
        row["cli_2_steps_wall_s"] - row["cli_1_step_wall_s"] - row["direct_extracted_frames_s"]
    )
    row["cli_per_step_cpu_s"] = row["cli_2_steps_cpu_s"] - row["cli_1_step_cpu_s"]
    row = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}
    shutil.rmtree(work, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli-only", action="store_true", help="only the `dagster asset materialize` rows")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rosbag_bench_orch/overhead"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    row = {} if args.cli_only else bench_overhead(args.work, args.repeats)
    row.update(bench_cli(args.work / "cli", max(1, args.repeats // 2)))
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
