"""Deterministic sample drive: one rendered road scene recorded as a ROS1 bag and a ROS2 (MCAP) bag.

The front camera shows a perspective road (asphalt, horizon, solid left edge line, moving dashed lane
markings) with real photos pasted on it (the bus and people from Ultralytics' ``bus.jpg``, people from
``zidane.jpg``), so frame extraction, a COCO detector and a lane detector all have something to find.

Usage: ``python -m rosbag_assets.demo.sample_drive OUT_DIR [--seconds S] [--hz H]``
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

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
EGO_SPEED_MPS = 8.0
JPEG_QUALITY = 90

# Lane geometry in metres, lateral offset from the ego lane centre (+ is right).
ROAD_LEFT, ROAD_RIGHT = -2.4, 7.9
SOLID_LINES = (-1.85, 7.4)
DASHED_LINES = (1.85, 5.55)
LINE_HALF_WIDTH = 0.075
DASH_LENGTH, DASH_PERIOD = 3.0, 9.0
SIDEWALK_RIGHT = 11.0


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking along the road: focal length and principal point in pixels."""

    width: int
    height: int
    focal: float
    cx: float
    horizon: float
    mount_height_m: float = 1.5


@dataclass(frozen=True)
class Billboard:
    """A photo crop standing upright on the road plane.

    Distance ahead cycles from ``z_far`` down to ``z_near`` at ``closing_mps`` (0 keeps it at ``z_far``).
    """

    crop: np.ndarray
    x_m: float
    width_m: float
    z_far: float
    z_near: float = 0.0
    closing_mps: float = 0.0
    phase_m: float = 0.0
    base_m: float = 0.0

    def distance(self, t: float) -> float:
        """Distance ahead of the camera (metres) at time ``t``."""
        if self.closing_mps == 0.0:
            return self.z_far
        span = self.z_far - self.z_near
        return self.z_far - (self.closing_mps * t + self.phase_m) % span


@dataclass(frozen=True)
class Scene:
    """Everything that is fixed for a drive: textures and objects."""

    asphalt: np.ndarray
    grass: np.ndarray
    skyline: np.ndarray
    front_objects: tuple[Billboard, ...]
    side_objects: tuple[Billboard, ...]


def _asset(name: str) -> Path:
    """Path of a photo shipped in the Ultralytics wheel (located without importing ultralytics)."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("ultralytics is not installed; its assets/bus.jpg and zidane.jpg are needed")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


@cache
def _photo(name: str) -> np.ndarray:
    """Load a BGR photo from the Ultralytics assets."""
    image = cv2.imread(str(_asset(name)), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot decode {name}")
    return image


def _crop(name: str, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Crop ``[y0:y1, x0:x1]`` of an Ultralytics photo."""
    return _photo(name)[y0:y1, x0:x1].copy()


def _noise(rng: np.random.Generator, size: int, scales: Sequence[int]) -> np.ndarray:
    """Tileable multi-scale value noise in [-1, 1]."""
    total = np.zeros((size, size), np.float32)
    for cells in scales:
        coarse = rng.standard_normal((cells, cells)).astype(np.float32)
        total += cv2.resize(np.tile(coarse, (2, 2)), (2 * size, 2 * size), interpolation=cv2.INTER_CUBIC)[
            size // 2 : size // 2 + size, size // 2 : size // 2 + size
        ]
    return np.clip(total / (np.abs(total).max() + 1e-6), -1.0, 1.0)


