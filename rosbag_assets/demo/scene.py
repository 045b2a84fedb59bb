"""The sample drive's rendered road scene: a perspective road with real photos pasted on it as billboards.

Front and side cameras look at the same ground plane (asphalt, solid edge lines, moving dashed lane markings,
a sidewalk) and at people and a bus cut from Ultralytics' ``bus.jpg`` and ``zidane.jpg``, so a COCO
detector and a lane detector both have something to find. Rendering is deterministic per ``seed``;
recording the frames into bags is `sample_drive`'s job.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

EGO_SPEED_MPS = 8.0

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
