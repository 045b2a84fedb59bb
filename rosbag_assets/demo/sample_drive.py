"""Deterministic sample drive: one rendered road scene recorded as a ROS1 bag and a ROS2 (MCAP) bag.

The front camera shows a perspective road (asphalt, horizon, solid left edge line, moving dashed lane
markings) with real photos pasted on it (the bus and people from Ultralytics' ``bus.jpg``, people from
``zidane.jpg``), so frame extraction, a COCO detector and a lane detector all have something to find.
The scene is rendered by `rosbag_assets.demo.scene`; this module records it (messages, per-topic
latencies, ROS1 and ROS2 bags).

Usage: ``python -m rosbag_assets.demo.sample_drive OUT_DIR [--seconds S] [--hz H]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from rosbag_assets.demo.scene import (
    EGO_SPEED_MPS,
    Billboard,
    Camera,
    Scene,
    build_scene,
    front_camera,
    render_frames,
    render_view,
    side_camera,
)

# The scene's names stay importable from here (tests, bench and `rosbag_assets.defs.demo` use this module).
__all__ = [
    "COMPRESSED_TYPE",
    "EGO_SPEED_MPS",
    "EPOCH_NS",
    "FRAME_IDS",
    "FRONT_TOPIC",
    "IMAGE_TYPE",
    "IMU_TOPIC",
    "IMU_TYPE",
    "JPEG_QUALITY",
    "LATENCY_FRACTION",
    "ROS1_BAG",
    "ROS2_BAG",
    "SIDE_TOPIC",
    "SPEED_TOPIC",
    "SPEED_TYPE",
    "TOPICS",
    "Billboard",
    "Camera",
    "Scene",
    "build_messages",
    "build_scene",
    "front_camera",
    "main",
    "render_frames",
    "render_view",
    "side_camera",
    "write_sample_drive",
]

ROS1_BAG = "front_ros1.bag"
ROS2_BAG = "front_ros2"
FRONT_TOPIC = "/camera/front/image_raw"
SIDE_TOPIC = "/camera/side/image_raw/compressed"
SPEED_TOPIC = "/vehicle/speed"
IMU_TOPIC = "/imu/data"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
SPEED_TYPE = "geometry_msgs/msg/TwistStamped"
IMU_TYPE = "sensor_msgs/msg/Imu"
TOPICS: dict[str, str] = {
    FRONT_TOPIC: IMAGE_TYPE,
    SIDE_TOPIC: COMPRESSED_TYPE,
    SPEED_TOPIC: SPEED_TYPE,
    IMU_TOPIC: IMU_TYPE,
}
FRAME_IDS: dict[str, str] = {
    FRONT_TOPIC: "camera_front",
    SIDE_TOPIC: "camera_side",
    SPEED_TOPIC: "base_link",
    IMU_TOPIC: "imu_link",
}
# Fixed per-topic recording latency (log time = header stamp + latency), as a fraction of the period.
LATENCY_FRACTION: dict[str, float] = {FRONT_TOPIC: 0.15, SIDE_TOPIC: 0.25, SPEED_TOPIC: 0.02, IMU_TOPIC: 0.01}
EPOCH_NS = 1_714_557_600 * 10**9  # 2024-05-01T10:00:00Z
JPEG_QUALITY = 90


def _stamp(typestore: Typestore, stamp_ns: int, frame_id: str, seq: int) -> Any:
    """Header for either typestore (ROS1 headers carry ``seq``)."""
    time = typestore.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    header_cls = typestore.types["std_msgs/msg/Header"]
    if "seq" in header_cls.__dataclass_fields__:
        return header_cls(seq=seq, stamp=time, frame_id=frame_id)
    return header_cls(stamp=time, frame_id=frame_id)


def _vec(typestore: Typestore, x: float, y: float, z: float) -> Any:
    return typestore.types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def bgr8_image(typestore: Typestore, header: Any, pixels: np.ndarray) -> Any:
    """A ``sensor_msgs/Image`` (bgr8) holding `pixels` (H x W x 3 uint8)."""
    height, width = pixels.shape[:2]
    return typestore.types[IMAGE_TYPE](
        header=header, height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3,
        data=pixels.reshape(-1),
    )  # fmt: skip


def build_messages(
    typestore: Typestore, index: int, stamp_ns: int, front: np.ndarray, side_jpeg: np.ndarray, t: float
) -> dict[str, Any]:
    """Messages of every topic for one tick, built with ``typestore``'s classes."""
    types = typestore.types

    def header(topic: str) -> Any:
        return _stamp(typestore, stamp_ns, FRAME_IDS[topic], index)

    image = bgr8_image(typestore, header(FRONT_TOPIC), front)
    compressed = types[COMPRESSED_TYPE](header=header(SIDE_TOPIC), format="jpeg", data=side_jpeg)
    speed = EGO_SPEED_MPS + 0.2 * np.sin(0.5 * t)
    twist = types["geometry_msgs/msg/Twist"](
        linear=_vec(typestore, speed, 0.0, 0.0), angular=_vec(typestore, 0.0, 0.0, 0.1 * np.cos(0.9 * t))
    )
    zeros = np.zeros(9, np.float64)
    imu = types[IMU_TYPE](
        header=header(IMU_TOPIC),
        orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=zeros,
        angular_velocity=_vec(typestore, 0.0, 0.0, 0.1 * np.cos(0.9 * t)),
        angular_velocity_covariance=zeros,
        linear_acceleration=_vec(typestore, 0.1 * np.cos(0.5 * t), 0.0, 9.81),
        linear_acceleration_covariance=zeros,
    )
    return {
        FRONT_TOPIC: image,
        SIDE_TOPIC: compressed,
        SPEED_TOPIC: types[SPEED_TYPE](header=header(SPEED_TOPIC), twist=twist),
        IMU_TOPIC: imu,
    }