def build_scene(seed: int = 0) -> Scene:
    """Create textures and object placements; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    asphalt = _noise(rng, 256, (256, 64, 16))
    grass = _noise(rng, 256, (128, 32))
    skyline = _noise(rng, 256, (24, 6))[0]
    bus = _crop("bus.jpg", 0, 215, 810, 760)  # the bus with two people in front of it
    walker = _crop("bus.jpg", 20, 385, 265, 905)  # full-body pedestrian
    pair = _crop("zidane.jpg", 130, 60, 1140, 720)  # two people, upper body
    jitter = float(rng.uniform(-0.5, 0.5))
    front = (
        Billboard(bus, x_m=3.7, width_m=7.6, z_far=14.5 + jitter, z_near=12.0, closing_mps=0.4),
        Billboard(walker, x_m=-3.6, width_m=0.85, z_far=24.0, z_near=5.0, closing_mps=EGO_SPEED_MPS),
    )
    side = (
        Billboard(bus, x_m=3.7, width_m=7.6, z_far=14.5 + jitter, z_near=12.0, closing_mps=0.4),
        Billboard(
            pair,
            x_m=9.0,
            width_m=4.0,
            z_far=18.0,
            z_near=5.5,
            closing_mps=EGO_SPEED_MPS,
            phase_m=5.0,
            base_m=0.3,
        ),
    )
    return Scene(asphalt, grass, skyline, front, side)


def front_camera(width: int, height: int) -> Camera:
    """Forward-looking dash camera."""
    return Camera(width, height, focal=0.75 * width, cx=0.5 * width, horizon=0.42 * height)


def side_camera(width: int, height: int) -> Camera:
    """Wide camera panned to the right (vanishing point near the left edge)."""
    return Camera(width, height, focal=0.5 * width, cx=0.12 * width, horizon=0.45 * height)


@cache
def _ground_grid(cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For rows below the horizon: lateral X per pixel (at unit focal), depth Z per row, metres/pixel."""
    top = int(np.floor(cam.horizon)) + 1
    v = np.arange(top, cam.height, dtype=np.float32) + 0.5
    z = cam.focal * cam.mount_height_m / (v - cam.horizon)
    u = np.arange(cam.width, dtype=np.float32) + 0.5
    x_over_z = (u - cam.cx) / cam.focal
    return x_over_z[None, :], z[:, None], z[:, None] / cam.focal, top


