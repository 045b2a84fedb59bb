"""Orchestration: a discovery sensor tick over a landing root holding many drives."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any


def make_landing(root: Path, drives: int) -> None:
    """`drives` folders, each with one ROS1 bag and one ROS2 MCAP bag folder (empty files: only names count)."""
    shutil.rmtree(root, ignore_errors=True)
    for i in range(drives):
        d = root / f"drive_{i:05d}"
        (d / "run2").mkdir(parents=True)
        (d / "front.bag").touch()
        (d / "run2" / "metadata.yaml").touch()
        (d / "run2" / "run2_0.mcap").touch()


def bench_scan(work: Path, drives: int) -> dict[str, Any]:
    from rosbag_assets.jobs.drives import scan_landing_root
    from rosbag_assets.jobs.storage import LocalStorage

    root = work / "landing"
    make_landing(root, drives)
    try:
        t0 = time.perf_counter()
        found, _ = scan_landing_root(LocalStorage(root))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        scan_landing_root(LocalStorage(root))
        second = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"drives": drives, "found": len(found), "scan_s_first": first, "scan_s_warm": second}
