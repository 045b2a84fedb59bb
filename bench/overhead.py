"""Orchestration: per-partition overhead of materializing ``raw_bags`` locally versus calling the job directly.

Two yardsticks: ``dg.materialize`` inside this process (what tests do), and the Dagster CLI (what a run worker
does under ``dagster dev``: a fresh process that loads the code location and runs the steps, each a Pipes
subprocess), for one step (raw_bags) and two (raw_bags + extracted_frames), both with the code location's
executor (`dagster asset materialize`, steps in the run's process) and as the ``process_drive`` job (steps
forked from a preloaded fork server). Wall and CPU seconds (every process started, counted as a subreaper)
and each step's time in the run from its event log are reported: CPU seconds are what a busy machine cannot
hide, and the in-run step time minus the same step run by hand is the per-step overhead.

``.venv/bin/python -m bench.overhead [--repeats 3] [--cli-only]`` prints the result row as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
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


def _adopt_orphans() -> bool:
    """Become the subreaper of what we start (Linux): Dagster's fork server outlives the run process without
    being waited for, so its CPU (and its steps') would be missing from RUSAGE_CHILDREN otherwise."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _children() -> set[int]:
    """This process's child processes, zombies included (from /proc on Linux; empty elsewhere)."""
    me, pids = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                pids.add(int(stat.parent.name))
    return pids


def _reap_orphans(before: set[int], deadline_s: float = 30.0) -> None:
    """Wait for the orphans the last command left us (not for children we had before it)."""
    end = time.monotonic() + deadline_s
    for pid in _children() - before:
        while time.monotonic() < end:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.05)


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the command and every process it started, orphans included)."""
    before = _children()
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    _reap_orphans(before)
    cpu = _children_cpu_s() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, cpu


def _step_seconds(home: Path) -> dict[str, float]:
    """Per step of the newest run in `home`: seconds from the executor starting it (its worker process, or
    the step itself in-process) to its success, from the run's own event log."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        run = instance.get_runs(limit=1)[0]
        begun: dict[str, float] = {}
        out: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None or not event.step_key:
                continue
            kind = event.event_type_value
            if kind in ("STEP_WORKER_STARTING", "STEP_START"):
                begun.setdefault(event.step_key, entry.timestamp)
            elif kind == "STEP_SUCCESS":
                out[event.step_key] = entry.timestamp - begun[event.step_key]
    return out


# How a run executes its steps: `dagster asset materialize` uses the code location's executor (in the run's
# process: what the UI's Materialize does); `process_drive` (what the discovery sensor and backfills run)
# forks each step from a preloaded fork server.
VARIANTS = ("materialize", "process_drive")
SELECTIONS = (("raw_bags",), ("raw_bags", "extracted_frames"))


def _command(dagster: str, variant: str, steps: tuple[str, ...]) -> list[str]:
    module = ["-m", "rosbag_assets.defs.definitions"]
    if variant == "materialize":
        return [dagster, "asset", "materialize", *module, "--select", ",".join(steps), "--partition", DRIVE]
    tags = json.dumps({"dagster/partition": DRIVE})
    return [dagster, "job", "execute", *module, "-j", "process_drive", "-o", ",".join(steps), "--tags", tags]


