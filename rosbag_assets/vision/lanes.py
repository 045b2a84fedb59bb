"""Lane detection for forward-facing dash-cam frames: the `Lane` type, pluggable backends, drawing.

Backends are registered by name and imported only when asked for, so a step that never detects lanes never
pays for a model: ``twinlitenet`` (default: the learned lane-line + drivable-area model shipped in
``models/``, `lane_lines`), ``opencv-hough`` (classical, no weights, `lanes_hough`) and any registered with
`register_lane_backend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

SIDE_COLOURS: dict[str, tuple[int, int, int]] = {
    "left": (0, 0, 255),  # red (BGR)
    "right": (0, 255, 0),  # green
    "other": (255, 128, 0),  # blue-ish
}


@dataclass(frozen=True)
class Lane:
    """One lane marking as a polyline in pixel coordinates of the input image."""

    lane_id: int
    side: str  # "left" | "right" | "other"
    points: list[tuple[float, float]]  # pixel (x, y), top to bottom
    score: float  # 0..1


@runtime_checkable
class LaneBackend(Protocol):
    """Anything that turns a BGR image into lanes."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[Lane]: ...


def as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


# -- drawing ------------------------------------------------------------------------------------------
def draw_lanes(image_bgr: np.ndarray, lanes: list[Lane]) -> np.ndarray:
    """Annotated copy of the image: polylines coloured by side (left red, right green, other blue)."""
    out = as_bgr(image_bgr).copy()
    thick = max(2, round(out.shape[1] / 320))
    for lane in lanes:
        if len(lane.points) < 2:
            continue
        pts = np.round(np.asarray(lane.points)).astype(np.int32).reshape(-1, 1, 2)
        colour = SIDE_COLOURS.get(lane.side, SIDE_COLOURS["other"])
        cv2.polylines(out, [pts], False, colour, thick, cv2.LINE_AA)
        x, y = lane.points[0]
        cv2.putText(
            out,
            f"{lane.side[0]}{lane.score:.2f}",
            (int(x), max(12, int(y) - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thick / 2,
            colour,
            max(1, thick // 2),
            cv2.LINE_AA,
        )
    return out


# -- registry -----------------------------------------------------------------------------------------
_BACKENDS: dict[str, Callable[..., LaneBackend]] = {}


def register_lane_backend(name: str, factory: Callable[..., LaneBackend], *, overwrite: bool = False) -> None:
    """Make ``factory(**options)`` available as ``get_lane_backend(name, **options)``."""
    if name in _BACKENDS and not overwrite:
        raise ValueError(f"lane backend {name!r} is already registered")
    _BACKENDS[name] = factory


def known_lane_backends() -> list[str]:
    """Names accepted by :func:`get_lane_backend`."""
    return sorted(_BACKENDS)


def get_lane_backend(name: str = "opencv-hough", **options: Any) -> LaneBackend:
    """Instantiate a registered lane backend; unknown names raise ``ValueError``."""
    try:
        factory = _BACKENDS[name]
    except KeyError:
        known = ", ".join(known_lane_backends())
        raise ValueError(f"unknown lane backend {name!r}; known: {known}") from None
    return factory(**options)


def _lazy(module: str, attr: str) -> Callable[..., LaneBackend]:
    """A factory that imports its backend on first use."""

    def factory(**options: Any) -> LaneBackend:
        return getattr(importlib.import_module(module), attr)(**options)

    return factory


register_lane_backend("twinlitenet", _lazy("rosbag_assets.vision.lane_lines", "TwinLiteLaneBackend"))
register_lane_backend(
    "twinlitenet-bdd100k-v1", _lazy("rosbag_assets.vision.lane_lines", "TwinLiteLaneBackend")
)
register_lane_backend("opencv-hough", _lazy("rosbag_assets.vision.lanes_hough", "HoughLaneDetector"))
register_lane_backend("opencv-hough-lanes-v1", _lazy("rosbag_assets.vision.lanes_hough", "HoughLaneDetector"))
