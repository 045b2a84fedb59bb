"""Reliability, faults: a run killed with SIGKILL, two runs of one partition at once, a full disk and a
misbehaving S3 never leave a partition that looks done when it is not, and never lose the previous version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bagwriting import make_image, write_bag
from s3faults import S3FaultProxy, fault_proxy

from rosbag_assets.io import publish
from rosbag_assets.io.frames import read_frame_bytes
from rosbag_assets.io.s3_reads import s3_client
from rosbag_assets.io.s3_storage import S3Storage
from rosbag_assets.io.storage import LocalStorage, Storage
from rosbag_assets.steps.entrypoint import run_step
from rosbag_assets.steps.extracted_frames import FrameWriteError, run_extracted_frames
from rosbag_assets.steps.raw_bags import run_raw_bags

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000
TOPIC = "/cam/front"
# slow enough to be caught part way (one PNG encoder thread, one file per frame), small enough to stay quick
SLOW = {"layout": "files", "image_format": "png", "workers": 1}


def write_drive(drive: Path, frames: int, name: str = "cam.bag") -> Path:
    drive.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8)
    msgs = [
        (T0 + i * 1000, make_image("ros1", "bgr8", 72, 96, 288, np.roll(img, i).tobytes(), stamp_ns=T0 + i))
        for i in range(frames)
    ]
    write_bag(drive / name, "ros1", {TOPIC: msgs})
    return drive


def snapshot(storage: Storage, drive: str) -> tuple[pd.DataFrame, list[bytes]]:
    """The current extracted_frames version's index (without its version-specific paths) and frame bytes."""
    version, _ = publish.require_current(storage, f"{drive}/extracted_frames")
    index = version.read_parquet("index.parquet")
    data = [read_frame_bytes(storage, version, row) for row in index.to_dict("records")]
    return index.drop(columns=["path"]), data


def versions(storage: Storage, drive: str) -> dict[str, bool]:
    """{version id: committed?} of the partition's extracted_frames."""
    prefix = f"{drive}/extracted_frames/versions"
    return {v: storage.exists(f"{prefix}/{v}/manifest.json") for v in storage.list_dirs(prefix)}


