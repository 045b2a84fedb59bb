"""Child-process entry points so wall time and peak RSS are measured per workload (`python -m bench.child`)."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np


def extract(drive_dir: str, out_dir: str, topics: list[str] | None, bag_workers: int = 0) -> dict:
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.extracted_frames import run_extracted_frames
    from rosbag_assets.steps.raw_bags import run_raw_bags

    src, out = LocalStorage(drive_dir), LocalStorage(out_dir)
    run_raw_bags(drive="d", source=src, output=out)
    t0 = time.perf_counter()
    options = {"topics": topics, "bag_workers": bag_workers}
    result = run_extracted_frames(drive="d", source=src, output=out, options=options)
    seconds = time.perf_counter() - t0
    meta = result.metadata
    return {"seconds": seconds, "frames": _val(meta["frames"]), "bytes": _val(meta["bytes"])}


def _val(v: object) -> float:
    return v["raw_value"] if isinstance(v, dict) else v  # type: ignore[return-value]


def baseline(bag: str, cap: int) -> dict:
    """The seed pipeline: one full pass per topic, full deserialize, PNG via cv2.imwrite plus a resized copy."""
    import tempfile

    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    from rosbag_assets.vision.images import decode_image_message

    frames = 0
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(dir="/tmp") as tmp,
        AnyReader([Path(bag)], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader,
    ):
        topics = [c.topic for c in reader.connections if c.msgtype.endswith(("/Image", "/CompressedImage"))]
        for topic in topics:
            conns = [c for c in reader.connections if c.topic == topic]
            n = 0
            for conn, ts, raw in reader.messages(connections=conns):
                if n >= cap:
                    continue  # the seed reads the whole pass; we only cap the encoding work
                msg = reader.deserialize(raw, conn.msgtype)
                img = decode_image_message(msg)
                cv2.imwrite(f"{tmp}/{topic.strip('/').replace('/', '_')}_{ts}.png", img)
                small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2))
                cv2.imwrite(f"{tmp}/{topic.strip('/').replace('/', '_')}_{ts}_small.png", small)
                n += 1
                frames += 1
    return {"seconds": time.perf_counter() - t0, "frames": frames}


def encode_limit(n_big: int, n_small: int) -> dict:
    """JPEG-encode-only throughput of the same frames on all cores (no I/O, no bag)."""
    from bench.genbag import load_frames

    frames = load_frames()
    work = [frames[i % len(frames)][0] for i in range(n_big)] + [
        frames[i % len(frames)][1] for i in range(n_small)
    ]
    params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        total = sum(len(b) for _, b in pool.map(lambda im: cv2.imencode(".jpg", im, params), work))
    return {"seconds": time.perf_counter() - t0, "frames": len(work), "bytes": total}


def disk_write(path: str, size: int) -> dict:
    """Sequential write of `size` bytes in 16 MB blocks, fsynced: what the disk sustains."""
    block = os.urandom(16 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - t0
    os.unlink(path)
    return {"seconds": seconds, "bytes": size // len(block) * len(block)}


def bag_read(bag: str) -> dict:
    """AnyReader iterating raw messages, no deserialize."""
    from rosbags.highlevel import AnyReader

    t0 = time.perf_counter()
    total = 0
    with AnyReader([Path(bag)]) as reader:
        for _, _, raw in reader.messages():
            total += len(raw)
    return {"seconds": time.perf_counter() - t0, "bytes": total}


def main() -> None:
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    np.random.seed(0)
    workloads = {
        "extract": extract,
        "baseline": baseline,
        "encode_limit": encode_limit,
        "bag_read": bag_read,
        "disk_write": disk_write,
    }
    result = workloads[kind](**args)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
