"""Large test bags from real dash-cam frames, streamed to disk while they are written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore

from rosbag_assets.demo.sample_drive import bgr8_image

FRAMES_DIR = Path("/work/shared/data/images/bdd100k")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
TOPICS = {
    "/cam_front/image_raw": IMAGE,  # bgr8 1920x1080 (bdd100k upscaled)
    "/cam_side/image_raw": IMAGE,  # bgr8 1280x720
    "/cam_rear/image/compressed": COMPRESSED,  # JPEG 1280x720
}
RAW_TOPICS = [t for t, m in TOPICS.items() if m == IMAGE]
COMPRESSED_TOPICS = [t for t, m in TOPICS.items() if m == COMPRESSED]
EPOCH_NS = 1_700_000_000_000_000_000
HZ = 10.0


def load_frames() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(1920x1080 bgr, 1280x720 bgr, JPEG bytes of the 1280x720 frame) for every bdd100k frame."""
    out = []
    for path in sorted(FRAMES_DIR.glob("*.jpg")):
        small = cv2.imread(str(path), cv2.IMREAD_COLOR)
        small = cv2.resize(small, (1280, 720)) if small.shape[:2] != (720, 1280) else small
        big = cv2.resize(small, (1920, 1080), interpolation=cv2.INTER_LINEAR)
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append((big, small, jpeg.reshape(-1)))
    if not out:
        raise FileNotFoundError(f"no frames in {FRAMES_DIR}")
    return out


def _ticks(frames: list, target_bytes: int, compressed_only: bool) -> Iterator[tuple[int, int]]:
    big, small, jpeg = frames[0]
    per_tick = jpeg.nbytes if compressed_only else big.nbytes + small.nbytes + jpeg.nbytes
    for i in range(max(1, target_bytes // per_tick)):
        yield i, EPOCH_NS + round(i * 1e9 / HZ)


def write_bag(path: Path, fmt: str, target_bytes: int, compressed_only: bool = False) -> Path:
    """Write a ROS1 ``.bag`` (``fmt="ros1"``) or ROS2 MCAP folder of about `target_bytes`; return its path.

    ``compressed_only`` records just the JPEG camera (for the pass-through throughput).
    """
    frames = load_frames()
    store = get_typestore(Stores.ROS1_NOETIC if fmt == "ros1" else Stores.ROS2_HUMBLE)
    types = store.types
    serialize = store.serialize_ros1 if fmt == "ros1" else store.serialize_cdr

    def header(stamp_ns: int, frame_id: str, seq: int) -> object:
        sec, nsec = divmod(stamp_ns, 1_000_000_000)
        stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)
        if fmt == "ros1":
            return types["std_msgs/msg/Header"](seq=seq, stamp=stamp, frame_id=frame_id)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def image(arr: np.ndarray, stamp_ns: int, frame_id: str, seq: int) -> object:
        return bgr8_image(store, header(stamp_ns, frame_id, seq), arr)

    writer = (
        Ros1Writer(path) if fmt == "ros1" else Ros2Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    )
    with writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in TOPICS.items()}
        for i, stamp in _ticks(frames, target_bytes, compressed_only):
            big, small, jpeg = frames[i % len(frames)]
            msgs = {
                "/cam_front/image_raw": image(big, stamp, "front", i),
                "/cam_side/image_raw": image(small, stamp + 1_000_000, "side", i),
                "/cam_rear/image/compressed": types[COMPRESSED](
                    header=header(stamp + 2_000_000, "rear", i), format="jpeg", data=jpeg
                ),
            }
            for k, (topic, msg) in enumerate(msgs.items()):
                if compressed_only and topic not in COMPRESSED_TOPICS:
                    continue
                writer.write(conns[topic], stamp + k * 1_000_000, serialize(msg, TOPICS[topic]))
    return path