def entrypoint(params: dict[str, Any], tmp: Path) -> subprocess.Popen:
    path = tmp / f"params-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(params))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "rosbag_assets.steps.entrypoint", "--params", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout_s: float = 120) -> None:
    """SIGKILL `proc` as soon as `ready()`; fail if it finished first (then nothing was tested)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "never got far enough to be killed"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def frames_written(storage: Storage, drive: str, known: set[str], at_least: int = 5) -> Callable[[], bool]:
    def ready() -> bool:
        new = [v for v in storage.list_dirs(f"{drive}/extracted_frames/versions") if v not in known]
        return any(
            sum(1 for _ in storage.list_files(f"{drive}/extracted_frames/versions/{v}/frames")) >= at_least
            for v in new
        )

    return ready


def check_kill_and_rerun(
    tmp_path: Path, source: Storage, output: Storage, params: dict[str, Any], written: int = 5
) -> None:
    drive = params["drive"]
    run_step({**params, "step": "raw_bags", "options": None})  # the inventory takes no options
    run_step({**params, "step": "extracted_frames"})
    before = publish.current(output, f"{drive}/extracted_frames")
    good = snapshot(output, drive)
    proc = entrypoint({**params, "step": "extracted_frames"}, tmp_path)
    kill_when(proc, frames_written(output, drive, set(versions(output, drive)), written))
    # the killed run left only an unreferenced draft; the previous version is current and whole
    assert publish.current(output, f"{drive}/extracted_frames") == before
    state = versions(output, drive)
    assert sorted(state.values()) == [False, True]
    after_kill = snapshot(output, drive)
    assert after_kill[0].equals(good[0]) and after_kill[1] == good[1]
    # the rerun publishes exactly what the first run did; the dead run's draft is left to its lease
    run_step({**params, "step": "extracted_frames"})
    rerun = snapshot(output, drive)
    assert rerun[0].equals(good[0]) and rerun[1] == good[1]
    assert publish.current(output, f"{drive}/extracted_frames")["version"] != before["version"]
    assert sorted(versions(output, drive).values()) == [False, True, True]


@pytest.mark.slow
def test_kill_9_mid_extraction_local(tmp_path: Path) -> None:
    source = write_drive(tmp_path / "landing" / "kill", 600)
    out = tmp_path / "out"
    params = {"drive": "kill", "source": str(source), "output": str(out), "options": SLOW}
    check_kill_and_rerun(tmp_path, LocalStorage(source), LocalStorage(out), params)


@pytest.mark.slow
def test_kill_9_mid_extraction_s3(tmp_path: Path, moto_server: Any) -> None:
    s3 = moto_server.client("s3")
    for bucket in ("landing", "out"):
        s3.create_bucket(Bucket=bucket)
    bag = write_drive(tmp_path / "src", 300) / "cam.bag"
    s3.upload_file(str(bag), "landing", "kill/cam.bag")
    params = {
        "drive": "kill",
        "source": "s3://landing/kill",
        "output": "s3://out/assets",
        "s3_endpoint_url": moto_server.url,
        # shards of ~25 frames: a few uploads per run, the first one well before the run ends
        "options": {"image_format": "png", "workers": 1, "shard_mb": 0.5},
    }
    out = S3Storage("out", "assets", endpoint_url=moto_server.url)
    source = S3Storage("landing", "kill", endpoint_url=moto_server.url)
    check_kill_and_rerun(tmp_path, source, out, params, written=1)


@pytest.mark.slow
def test_concurrent_runs_of_one_partition(tmp_path: Path) -> None:
    source = write_drive(tmp_path / "landing" / "twice", 300)
    out = LocalStorage(tmp_path / "out")
    run_raw_bags(drive="twice", source=LocalStorage(source), output=out)
    params = {"step": "extracted_frames", "drive": "twice", "source": str(source), "output": str(out.root)}
    procs = [entrypoint({**params, "options": SLOW}, tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    state = versions(out, "twice")
    assert list(state.values()) == [True, True]  # both committed; neither pruned the other's work
    current = publish.current(out, "twice/extracted_frames")["version"]
    assert current in state
    index, data = snapshot(out, "twice")
    assert len(index) == len(data) == 300
    other = publish.Version(out, "twice/extracted_frames", next(v for v in state if v != current))
    assert other.read_parquet("index.parquet").drop(columns=["path"]).equals(index)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("layout", ["shards", "files"])
def test_a_full_disk_fails_naming_bag_and_topic(small_disk: Path, tmp_path: Path, layout: str) -> None:
    source = write_drive(tmp_path / "landing" / "full", 150)  # ~3 MiB of lossless PNG frames
    out = LocalStorage(small_disk)
    run_raw_bags(drive="full", source=LocalStorage(source), output=out)
    with pytest.raises(FrameWriteError, match=rf"(?s)cam\.bag.*topic {TOPIC}.*No space left") as err:
        run_extracted_frames(
            drive="full",
            source=LocalStorage(source),
            output=out,
            options={"layout": layout, "image_format": "png"},
        )
    assert str(source / "cam.bag") in str(err.value)
    assert publish.current(out, "full/extracted_frames") is None  # nothing published ...
    assert versions(out, "full") == {}  # ... and the failed draft is gone, so the space is free again
    assert os.statvfs(small_disk).f_bfree * os.statvfs(small_disk).f_frsize > 2_500_000


# --- a misbehaving S3 -------------------------------------------------------------------------------------


@pytest.fixture
def s3_drive(moto_server: Any, tmp_path: Path) -> Iterator[tuple[S3FaultProxy, Callable[[int], S3Storage]]]:
    """s3://landing/s3drive/{cam.bag, side.bag} behind a fault proxy, and storages that go through it
    (botocore retrying each request at most `attempts` times, so injected faults cost little time)."""
    s3 = moto_server.client("s3")
    for bucket in ("landing", "out"):
        s3.create_bucket(Bucket=bucket)
    drive = write_drive(tmp_path / "src", 40)
    write_drive(drive, 30, "side.bag")
    for bag in ("cam.bag", "side.bag"):
        s3.upload_file(str(drive / bag), "landing", f"s3drive/{bag}")
    with fault_proxy(moto_server.url) as proxy:

        def via_proxy(attempts: int, bucket: str, prefix: str) -> S3Storage:
            return S3Storage(bucket, prefix, client=s3_client(proxy.url, max_attempts=attempts))

        yield proxy, via_proxy


def run_drive(via: Callable[..., S3Storage], attempts: int = 3) -> tuple[S3Storage, Any]:
    out = via(attempts, "out", "assets")
    source = via(attempts, "landing", "s3drive")
    run_raw_bags(drive="s3drive", source=source, output=out)
    return out, run_extracted_frames(drive="s3drive", source=source, output=out)


def test_s3_500_503_and_dropped_gets_are_survived(s3_drive: Any) -> None:
    proxy, via = s3_drive
    clean_out, _ = run_drive(via)
    clean = snapshot(clean_out, "s3drive")
    proxy.fail("HEAD", "503", path_contains="cam.bag")
    proxy.fail("GET", "500", path_contains="cam.bag")
    proxy.fail("GET", "drop", times=2, path_contains="side.bag")  # mid-body: resumed with a ranged GET
    proxy.fail("PUT", "503", times=2)  # the first PUT (a lease) takes two of its three attempts
    proxy.fail("PUT", "reset", path_contains="/index/")  # a connection closed before any response
    out, _ = run_drive(via)
    assert len(proxy.faults()) == 7  # every fault was met ...
    faulted = snapshot(out, "s3drive")  # ... and the result is what a clean run gives
    assert faulted[0].equals(clean[0]) and faulted[1] == clean[1]
    resumed = [s for s in proxy.seen if s[0] == "GET" and "side.bag" in s[1]]
    assert len(resumed) >= 3


def test_s3_put_that_keeps_failing_publishes_nothing(s3_drive: Any) -> None:
    proxy, via = s3_drive
    out, _ = run_drive(via)
    before = publish.current(out, "s3drive/extracted_frames")
    proxy.fail("PUT", "500", times=10_000, path_contains="/frames/")
    with pytest.raises(
        FrameWriteError, match=r"(?s)s3://landing/s3drive/.*\.bag.*topic /cam/front.*InternalError"
    ):
        run_extracted_frames(
            drive="s3drive", source=via(2, "landing", "s3drive"), output=via(2, "out", "assets")
        )
    proxy.clear()
    assert publish.current(out, "s3drive/extracted_frames") == before
    assert list(versions(out, "s3drive").values()) == [True]  # the failed draft was removed


def test_s3_delete_that_fails_does_not_fail_a_commit(s3_drive: Any) -> None:
    proxy, via = s3_drive
    out, _ = run_drive(via)
    run_extracted_frames(drive="s3drive", source=via(2, "landing", "s3drive"), output=out)  # 2 committed
    proxy.fail("DELETE", "500", times=10_000)
    proxy.fail("POST", "500", times=10_000, path_contains="delete")  # DeleteObjects, used by pruning
    res = run_extracted_frames(
        drive="s3drive", source=via(2, "landing", "s3drive"), output=via(2, "out", "assets")
    )
    assert proxy.faults("DELETE") and res.metadata["published"]["raw_value"] is True
    current = publish.current(out, "s3drive/extracted_frames")["version"]
    assert current in res.metadata["frames_root"]["raw_value"]
    assert list(versions(out, "s3drive").values()) == [True, True, True]  # nothing pruned, nothing lost
    proxy.clear()
    run_extracted_frames(drive="s3drive", source=via(2, "landing", "s3drive"), output=out)
    assert list(versions(out, "s3drive").values()) == [True, True]  # the next commit prunes