def _ticks(seconds: float, hz: float) -> Iterator[tuple[int, int, float]]:
    """(index, header stamp ns, seconds since start) for every tick of the drive."""
    for index in range(round(seconds * hz)):
        offset_ns = round(index * 1e9 / hz)
        yield index, EPOCH_NS + offset_ns, offset_ns / 1e9


def _write_bags(
    ros1_path: Path, ros2_path: Path, seconds: float, hz: float, width: int, height: int, seed: int
) -> None:
    """Render the drive once and record it into both bags."""
    ros1_store, ros2_store = get_typestore(Stores.ROS1_NOETIC), get_typestore(Stores.ROS2_HUMBLE)
    scene = build_scene(seed)
    period_ns = 1e9 / hz
    order = sorted(TOPICS, key=lambda topic: LATENCY_FRACTION[topic])
    with (
        Ros1Writer(ros1_path) as ros1,
        Ros2Writer(ros2_path, version=9, storage_plugin=StoragePlugin.MCAP) as ros2,
    ):
        conns1 = {
            topic: ros1.add_connection(topic, msgtype, typestore=ros1_store)
            for topic, msgtype in TOPICS.items()
        }
        conns2 = {
            topic: ros2.add_connection(topic, msgtype, typestore=ros2_store)
            for topic, msgtype in TOPICS.items()
        }
        for index, stamp_ns, t in _ticks(seconds, hz):
            front, side = render_frames(t, scene, width, height)
            ok, jpeg = cv2.imencode(".jpg", side, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            jpeg = jpeg.reshape(-1)
            writers: list[tuple[Any, dict[str, Any], Typestore, Callable[..., Any]]] = [
                (ros1, conns1, ros1_store, ros1_store.serialize_ros1),
                (ros2, conns2, ros2_store, ros2_store.serialize_cdr),
            ]
            for writer, conns, store, serialize in writers:
                msgs = build_messages(store, index, stamp_ns, front, jpeg, t)
                for topic in order:
                    log_ns = stamp_ns + round(LATENCY_FRACTION[topic] * period_ns)
                    writer.write(conns[topic], log_ns, serialize(msgs[topic], TOPICS[topic]))


def write_sample_drive(
    drive_dir: Path,
    *,
    seconds: float = 4.0,
    hz: float = 10.0,
    width: int = 960,
    height: int = 540,
    seed: int = 0,
) -> list[Path]:
    """Write ``front_ros1.bag`` and ``front_ros2/`` (MCAP) of the same rendered drive into ``drive_dir``.

    Both bags are written under a temporary name and renamed into place when complete; existing
    sample bags of the same names are replaced. Returns the two bag paths (ROS1, ROS2).
    """
    if seconds <= 0 or hz <= 0:
        raise ValueError("seconds and hz must be positive")
    if width < 64 or height < 64:
        raise ValueError("width and height must be at least 64 pixels")
    drive_dir = Path(drive_dir)
    drive_dir.mkdir(parents=True, exist_ok=True)
    targets = [drive_dir / ROS1_BAG, drive_dir / ROS2_BAG]
    with tempfile.TemporaryDirectory(prefix=".sample-drive-", dir=drive_dir) as tmp:
        staged = [Path(tmp) / target.name for target in targets]
        _write_bags(staged[0], staged[1], seconds, hz, width, height, seed)
        for source, target in zip(staged, targets, strict=True):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            source.rename(target)
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write a sample drive and print the bag paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="drive folder to write")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--hz", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_sample_drive(
        args.out_dir, seconds=args.seconds, hz=args.hz, width=args.width, height=args.height, seed=args.seed
    )
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