def _coverage(distance: np.ndarray, half_width: float, pixel: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a band ``|distance| < half_width`` given the pixel size."""
    return np.clip((half_width - np.abs(distance)) / pixel + 0.5, 0.0, 1.0)


def _sample(texture: np.ndarray, a: np.ndarray, b: np.ndarray, per_m: float) -> np.ndarray:
    """Nearest-neighbour lookup of a tiling texture at world coordinates (metres)."""
    n = texture.shape[0]
    ia = np.floor(a * per_m).astype(np.int64) % n
    ib = np.floor(b * per_m).astype(np.int64) % n
    return texture[ib, ia]


def _render_ground(cam: Camera, scene: Scene, travelled: float, ego_x: float) -> np.ndarray:
    """Road, markings, verge and sidewalk below the horizon (BGR float32)."""
    x_over_z, z, pixel, _ = _ground_grid(cam)
    x = x_over_z * z + ego_x
    along = z + travelled
    fade = np.clip(10.0 / z, 0.15, 1.0)
    on_road = (x >= ROAD_LEFT) & (x <= ROAD_RIGHT)
    on_walk = (x > ROAD_RIGHT + 0.3) & (x <= SIDEWALK_RIGHT)
    rough = _sample(scene.asphalt, x, along, 24.0)
    patchy = _sample(scene.grass, x, along, 3.0)
    shade = np.where(
        on_road,
        88.0 + 14.0 * rough * fade + 6.0 * patchy,
        np.where(on_walk, 150.0 + 12.0 * rough * fade, 0.0),
    )
    ground = np.repeat(shade[..., None], 3, axis=2).astype(np.float32)
    grass = np.stack([40 + 12 * patchy, 95 + 25 * patchy, 70 + 15 * patchy], axis=-1)
    verge = ~(on_road | on_walk)
    ground[verge] = grass[verge]
    paint = np.zeros_like(shade)
    for line in SOLID_LINES:
        paint = np.maximum(paint, _coverage(x - line, LINE_HALF_WIDTH, pixel))
    depth_pixel = pixel * z / cam.mount_height_m  # metres of road per image row
    phase = np.mod(along, DASH_PERIOD)
    dash = _coverage(phase - DASH_LENGTH / 2, DASH_LENGTH / 2, depth_pixel + 1e-3)
    for line in DASHED_LINES:
        paint = np.maximum(paint, _coverage(x - line, LINE_HALF_WIDTH, pixel) * dash)
    kerb = _coverage(x - (ROAD_RIGHT + 0.15), 0.15, pixel)
    ground = ground * (1 - kerb[..., None]) + 185.0 * kerb[..., None]
    return ground * (1 - paint[..., None]) + 235.0 * paint[..., None]


def _render_sky(cam: Camera, scene: Scene) -> np.ndarray:
    """Sky gradient with a distant tree line above the horizon (BGR float32)."""
    top = int(np.floor(cam.horizon)) + 1
    v = np.arange(top, dtype=np.float32)[:, None] / max(cam.horizon, 1.0)
    top_color = np.array([200.0, 150.0, 95.0], np.float32)
    low_color = np.array([235.0, 220.0, 205.0], np.float32)
    sky = (top_color * (1 - v[..., None]) + low_color * v[..., None]) * np.ones((1, cam.width, 1), np.float32)
    u = (np.arange(cam.width) - cam.cx) / cam.focal
    idx = np.floor(u * 60.0).astype(np.int64) % scene.skyline.shape[0]
    tree_height = (0.04 + 0.03 * scene.skyline[idx]) * cam.height
    rows = np.arange(top, dtype=np.float32)[:, None]
    trees = rows > (cam.horizon - tree_height)[None, :]
    sky[trees] = np.array([55.0, 80.0, 60.0], np.float32)
    return sky


def _paste(image: np.ndarray, cam: Camera, obj: Billboard, t: float, ego_x: float) -> None:
    """Scale ``obj`` by perspective and paste it (with a soft edge and a shadow) into ``image``."""
    z = obj.distance(t)
    if z <= 1.0:
        return
    crop_h, crop_w = obj.crop.shape[:2]
    w = round(cam.focal * obj.width_m / z)
    h = round(w * crop_h / crop_w)
    if w < 4 or h < 4:
        return
    u_mid = cam.cx + cam.focal * (obj.x_m - ego_x) / z
    v_ground = cam.horizon + cam.focal * cam.mount_height_m / z
    v_bottom = cam.horizon + cam.focal * (cam.mount_height_m - obj.base_m) / z
    shadow = np.zeros(image.shape[:2], np.float32)
    axes = (max(w // 2, 1), max(w // 14, 1))
    cv2.ellipse(shadow, (round(u_mid), round(v_ground)), axes, 0, 0, 360, 1.0, -1)
    image *= 1 - 0.45 * cv2.GaussianBlur(shadow, (0, 0), max(w / 40, 1.0))[..., None]
    x0, y0 = round(u_mid - w / 2), round(v_bottom - h)
    sprite = cv2.resize(obj.crop, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = np.zeros((h, w), np.float32)
    edge = max(1, min(w, h) // 40)
    alpha[edge:-edge, edge:-edge] = 1.0
    alpha = cv2.blur(alpha, (2 * edge + 1, 2 * edge + 1))[..., None]
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + w, cam.width), min(y0 + h, cam.height)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    region = (slice(iy0, iy1), slice(ix0, ix1))
    part = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
    image[region] = image[region] * (1 - alpha[part]) + sprite[part] * alpha[part]


def render_view(cam: Camera, scene: Scene, objects: Sequence[Billboard], t: float) -> np.ndarray:
    """Render one BGR uint8 frame of the drive at time ``t`` seconds."""
    travelled = EGO_SPEED_MPS * t
    ego_x = 0.12 * np.sin(0.9 * t)
    image = np.empty((cam.height, cam.width, 3), np.float32)
    top = _ground_grid(cam)[3]
    image[:top] = _render_sky(cam, scene)
    image[top:] = _render_ground(cam, scene, travelled, ego_x)
    for obj in sorted(objects, key=lambda o: -o.distance(t)):
        _paste(image, cam, obj, t, ego_x)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def render_frames(t: float, scene: Scene, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Front and side camera frames (BGR uint8) at time ``t``."""
    front = render_view(front_camera(width, height), scene, scene.front_objects, t)
    side = render_view(side_camera(width, height), scene, scene.side_objects, t)
    return front, side


def _stamp(typestore: Typestore, stamp_ns: int, frame_id: str, seq: int) -> Any:
    """Header for either typestore (ROS1 headers carry ``seq``)."""
    time = typestore.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    header_cls = typestore.types["std_msgs/msg/Header"]
    if "seq" in header_cls.__dataclass_fields__:
        return header_cls(seq=seq, stamp=time, frame_id=frame_id)
    return header_cls(stamp=time, frame_id=frame_id)


def _vec(typestore: Typestore, x: float, y: float, z: float) -> Any:
    return typestore.types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def build_messages(
    typestore: Typestore, index: int, stamp_ns: int, front: np.ndarray, side_jpeg: np.ndarray, t: float
) -> dict[str, Any]:
    """Messages of every topic for one tick, built with ``typestore``'s classes."""
    types = typestore.types

    def header(topic: str) -> Any:
        return _stamp(typestore, stamp_ns, FRAME_IDS[topic], index)

    height, width = front.shape[:2]
    image = types[IMAGE_TYPE](
        header=header(FRONT_TOPIC),
        height=height,
        width=width,
        encoding="bgr8",
        is_bigendian=0,
        step=width * 3,
        data=front.reshape(-1),
    )
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
