"""One command for all benchmarks: ``.venv/bin/python -m bench.run [--quick] [--sizes 1,4]``.

Every workload runs in a child process (wall time + peak RSS from ``os.wait4``); baseline, limit and ours run
on the same bag in the same invocation and are reported as ratios, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TMPFS = Path("/dev/shm")  # output in memory: pass-through speed without the disk's write limit
PY = sys.executable


def child(kind: str, **args: Any) -> dict[str, Any]:
    """Run `bench.child <kind>` and return its result plus ``rss_mb`` (peak RSS of that process).

    Dirty pages left by the previous step (a freshly generated bag, the last workload's outputs) are flushed
    first, so no workload pays for another one's disk writeback.
    """
    os.sync()
    proc = subprocess.Popen(
        [PY, "-m", "bench.child", kind, json.dumps(args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{kind} failed:\n{err.decode()[-3000:]}")
    line = next(x for x in out.decode().splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def measure(kind: str, repeats: int, out_dir: Path | None = None, **args: Any) -> dict[str, Any]:
    """Run a workload `repeats` times; return the run with the median time (and the largest peak RSS).

    `out_dir` (when given) is passed to the workload and emptied between runs, so each starts clean.
    """
    runs = []
    for _ in range(repeats):
        if out_dir is not None:
            shutil.rmtree(out_dir, ignore_errors=True)
            args["out_dir"] = str(out_dir)
        runs.append(child(kind, **args))
    runs.sort(key=lambda run: run["seconds"])
    best = dict(runs[len(runs) // 2])
    best["rss_mb"] = max(run["rss_mb"] for run in runs)
    best["all_seconds"] = [round(run["seconds"], 3) for run in runs]
    return best


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_extraction(
    size_gb: float, fmt: str, work: Path, baseline_cap: int, repeats: int = 3
) -> dict[str, Any]:
    from bench.genbag import COMPRESSED_TOPICS, RAW_TOPICS, write_bag

    drive = work / f"drive-{fmt}-{size_gb}"
    shutil.rmtree(drive, ignore_errors=True)
    drive.mkdir(parents=True)
    bag = drive / ("cams.bag" if fmt == "ros1" else "cams")
    t0 = time.perf_counter()
    write_bag(bag, fmt, int(size_gb * 1e9))
    gen_s = time.perf_counter() - t0
    size = du(bag)
    row: dict[str, Any] = {"fmt": fmt, "size_gb": size / 1e9, "gen_s": gen_s}
    try:
        read = measure("bag_read", repeats, bag=str(bag))
        row["read_gbps"] = read["bytes"] / read["seconds"] / 1e9
        ours_raw = measure("extract", repeats, work / "out-raw", drive_dir=str(drive), topics=RAW_TOPICS)
        ticks = ours_raw["frames"] // len(RAW_TOPICS)
        limit = measure("encode_limit", repeats, n_big=ticks, n_small=ticks)
        cdrive = work / f"drive-{fmt}-{size_gb}-jpeg"
        shutil.rmtree(cdrive, ignore_errors=True)
        cdrive.mkdir(parents=True)
        write_bag(cdrive / bag.name, fmt, int(size_gb * 1e9), compressed_only=True)
        ours_c = measure("extract", repeats, work / "out-c", drive_dir=str(cdrive), topics=COMPRESSED_TOPICS)
        if TMPFS.is_dir() and shutil.disk_usage(TMPFS).free > 3 * size:  # same, minus the disk's limit
            mem = TMPFS / "rosbag-bench-out"
            ours_c_mem = measure("extract", repeats, mem, drive_dir=str(cdrive), topics=COMPRESSED_TOPICS)
            shutil.rmtree(mem, ignore_errors=True)
            row["compressed_tmpfs_gbps"] = ours_c_mem["bytes"] / ours_c_mem["seconds"] / 1e9
        disk = child("disk_write", path=str(work / "disk-write.tmp"), size=int(min(size, 2e9)))
        row["disk_write_gbps"] = disk["bytes"] / disk["seconds"] / 1e9
        shutil.rmtree(cdrive, ignore_errors=True)
        ours_all = measure("extract", repeats, work / "out-all", drive_dir=str(drive), topics=None)
        base = measure("baseline", repeats, bag=str(bag), cap=baseline_cap)
    finally:
        shutil.rmtree(drive, ignore_errors=True)
        shutil.rmtree(work / f"drive-{fmt}-{size_gb}-jpeg", ignore_errors=True)
        for name in ("out-raw", "out-c", "out-all"):
            shutil.rmtree(work / name, ignore_errors=True)
    row.update(
        limit_fps=limit["frames"] / limit["seconds"],
        raw_fps=ours_raw["frames"] / ours_raw["seconds"],
        raw_rss_mb=ours_raw["rss_mb"],
        compressed_gbps=ours_c["bytes"] / ours_c["seconds"] / 1e9,
        compressed_fps=ours_c["frames"] / ours_c["seconds"],
        all_fps=ours_all["frames"] / ours_all["seconds"],
        all_gbps=size / ours_all["seconds"] / 1e9,
        all_rss_mb=ours_all["rss_mb"],
        baseline_fps=base["frames"] / base["seconds"],
        baseline_frames=base["frames"],
    )
    row["raw_vs_limit"] = row["raw_fps"] / row["limit_fps"]
    row["all_vs_baseline"] = row["all_fps"] / row["baseline_fps"]
    return row


def bench_bag_workers(size_gb: float, work: Path, repeats: int) -> dict[str, Any]:
    """Two JPEG-only ROS1 bags of `size_gb` each: one bag after the other vs both at once (one process each).

    Output goes to tmpfs when there is room, so the disk's write limit does not hide the difference.
    """
    from bench.genbag import COMPRESSED_TOPICS, write_bag

    drive = work / "drive-two-bags"
    shutil.rmtree(drive, ignore_errors=True)
    drive.mkdir(parents=True)
    for name in ("a.bag", "b.bag"):
        write_bag(drive / name, "ros1", int(size_gb * 1e9), compressed_only=True)
    size = du(drive)
    use_tmpfs = TMPFS.is_dir() and shutil.disk_usage(TMPFS).free > 3 * size
    out = (TMPFS if use_tmpfs else work) / "rosbag-bench-two"
    row: dict[str, Any] = {"bags": 2, "bags_gb": size / 1e9, "output": "tmpfs" if use_tmpfs else "disk"}
    try:
        for workers in (1, 2):
            run = measure(
                "extract", repeats, out, drive_dir=str(drive), topics=COMPRESSED_TOPICS, bag_workers=workers
            )
            row[f"gbps_bag_workers_{workers}"] = run["bytes"] / run["seconds"] / 1e9
    finally:
        shutil.rmtree(drive, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    row["speedup"] = row["gbps_bag_workers_2"] / row["gbps_bag_workers_1"]
    return row


def print_table(rows: list[dict[str, Any]], cols: list[str]) -> None:
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in cols]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,4", help="bag sizes in GB, comma separated")
    parser.add_argument("--quick", action="store_true", help="one ~0.2 GB bag per format")
    parser.add_argument("--formats", default="ros1,mcap")
    parser.add_argument("--workdir", default="/tmp/rosbag_bench")
    parser.add_argument(
        "--baseline-frames", type=int, default=40, help="frames per topic the baseline encodes"
    )
    parser.add_argument(
        "--skip", default="", help="comma separated: extract,parallel,wire,lanes,topics,detect,anon,scan"
    )
    parser.add_argument("--drives", type=int, default=10_000, help="drives in the landing root for the scan")
    parser.add_argument("--detect-frames", type=int, default=64)
    parser.add_argument(
        "--anon-frames", type=int, default=None, help="frames anonymized per run (default 24, --quick 6)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload; the median is reported")
    args = parser.parse_args(argv)
    sizes = [0.2] if args.quick else [float(s) for s in args.sizes.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"# machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"# command: {' '.join([Path(PY).name, '-m', 'bench.run', *(argv or sys.argv[1:])])}\n")
    results: dict[str, Any] = {}
    if "extract" not in skip:
        rows = [
            bench_extraction(s, f, work, args.baseline_frames, args.repeat)
            for s in sizes
            for f in args.formats.split(",")
        ]
        results["extract"] = rows
        print("## extraction (fps = frames/s; ratios measured in the same run)")
        print_table(
            rows,
            [
                "fmt",
                "size_gb",
                "read_gbps",
                "limit_fps",
                "raw_fps",
                "raw_vs_limit",
                "baseline_fps",
                "all_fps",
                "all_vs_baseline",
                "compressed_gbps",
                "compressed_tmpfs_gbps",
                "disk_write_gbps",
                "all_gbps",
                "raw_rss_mb",
                "all_rss_mb",
            ],
        )
    if "parallel" not in skip:
        results["parallel"] = bench_bag_workers(min(sizes), work, args.repeat)
        print("\n## bags in parallel (bag_workers), JPEG pass-through")
        print_table([results["parallel"]], list(results["parallel"]))
    if "wire" not in skip:
        from bench.wire_parser import main as bench_wire

        print("\n## wire parser: hand-written Image/CompressedImage parser vs rosbags on a memoryview")
        bench_wire(["--mb", str(int(min(sizes) * 1024)), "--repeat", str(args.repeat)])
    if "lanes" not in skip:
        from bench.lane_model import measure as bench_lanes

        results["lanes"] = bench_lanes(repeats=args.repeat)
        print("\n## lanes: our TwinLiteNet backend vs a bare ONNX Runtime session (same frames)")
        print_table([results["lanes"]], list(results["lanes"]))
    if "topics" not in skip:
        from bench.topic_tables import main as bench_topic_tables

        print("\n## topic_tables: Parquet tables of every non-image topic vs reading and deserialising them")
        bench_topic_tables(["--size-mb", str(int(min(sizes) * 1024)), "--repeat", str(args.repeat)])
    if "detect" not in skip:
        from bench.detect import bench_detect

        results["detect"] = bench_detect(work, args.detect_frames)
        print("\n## detection (same ONNX file, same frames, decode + letterbox on both sides)")
        print_table([results["detect"]], list(results["detect"]))
    if "anon" not in skip:
        from bench.anonymize import bench_anonymize

        frames = args.anon_frames or (6 if args.quick else 24)
        results["anon"] = bench_anonymize(work, frames, args.repeat)
        print(
            "\n## anonymisation: anonymized_frames vs its models in a bare loop vs decode+encode (same frames)"
        )
        print_table([results["anon"]], list(results["anon"]))
    if "scan" not in skip:
        from bench.overhead import bench_cli, bench_code_location, bench_overhead
        from bench.scan import bench_scan

        results["scan"] = bench_scan(work, args.drives)
        print("\n## orchestration: discovery sensor ticks")
        print_table([results["scan"]], list(results["scan"]))
        results["overhead"] = bench_overhead(work, args.repeat)
        results["overhead"].update(bench_cli(work / "cli", 1))
        results["overhead"].update(bench_code_location())
        print("\n## orchestration: per-partition overhead of a local materialization")
        print_table([results["overhead"]], list(results["overhead"]))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nraw results: {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
