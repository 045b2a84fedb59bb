"""Orchestration: discovery sensor ticks over a landing root holding many drives, local folder and S3 (moto).

``.venv/bin/python -m bench.scan --drives 10000`` prints the result row as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

BUCKET = "bench-landing"
PREFIX = "landing"
CHANGED_DRIVE = 42  # the drive that gets one new bag before the third tick
NEW_BAG = "rear.bag"
UPLOAD_THREADS = 16


def drive_name(i: int) -> str:
    return f"drive_{i:05d}"


def landing_keys(drives: int) -> Iterator[str]:
    """Keys of the landing layout relative to its root: per drive one ROS1 bag and one ROS2 MCAP folder."""
    for i in range(drives):
        d = drive_name(i)
        yield f"{d}/front.bag"
        yield f"{d}/run2/metadata.yaml"
        yield f"{d}/run2/run2_0.mcap"


def make_landing(root: Path, drives: int) -> None:
    """`drives` folders, each with one ROS1 bag and one ROS2 MCAP bag folder (empty files: only names count)."""
    shutil.rmtree(root, ignore_errors=True)
    for i in range(drives):
        d = root / drive_name(i)
        (d / "run2").mkdir(parents=True)
        (d / "front.bag").touch()
        (d / "run2" / "metadata.yaml").touch()
        (d / "run2" / "run2_0.mcap").touch()


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sensor_ticks(storage: Any, add_one_bag: Callable[[], None], prefix: str) -> dict[str, Any]:
    """Three ticks of the real discovery sensor on an ephemeral instance: first, unchanged, one drive changed.

    The daemon adds the dynamic partitions a tick requests; that is mimicked outside the timed region.
    """
    import dagster as dg

    from rosbag_assets.defs.partitions import drives as drives_partitions
    from rosbag_assets.defs.sensors import drive_discovery_sensor

    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
        return drive_discovery_sensor(context)

    first, first_s = _timed(lambda: tick(None))
    requests_first = len(first.run_requests or [])
    new = [name for req in first.dynamic_partitions_requests or [] for name in req.partition_keys]
    instance.add_dynamic_partitions(drives_partitions.name, new)

    unchanged, unchanged_s = _timed(lambda: tick(first.cursor))
    assert not unchanged.run_requests, f"unchanged tick requested {len(unchanged.run_requests)} runs"
    assert not unchanged.dynamic_partitions_requests

    add_one_bag()
    changed, changed_s = _timed(lambda: tick(unchanged.cursor))
    keys = [req.partition_key for req in changed.run_requests or []]
    assert keys == [drive_name(CHANGED_DRIVE)], f"one-changed tick requested {keys[:5]}..."
    return {
        f"{prefix}_tick_first_s": first_s,
        f"{prefix}_tick_unchanged_s": unchanged_s,
        f"{prefix}_tick_one_changed_s": changed_s,
        f"{prefix}_run_requests_first": requests_first,
        f"{prefix}_partitions_added": len(new),
        f"{prefix}_cursor_kb": len(first.cursor or "") / 1024,
    }


@contextmanager
def moto_s3() -> Iterator[str]:
    """A moto S3 server in its own process on a free port (like a remote S3, it does not share this process's
    interpreter); yields its endpoint URL and stops it afterwards."""
    import socket
    import subprocess
    import sys
    import urllib.request

    fake_aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with patch.dict(os.environ, fake_aws):
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("moto server did not start")
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def upload_landing(client: Any, drives: int) -> int:
    """Put the landing layout under ``s3://BUCKET/PREFIX/`` with tiny bodies; returns the object count."""
    keys = [f"{PREFIX}/{key}" for key in landing_keys(drives)]
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=BUCKET, Key=key, Body=b"x"), keys))
    return len(keys)


def bench_s3(work: Path, drives: int) -> dict[str, Any]:
    """Upload the landing layout to moto S3, then tick the sensor against it."""
    import boto3
    from botocore.config import Config

    from rosbag_assets.defs.resources import DriveStorage
    from rosbag_assets.io.drives import scan_landing_root
    from rosbag_assets.io.s3_storage import S3Storage

    with moto_s3() as endpoint:
        config = Config(max_pool_connections=UPLOAD_THREADS)
        client = boto3.client("s3", endpoint_url=endpoint, config=config)
        client.create_bucket(Bucket=BUCKET)
        objects, upload_s = _timed(lambda: upload_landing(client, drives))
        storage = DriveStorage(
            landing_root=f"s3://{BUCKET}/{PREFIX}", s3_endpoint_url=endpoint, output_root=str(work / "out")
        )
        key = f"{PREFIX}/{drive_name(CHANGED_DRIVE)}/{NEW_BAG}"
        row = sensor_ticks(storage, lambda: client.put_object(Bucket=BUCKET, Key=key, Body=b"x"), "s3")
        # The listing alone (same client code the sensor uses): how much of a tick is the S3 round trips.
        landing = S3Storage(BUCKET, PREFIX, endpoint_url=endpoint)
        _, list_s = _timed(lambda: sum(1 for _ in landing.list_files("")))
        (found, _), scan_s = _timed(lambda: scan_landing_root(landing))
        assert len(found) == drives
    return {"s3_objects": objects, "s3_upload_s": upload_s, **row, "s3_list_s": list_s, "s3_scan_s": scan_s}


def bench_scan(work: Path, drives: int) -> dict[str, Any]:
    """Plain landing-root scans plus real discovery-sensor ticks, on a local folder and on moto S3."""
    from rosbag_assets.defs.resources import DriveStorage
    from rosbag_assets.io.drives import scan_landing_root
    from rosbag_assets.io.storage import LocalStorage

    root = work / "landing"
    make_landing(root, drives)
    try:
        (found, _), first = _timed(lambda: scan_landing_root(LocalStorage(root)))
        _, second = _timed(lambda: scan_landing_root(LocalStorage(root)))
        storage = DriveStorage(landing_root=str(root), output_root=str(work / "out"))
        local = sensor_ticks(storage, lambda: (root / drive_name(CHANGED_DRIVE) / NEW_BAG).touch(), "local")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    row: dict[str, Any] = {
        "drives": drives,
        "found": len(found),
        "scan_s_first": first,
        "scan_s_warm": second,
        **local,
    }
    row.update(bench_s3(work, drives))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drives", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rosbag_bench_orch"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(bench_scan(args.work, args.drives), indent=2))


if __name__ == "__main__":
    main()