def bench_cli(work: Path, repeats: int = 1) -> dict[str, Any]:
    """Runs of one step and of two through the Dagster CLI, each way a run executes its steps.

    For each variant: wall and CPU seconds of the whole command (``*_1_step_*``, ``*_2_steps_*``); the fixed
    cost of a run (``*_run_s``: one-step wall minus that step run by hand); and per step, from the run's event
    log, its time in the run (from the executor starting it to its success) minus the same step run by hand
    (``run_step`` in a warm process: stricter than a by-hand command, which also starts an interpreter).
    ``*_step_overhead_s`` is the median over every step but the first of a run: the number the <= 2 s
    target is about; ``*_first_step_overhead_s`` also carries what a run pays once when it starts its first
    step (``process_drive``: starting the fork server). ``*_extra_step_*`` is the older yardstick, two-step
    minus one-step run minus the second step's own time: the same quantity as a difference of two whole runs,
    so it carries their noise; its CPU seconds include the step's own work.
    """
    landing, out = work / "landing", work / "out"
    make_tiny_drive(landing / DRIVE)
    subreaper = _adopt_orphans()
    dagster = str(Path(sys.executable).with_name("dagster"))
    step = (
        "import sys, time, json; from rosbag_assets.steps.entrypoint import run_step; t = time.perf_counter(); "
        f"run_step(dict(step=sys.argv[1], drive='{DRIVE}', source='{landing / DRIVE}', output='{out}')); "
        "print(time.perf_counter() - t)"
    )
    row: dict[str, Any] = {"repeats": repeats, "load_avg_1min": os.getloadavg()[0], "cpu_counted": subreaper}
    direct: dict[str, list[float]] = {"raw_bags": [], "extracted_frames": []}
    for variant in VARIANTS:
        home = work / f"home_{variant}"
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
        runs: dict[tuple[str, ...], list[tuple[float, float]]] = {sel: [] for sel in SELECTIONS}
        first: list[float] = []  # the first step of each run (a fork server starts with it)
        later: list[float] = []  # every other step
        for _ in range(repeats):
            for name in direct:
                done = subprocess.run(
                    [sys.executable, "-c", step, name], env=env, capture_output=True, text=True, check=True
                )
                direct[name].append(float(done.stdout.strip().splitlines()[-1]))
            for sel in SELECTIONS:
                runs[sel].append(_timed(_command(dagster, variant, sel), env))
                in_run = _step_seconds(home)
                first.append(in_run[sel[0]] - statistics.median(direct[sel[0]]))
                later.extend(in_run[name] - statistics.median(direct[name]) for name in sel[1:])
        med = {
            sel: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for sel, v in runs.items()
        }
        (w1, c1), (w2, c2) = med[SELECTIONS[0]], med[SELECTIONS[1]]
        row[f"{variant}_1_step_wall_s"], row[f"{variant}_1_step_cpu_s"] = w1, c1
        row[f"{variant}_2_steps_wall_s"], row[f"{variant}_2_steps_cpu_s"] = w2, c2
        row[f"{variant}_run_s"] = w1 - statistics.median(direct["raw_bags"])
        row[f"{variant}_first_step_overhead_s"] = statistics.median(first)
        row[f"{variant}_step_overhead_s"] = statistics.median(later)
        row[f"{variant}_step_overhead_max_s"] = max(later)
        row[f"{variant}_extra_step_wall_s"] = w2 - w1 - statistics.median(direct["extracted_frames"])
        row[f"{variant}_extra_step_cpu_s"] = c2 - c1
    row["direct_raw_bags_s"] = statistics.median(direct["raw_bags"])
    row["direct_extracted_frames_s"] = statistics.median(direct["extracted_frames"])
    row["load_avg_1min_end"] = os.getloadavg()[0]
    row = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}
    shutil.rmtree(work, ignore_errors=True)
    return row


def bench_code_location(repeats: int = 5) -> dict[str, Any]:
    """CPU-s of loading the code location (every run process does) against bare ``import dagster`` (its
    floor), alternating, medians of `repeats` fresh interpreters each: the ratio is what our modules add."""
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"}
    commands = {
        "import_dagster": [sys.executable, "-c", "import dagster"],
        "code_location": [
            sys.executable, "-c",
            "import rosbag_assets.defs.definitions as d; d.defs.get_repository_def()",
        ],
    }  # fmt: skip
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            cpu[name].append(_timed(cmd, env)[1])
    dagster, ours = statistics.median(cpu["import_dagster"]), statistics.median(cpu["code_location"])
    return {
        "import_dagster_cpu_s": round(dagster, 2),
        "code_location_cpu_s": round(ours, 2),
        "code_location_vs_import_dagster": round(ours / dagster, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli-only", action="store_true", help="only the `dagster asset materialize` rows")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rosbag_bench_orch/overhead"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    row = {} if args.cli_only else bench_overhead(args.work, args.repeats)
    row.update(bench_cli(args.work / "cli", max(1, args.repeats // 2)))
    row.update(bench_code_location())
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
