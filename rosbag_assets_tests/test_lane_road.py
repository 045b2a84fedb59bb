"""Drivable-mask storage and road placement of object boxes (rosbag_assets.vision.drivable / .road)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rosbag_assets.vision.drivable import (
    DrivableMaskError,
    decode_mask,
    draw_road,
    drivable_fraction,
    encode_mask,
    resize_mask,
)
from rosbag_assets.vision.lanes import Lane
from rosbag_assets.vision.road import lane_x_at, place_boxes

BDD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "bdd100k"


def _frame(name: str) -> np.ndarray:
    path = BDD_DIR / f"{name}.jpg"
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return cv2.imread(str(path))


# -- drivable masks -----------------------------------------------------------------------------------
def test_mask_round_trip_is_lossless_for_odd_shapes_and_patterns():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 13), (360, 640), (241, 3)]:
        mask = rng.random(shape) > 0.5
        assert np.array_equal(decode_mask(encode_mask(mask)), mask)
    blank = np.zeros((5, 9), bool)
    assert np.array_equal(decode_mask(encode_mask(blank)), blank)
    assert np.array_equal(decode_mask(encode_mask(~blank)), ~blank)


def test_encoded_mask_is_a_small_1bit_png():
    mask = np.zeros((360, 640), bool)
    pts = np.array([[0, 359], [300, 150], [340, 150], [639, 359]], np.int32)
    cv2.fillPoly(mask.view(np.uint8), [pts], 1)
    data = encode_mask(mask)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[24] == 1  # IHDR bit depth
    assert len(data) < 2000  # a road-shaped mask is a few hundred bytes, not 230 KB raw
    assert drivable_fraction(mask) == pytest.approx(mask.mean())


def test_bad_inputs_raise_named_errors():
    with pytest.raises(DrivableMaskError):
        encode_mask(np.zeros((2, 2, 3), bool))
    with pytest.raises(DrivableMaskError, match="PNG signature"):
        decode_mask(b"GIF89a....")
    with pytest.raises(DrivableMaskError, match="undecodable"):
        decode_mask(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)


def test_resize_mask_stays_binary_and_draw_road_tints_only_the_mask():
    mask = np.zeros((36, 64), bool)
    mask[20:, 10:50] = True
    big = resize_mask(mask, (128, 72))
    assert big.dtype == bool and big.shape == (72, 128) and big[50, 60] and not big[10, 60]
    img = np.full((72, 128, 3), 100, np.uint8)
    lanes = [Lane(0, "left", [(30.0, 40.0), (20.0, 70.0)], 0.9)]
    out = draw_road(img, lanes, mask)
    assert out.shape == img.shape and not np.array_equal(out[60, 80], img[60, 80])  # tinted road
    assert np.array_equal(out[5, 120], img[5, 120])  # untouched sky
    assert tuple(out[55, 25]) == (0, 0, 255)  # left lane drawn red
    assert np.array_equal(img, np.full((72, 128, 3), 100, np.uint8))  # input not modified


# -- placement ----------------------------------------------------------------------------------------
EGO = [
    Lane(0, "left", [(600.0, 300.0), (200.0, 700.0)], 0.9),
    Lane(1, "right", [(680.0, 300.0), (1080.0, 700.0)], 0.9),
]


def test_lateral_position_is_minus_one_to_one_between_the_ego_lines():
    drivable = np.ones((72, 128), bool)
    # at y=500 the lines are at x=400 and x=880
    boxes = [(380, 400, 420, 500), (620, 400, 660, 500), (860, 400, 900, 500), (1000, 400, 1100, 500)]
    p = place_boxes(boxes, drivable, EGO, (1280, 720))
    assert [round(q.lateral, 3) for q in p] == [-1.0, 0.0, 1.0, round(2 * (1050 - 400) / 480 - 1, 3)]
    assert [q.in_ego_lane for q in p] == [True, True, True, False]
    assert p[1].contact == (640.0, 500.0)
    # above the polylines' top the lines are continued along their first segment
    assert lane_x_at(EGO[0], 200) == pytest.approx(700.0)


def test_no_ego_pair_means_no_lane_position_but_still_a_road_fraction():
    drivable = np.zeros((72, 128), bool)
    drivable[50:, :64] = True  # left half of the bottom of the frame
    p = place_boxes([(100, 400, 500, 520), (700, 400, 1100, 520)], drivable, EGO[:1], (1280, 720))
    assert [q.lateral for q in p] == [None, None] and [q.in_ego_lane for q in p] == [None, None]
    assert p[0].on_drivable == 1.0 and p[1].on_drivable == 0.0
    # a box cut off by the bottom of the frame samples the last rows
    assert place_boxes([(0, 600, 200, 720)], drivable, [], (1280, 720))[0].on_drivable == 1.0


@pytest.mark.slow
def test_real_frame_car_ahead_is_in_the_ego_lane_and_the_suv_is_not():
    from rosbag_assets.vision.lane_lines import TwinLiteLaneBackend

    backend = TwinLiteLaneBackend()
    highway, snow = backend.detect_batch([_frame("cc97fab0-f9a08d07"), _frame("caeb782d-4a20b7c4")])
    # hand-drawn boxes around vehicles in the frames
    ahead, suv = place_boxes(
        [(597, 275, 643, 311), (850, 262, 968, 334)], highway.drivable, highway.lanes, highway.image_size
    )
    assert ahead.in_ego_lane and abs(ahead.lateral) < 0.4 and ahead.on_drivable > 0.8
    assert not suv.in_ego_lane and suv.lateral > 1.5  # two lanes to the right
    ahead, parked = place_boxes(
        [(632, 279, 662, 310), (948, 272, 1280, 405)], snow.drivable, snow.lanes, snow.image_size
    )
    assert ahead.in_ego_lane and ahead.on_drivable > 0.8
    assert not parked.in_ego_lane and parked.lateral > 1.0 and parked.on_drivable < 0.3  # on the snow
