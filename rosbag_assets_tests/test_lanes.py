"""Tests for the pluggable lane detector (rosbag_assets.vision.lanes)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rosbag_assets.vision.lanes import (
    Lane,
    LaneBackend,
    draw_lanes,
    get_lane_backend,
    known_lane_backends,
    register_lane_backend,
)
from rosbag_assets.vision.lanes_hough import HoughLaneDetector

BDD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "bdd100k"

# Synthetic road in fractions of (width, height): (x_top, y_top) -> (x_bottom, y_bottom) of the line centres.
LEFT_LINE = ((0.47, 0.47), (0.16, 1.0))
RIGHT_LINE = ((0.53, 0.47), (0.86, 1.0))


def _line_x(line: tuple[tuple[float, float], tuple[float, float]], y: float, w: int, h: int) -> float:
    """Centre x (pixels) of a drawn synthetic line at row y."""
    (xt, yt), (xb, yb) = line
    t = (y / h - yt) / (yb - yt)
    return (xt + t * (xb - xt)) * w


def _draw_stripe(img: np.ndarray, line: tuple, y0: float, y1: float, colour: tuple[int, int, int]) -> None:
    """A painted stripe between rows y0..y1 (fractions) whose width grows with perspective."""
    h, w = img.shape[:2]
    top, bottom = y0 * h, y1 * h
    half_top = 0.0015 * w + 0.012 * w * (y0 - 0.47) / 0.53
    half_bot = 0.0015 * w + 0.012 * w * (y1 - 0.47) / 0.53
    xt, xb = _line_x(line, top, w, h), _line_x(line, bottom, w, h)
    poly = np.array(
        [[xt - half_top, top], [xt + half_top, top], [xb + half_bot, bottom], [xb - half_bot, bottom]]
    )
    cv2.fillPoly(img, [np.round(poly).astype(np.int32)], colour, cv2.LINE_AA)


def synthetic_road(w: int = 1280, h: int = 720, seed: int = 0) -> np.ndarray:
    """Dark asphalt below a grey sky, solid white left line, dashed white right line, mild noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[: int(0.45 * h)] = (200, 190, 170)
    img[int(0.45 * h) :] = (60, 60, 62)
    _draw_stripe(img, LEFT_LINE, 0.48, 1.0, (235, 235, 235))
    for y0 in np.arange(0.48, 1.0, 0.1):  # dashes: 5 % of the height painted, 5 % gap
        _draw_stripe(img, RIGHT_LINE, y0, min(1.0, y0 + 0.05), (235, 235, 235))
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _max_offset(lane: Lane, line: tuple, w: int, h: int) -> float:
    """Largest horizontal distance between a lane polyline and the drawn line centre."""
    return max(abs(x - _line_x(line, y, w, h)) for x, y in lane.points)


def _by_side(lanes: list[Lane]) -> dict[str, Lane]:
    return {lane.side: lane for lane in lanes if lane.side in ("left", "right")}


def test_synthetic_road_left_and_right_on_the_drawn_lines() -> None:
    w, h = 1280, 720
    lanes = HoughLaneDetector().detect(synthetic_road(w, h))
    sides = _by_side(lanes)
    assert set(sides) == {"left", "right"}, lanes
    assert _max_offset(sides["left"], LEFT_LINE, w, h) < 5.0
    assert _max_offset(sides["right"], RIGHT_LINE, w, h) < 5.0
    for lane in sides.values():  # polyline covers most of the painted extent, ordered top to bottom
        ys = [y for _, y in lane.points]
        assert ys == sorted(ys)
        assert ys[-1] - ys[0] > 0.35 * h
        assert 0.0 <= lane.score <= 1.0


@pytest.mark.parametrize("size", [(1920, 1080), (640, 360)])
def test_resolution_independence(size: tuple[int, int]) -> None:
    w, h = size
    sides = _by_side(HoughLaneDetector().detect(synthetic_road(w, h)))
    assert set(sides) == {"left", "right"}
    tol = 5.0 * w / 1280
    assert _max_offset(sides["left"], LEFT_LINE, w, h) < tol
    assert _max_offset(sides["right"], RIGHT_LINE, w, h) < tol


def test_mirrored_road_swaps_sides() -> None:
    w, h = 1280, 720
    sides = _by_side(HoughLaneDetector().detect(cv2.flip(synthetic_road(w, h), 1)))
    assert set(sides) == {"left", "right"}
    # the dashed line (drawn on the right) is now on the left
    mirrored_right = ((1 - RIGHT_LINE[0][0], RIGHT_LINE[0][1]), (1 - RIGHT_LINE[1][0], RIGHT_LINE[1][1]))
    assert _max_offset(sides["left"], mirrored_right, w, h) < 5.0


