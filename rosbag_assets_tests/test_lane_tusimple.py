"""The TuSimple lane metric (rosbag_assets.vision.tusimple) on hand-made cases with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rosbag_assets.vision.lanes import Lane
from rosbag_assets.vision.tusimple import (
    TuSimpleError,
    evaluate_lanes,
    lanes_to_tusimple,
    read_tusimple,
    score_image,
)

H = list(range(300, 711, 10))  # 42 rows


def lane(x_top: float, x_bottom: float, y0: int = 300, y1: int = 710) -> list[float]:
    """A straight lane's TuSimple xs, labelled on rows y0..y1 only."""
    ys = np.asarray(H, float)
    xs = x_top + (x_bottom - x_top) * (ys - 300) / 410
    return [float(x) if y0 <= y <= y1 else -2.0 for x, y in zip(xs, ys, strict=True)]


def vertical(x: float, y0: int = 300, y1: int = 710) -> list[float]:
    return [x if y0 <= y <= y1 else -2.0 for y in H]


GT = [lane(600, 300), lane(680, 1000)]


def test_perfect_prediction_scores_one_with_no_errors():
    s = score_image(GT, GT, H)
    assert (s.accuracy, s.fp, s.fn, s.matched) == (1.0, 0.0, 0.0, 2)


def test_shift_beyond_threshold_misses_and_within_threshold_hits():
    # vertical lanes: threshold is exactly 20 px at 1280 width
    gt = [vertical(400)]
    assert score_image([vertical(419)], gt, H).accuracy == 1.0
    far = score_image([vertical(421)], gt, H)
    assert (far.accuracy, far.fp, far.fn) == (0.0, 1.0, 1.0)


def test_threshold_scales_with_image_width_and_lane_angle():
    gt = [vertical(200)]
    assert score_image([vertical(215)], gt, H, width=640).accuracy == 0.0  # 10 px at 640
    assert score_image([vertical(209)], gt, H, width=640).accuracy == 1.0
    # a lane leaning 45 degrees gets 20 / cos(45) = 28 px
    leaning = [lane(300, 710)]
    assert score_image([[x + 27 for x in leaning[0]]], leaning, H).accuracy == 1.0
    assert score_image([[x + 29 for x in leaning[0]]], leaning, H).accuracy == 0.0


def test_missing_lane_is_a_false_negative():
    s = score_image([GT[0]], GT, H)
    assert s.accuracy == pytest.approx(0.5)
    assert (s.fp, s.fn, s.matched) == (0.0, 0.5, 1)


def test_extra_lane_is_a_false_positive():
    s = score_image([*GT, vertical(100)], GT, H)
    assert s.accuracy == 1.0
    assert s.fp == pytest.approx(1 / 3)
    assert s.fn == 0.0


def test_lane_matched_only_with_85_percent_of_its_points():
    gt = [vertical(500)]
    good = vertical(500)
    for i in range(6):  # 36/42 = 0.857 correct
        good[i] = 900.0
    assert score_image([good], gt, H).matched == 1
    bad = list(good)
    bad[6] = 900.0  # 35/42 = 0.833
    assert score_image([bad], gt, H).matched == 0


def test_labelled_rows_only_by_default_official_counts_both_missing_rows():
    gt = [vertical(500, 600, 650)]  # a short ground-truth lane: 6 labelled rows of 42
    stub = [vertical(500, 300, 310)]  # a prediction that never touches those rows
    assert score_image(stub, gt, H).matched == 0
    assert score_image(stub, gt, H, official=True).accuracy == pytest.approx(34 / 42)
    # official LaneEval: 34 rows where both are -2 count as correct (34/42 = 0.81), still unmatched,
    # but a prediction covering only half the labelled rows passes officially and fails here
    half = [vertical(500, 600, 620)]
    assert score_image(half, gt, H, official=True).matched == 1
    assert score_image(half, gt, H).matched == 0


def test_too_many_predictions_score_zero_and_more_than_four_lanes_forgive_the_worst():
    many = [vertical(100.0 * i) for i in range(1, 6)]
    s = score_image(many, [vertical(100)], H)
    assert (s.accuracy, s.fn) == (0.0, 1.0)
    gt5 = [vertical(100.0 * i) for i in range(1, 6)]
    s = score_image(gt5[:4], gt5, H)  # one of five missed: forgiven
    assert (s.accuracy, s.fn, s.fp) == (1.0, 0.0, 0.0)


def test_wrong_length_lanes_are_rejected():
    with pytest.raises(TuSimpleError):
        score_image([[1.0, 2.0]], GT, H)


def test_lanes_to_tusimple_interpolates_inside_the_polyline_only():
    poly = Lane(lane_id=0, side="left", points=[(600.0, 400.0), (400.0, 600.0)], score=1.0)
    xs = lanes_to_tusimple([poly], [390, 400, 500, 600, 610])[0]
    assert xs == [-2.0, 600.0, 500.0, 400.0, -2.0]
    # bottom-to-top point order and plain point lists work too
    assert lanes_to_tusimple([[(400.0, 600.0), (600.0, 400.0)]], [500])[0] == [500.0]


def test_evaluate_lanes_reads_labels_and_images_and_scores(tmp_path: Path):
    img = np.zeros((720, 1280, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    rec = {"raw_file": "a.png", "lanes": [lane(600, 300)], "h_samples": H}
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps(rec) + "\n")

    def perfect(image: np.ndarray) -> list[Lane]:
        assert image.shape == (720, 1280, 3)
        return [Lane(0, "left", [(600.0, 300.0), (300.0, 710.0)], 1.0)]

    result = evaluate_lanes(labels, perfect)
    assert (result["images"], result["accuracy"], result["fp"], result["fn"]) == (1, 1.0, 0.0, 0.0)
    nothing = evaluate_lanes(labels, lambda image: [])
    assert (nothing["accuracy"], nothing["fn"]) == (0.0, 1.0)


def test_malformed_label_files_name_the_line(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"raw_file": "a.png", "lanes": []}\n')
    with pytest.raises(TuSimpleError, match=r"bad.jsonl:1: missing \['h_samples'\]"):
        read_tusimple(bad)
    bad.write_text("not json\n")
    with pytest.raises(TuSimpleError, match=r"bad\.jsonl:1: not JSON"):
        read_tusimple(bad)
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({"raw_file": "missing.png", "lanes": [], "h_samples": H}) + "\n")
    with pytest.raises(TuSimpleError, match="cannot read image"):
        evaluate_lanes(ok, lambda image: [])