@pytest.mark.parametrize(
    "image",
    [
        np.full((720, 1280, 3), 110, np.uint8),
        np.repeat(np.linspace(40, 200, 720, dtype=np.uint8)[:, None, None], 1280, axis=1).repeat(3, axis=2),
        np.zeros((360, 640), np.uint8),  # grayscale input is accepted too
    ],
    ids=["grey", "vertical-gradient", "black-gray"],
)
def test_no_markings_no_lanes(image: np.ndarray) -> None:
    assert HoughLaneDetector().detect(image) == []


@pytest.fixture(scope="module")
def bdd_results() -> list[tuple[np.ndarray, list[Lane]]]:
    paths = sorted(BDD_DIR.glob("*.jpg"))
    if not paths:
        pytest.skip(f"no bdd100k frames under {BDD_DIR}")
    det = get_lane_backend()
    return [(img, det.detect(img)) for img in (cv2.imread(str(p)) for p in paths)]


def test_bdd100k_lanes_are_valid(bdd_results: list[tuple[np.ndarray, list[Lane]]]) -> None:
    assert len(bdd_results) == 7
    for img, lanes in bdd_results:
        h, w = img.shape[:2]
        assert len({lane.lane_id for lane in lanes}) == len(lanes)
        assert sum(lane.side == "left" for lane in lanes) <= 1
        assert sum(lane.side == "right" for lane in lanes) <= 1
        for lane in lanes:
            assert lane.side in ("left", "right", "other")
            assert 0.0 <= lane.score <= 1.0
            assert len(lane.points) >= 2
            assert all(0 <= x <= w - 1 and 0 <= y <= h - 1 for x, y in lane.points)
            # ego lines lean the right way: left goes down-left, right goes down-right
            (x0, _), (x1, _) = lane.points[0], lane.points[-1]
            if lane.side == "left":
                assert x1 < x0
            elif lane.side == "right":
                assert x1 > x0


# Centres of painted stripes read off the 1280x720 frames (bright pixel runs on one row).
KNOWN_MARKINGS = [
    ("cc97fab0-f9a08d07.jpg", "right", [(1001.0, 560.0), (1055.0, 600.0)]),  # highway, dashed
    ("cb22c820-f094952f.jpg", "left", [(399.0, 450.0), (185.0, 646.0)]),  # city street, solid
]


@pytest.mark.parametrize(("name", "side", "refs"), KNOWN_MARKINGS, ids=[m[0] for m in KNOWN_MARKINGS])
def test_bdd100k_ego_lane_on_known_marking(
    bdd_results: list[tuple[np.ndarray, list[Lane]]], name: str, side: str, refs: list[tuple[float, float]]
) -> None:
    names = [p.name for p in sorted(BDD_DIR.glob("*.jpg"))]
    _, lanes = bdd_results[names.index(name)]
    lane = _by_side(lanes)[side]
    xs, ys = zip(*lane.points, strict=True)
    for x_ref, y_ref in refs:
        assert min(ys) <= y_ref <= max(ys)
        assert abs(float(np.interp(y_ref, ys, xs)) - x_ref) < 12


def test_draw_lanes_returns_annotated_copy() -> None:
    img = synthetic_road(640, 360)
    before = img.copy()
    lanes = HoughLaneDetector().detect(img)
    out = draw_lanes(img, lanes)
    assert np.array_equal(img, before)
    assert out.shape == img.shape and not np.array_equal(out, img)
    assert np.array_equal(draw_lanes(img, []), img)


def test_registry() -> None:
    det = get_lane_backend("opencv-hough", min_contrast=30.0)
    assert isinstance(det, HoughLaneDetector) and isinstance(det, LaneBackend)
    assert det.min_contrast == 30.0
    assert "v1" in det.name
    with pytest.raises(ValueError, match="opencv-hough"):
        get_lane_backend("no-such-backend")
    with pytest.raises(ValueError, match="already registered"):
        register_lane_backend("opencv-hough", HoughLaneDetector)


def test_register_custom_backend() -> None:
    class Fixed:
        name = "fixed-v0"

        def __init__(self, x: float = 1.0) -> None:
            self.x = x

        def detect(self, image_bgr: np.ndarray) -> list[Lane]:
            return [Lane(0, "left", [(self.x, 0.0), (self.x, 1.0)], 1.0)]

    register_lane_backend("test-fixed", Fixed, overwrite=True)
    assert "test-fixed" in known_lane_backends()
    lanes = get_lane_backend("test-fixed", x=5.0).detect(np.zeros((2, 2, 3), np.uint8))
    assert lanes[0].points[0] == (5.0, 0.0)
