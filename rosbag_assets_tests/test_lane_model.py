"""The learned lane backend: TwinLiteNet runner, mask -> polylines, ego pair, score on hand-labelled frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rosbag_assets.vision.lane_lines import LaneLineExtractor, TwinLiteLaneBackend
from rosbag_assets.vision.lanes import LaneBackend, get_lane_backend
from rosbag_assets.vision.tusimple import lanes_to_tusimple, read_tusimple, score_image, score_records
from rosbag_assets.vision.twinlitenet import DEFAULT_MODEL, TwinLiteNet, TwinLiteNetError

BDD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "bdd100k"
LABELS = Path(__file__).resolve().parent / "fixtures" / "lanes" / "bdd100k_tusimple.jsonl"
# frames whose hand labels have a marking on each side of the ego lane
EGO_PAIR_FRAMES = ["caeb782d", "cb22c820", "cb5903ec", "cc73b69d", "cc97fab0"]


@pytest.fixture(scope="module")
def labelled() -> list[tuple[dict, np.ndarray]]:
    records = read_tusimple(LABELS)
    frames = [(rec, cv2.imread(str(BDD_DIR / rec["raw_file"]))) for rec in records]
    if any(img is None for _, img in frames):
        pytest.skip(f"shared BDD100K frames missing in {BDD_DIR}")
    return frames


@pytest.fixture(scope="module")
def backend() -> TwinLiteLaneBackend:
    return TwinLiteLaneBackend(batch_size=4)


@pytest.fixture(scope="module")
def results(labelled, backend):
    found = backend.detect_batch([img for _, img in labelled])
    return {rec["raw_file"][:8]: res for (rec, _), res in zip(labelled, found, strict=True)}


# -- runner -------------------------------------------------------------------------------------------
def test_model_ships_with_the_package_and_its_licence():
    assert DEFAULT_MODEL.is_file() and DEFAULT_MODEL.stat().st_size > 1_000_000
    licence = (DEFAULT_MODEL.parent / "twinlitenet_bdd100k.LICENSE").read_text()
    assert licence.startswith("MIT License") and "Chế Quang Huy" in licence
    assert "sha256" in (DEFAULT_MODEL.parent / "twinlitenet_bdd100k.ORIGIN.md").read_text()


def test_preprocess_is_the_model_cards_recipe_for_any_frame_size():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (540, 960, 3), np.uint8), rng.integers(0, 256, (720, 1280, 3), np.uint8)]
    batch = TwinLiteNet.preprocess(frames)
    want = np.stack([cv2.resize(f, (640, 360))[:, :, ::-1].transpose(2, 0, 1) for f in frames]) / 255.0
    assert batch.shape == (2, 3, 360, 640) and batch.dtype == np.float32
    assert np.abs(batch - want).max() < 1e-6
    grey = TwinLiteNet.preprocess([frames[0][:, :, 0]])
    assert np.allclose(grey[0, 0], grey[0, 2])  # grey frames become three equal channels


def test_runner_batches_give_the_same_masks_and_scale_to_each_frame(labelled):
    imgs = [labelled[0][1], cv2.resize(labelled[1][1], (960, 540)), labelled[2][1]]
    one = TwinLiteNet(batch_size=8).run(imgs)
    two = TwinLiteNet(batch_size=2).run(imgs)
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a.lanes, b.lanes) and np.array_equal(a.drivable, b.drivable)
        assert a.lanes.shape == a.drivable.shape == (360, 640) and a.lanes.dtype == bool
    assert one[1].image_size == (960, 540) and one[1].scale == (1.5, 1.5)
    lanes_full, drivable_full = one[0].at_image_size()
    assert lanes_full.shape == (720, 1280) and lanes_full.any()
    assert drivable_full.shape == (720, 1280) and drivable_full.mean() == pytest.approx(
        one[0].drivable.mean(), abs=0.01
    )


def test_runner_errors_say_what_is_wrong(tmp_path: Path):
    with pytest.raises(TwinLiteNetError, match="not found"):
        TwinLiteNet(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(TwinLiteNetError, match="cannot load"):
        TwinLiteNet(tmp_path / "junk.onnx")
    with pytest.raises(TwinLiteNetError, match="lacks providers"):
        TwinLiteNet(providers=["NoSuchExecutionProvider"])
    with pytest.raises(TwinLiteNetError, match="frame 1"):
        TwinLiteNet.preprocess([np.zeros((4, 4, 3), np.uint8), np.zeros((0,), np.uint8)])


def test_registered_as_a_lane_backend():
    backend = get_lane_backend("twinlitenet", batch_size=2)
    assert isinstance(backend, TwinLiteLaneBackend) and isinstance(backend, LaneBackend)
    assert backend.name == "twinlitenet-bdd100k-v1"


# -- polylines on real frames -------------------------------------------------------------------------
@pytest.mark.parametrize("frame", EGO_PAIR_FRAMES)
def test_ego_lines_are_found_on_the_hand_labelled_markings(frame, labelled, results):
    rec = next(r for r, _ in labelled if r["raw_file"].startswith(frame))
    lanes = results[frame].lanes
    for side in ("left", "right"):
        ego = [ln for ln in lanes if ln.side == side]
        assert len(ego) == 1, f"{frame}: {side} ego line missing"
        xs = lanes_to_tusimple(ego, rec["h_samples"])
        best = max(score_image(xs, [g], rec["h_samples"]).accuracy for g in rec["lanes"])
        assert best >= 0.85, f"{frame}: {side} line off the labelled paint ({best:.2f})"


def test_polylines_are_well_formed(results):
    for frame, res in results.items():
        w, h = res.image_size
        bottoms = []
        for i, lane in enumerate(res.lanes):
            pts = np.asarray(lane.points)
            assert lane.lane_id == i and 0.0 <= lane.score <= 1.0
            assert np.all(np.diff(pts[:, 1]) > 0), f"{frame}: points not top to bottom"
            assert pts[:, 0].min() >= -0.5 and pts[:, 0].max() <= w - 0.5 and pts[:, 1].max() <= h - 0.5
            bottoms.append(np.polyval(np.polyfit(pts[-5:, 1], pts[-5:, 0], 1), h))
        assert bottoms == sorted(bottoms), f"{frame}: lanes not ordered left to right"
        assert (
            [ln.side for ln in res.lanes].count("left") <= 1 >= [ln.side for ln in res.lanes].count("right")
        )
        assert 0.02 < res.drivable_fraction < 0.6


def test_drivable_area_covers_the_ego_lane(results):
    for frame in EGO_PAIR_FRAMES:
        res = results[frame]
        left, right = (next(ln for ln in res.lanes if ln.side == s) for s in ("left", "right"))
        y = (max(left.points[0][1], right.points[0][1]) + min(left.points[-1][1], right.points[-1][1])) / 2
        xl, xr = (np.interp(y, [p[1] for p in ln.points], [p[0] for p in ln.points]) for ln in (left, right))
        sx, sy = res.scale
        assert res.drivable[int(y / sy), int((xl + xr) / 2 / sx)], f"{frame}: ego lane not drivable"


def test_detect_equals_detect_batch(labelled, backend, results):
    rec, img = labelled[-1]
    assert backend.detect(img) == results[rec["raw_file"][:8]].lanes


def test_fixture_score_meets_the_targets(labelled, results):
    records = [r for r, _ in labelled]
    preds = {
        r["raw_file"]: lanes_to_tusimple(results[r["raw_file"][:8]].lanes, r["h_samples"]) for r in records
    }
    score = score_records(records, preds)
    assert score["accuracy"] >= 0.85 and score["fp"] <= 0.2 and score["fn"] <= 0.2, score


@pytest.mark.slow
def test_learned_backend_beats_the_classical_one_on_the_fixture(labelled, results):
    hough = get_lane_backend("opencv-hough")
    records = [r for r, _ in labelled]
    ours = {
        r["raw_file"]: lanes_to_tusimple(results[r["raw_file"][:8]].lanes, r["h_samples"]) for r in records
    }
    theirs = {r["raw_file"]: lanes_to_tusimple(hough.detect(img), r["h_samples"]) for r, img in labelled}
    a, b = score_records(records, ours), score_records(records, theirs)
    assert a["accuracy"] > b["accuracy"] and a["fn"] < b["fn"], (a, b)


# -- extraction on synthetic masks --------------------------------------------------------------------
VP = (320.0, 150.0)


def _line(
    mask: np.ndarray, x_bottom: float, y_top: float = 160, y_bottom: float = 359, width: int = 3
) -> None:
    """Paint a straight line through the vanishing point hitting the bottom row at ``x_bottom``."""
    t = np.array([y_top, y_bottom])
    xs = VP[0] + (x_bottom - VP[0]) * (t - VP[1]) / (359 - VP[1])
    cv2.line(mask, (int(xs[0]), int(t[0])), (int(xs[1]), int(t[1])), 1, width)


def _road() -> np.ndarray:
    drivable = np.zeros((360, 640), np.uint8)
    cv2.fillPoly(drivable, [np.array([[-400, 359], [300, 152], [340, 152], [1040, 359]], np.int32)], 1)
    return drivable.astype(bool)


def test_ego_pair_neighbours_and_order_on_a_synthetic_road():
    mask = np.zeros((360, 640), np.uint8)
    for xb in (-250, 100, 560, 900, 1200):
        _line(mask, xb)
    lanes = LaneLineExtractor(neighbours=None).extract(mask.astype(bool), _road(), (2.0, 2.0))
    assert [ln.side for ln in lanes] == ["other", "left", "right", "other", "other"]
    assert all(pts[1] <= 719.5 for ln in lanes for pts in ln.points)  # scaled to the 1280x720 frame
    kept = LaneLineExtractor(neighbours=1).extract(mask.astype(bool), _road())
    assert [ln.side for ln in kept] == ["other", "left", "right", "other"]  # the farthest right dropped
    only_pair = LaneLineExtractor(neighbours=0).extract(mask.astype(bool), _road())
    assert [ln.side for ln in only_pair] == ["left", "right"]


def test_dashes_join_double_lines_merge_and_transverse_marks_go():
    mask = np.zeros((360, 640), np.uint8)
    for y0 in range(170, 350, 40):  # a dashed left line
        _line(mask, 100, y0, y0 + 20)
    _line(mask, 540, width=2)  # a double right line: two strokes 8 px apart at the bottom
    _line(mask, 552, width=2)
    cv2.line(mask, (350, 300), (600, 310), 1, 3)  # a stop-line-like mark across the lane
    lanes = LaneLineExtractor().extract(mask.astype(bool), _road())
    assert [ln.side for ln in lanes] == ["left", "right"]
    left, right = lanes
    assert left.points[0][1] < 175 and left.points[-1][1] > 350  # one polyline over all dashes
    x_bottom = np.interp(340, [p[1] for p in right.points], [p[0] for p in right.points])
    want = VP[0] + (546 - VP[0]) * (340 - VP[1]) / (359 - VP[1])
    assert abs(x_bottom - want) < 4  # between the two strokes


def test_lines_are_extended_down_over_the_drivable_area_only():
    mask = np.zeros((360, 640), np.uint8)
    _line(mask, 100, 160, 250)  # paint stops at row 250, the road goes on to 359
    _line(mask, 560, 160, 250)
    road = _road()
    lanes = LaneLineExtractor().extract(mask.astype(bool), road)
    assert all(ln.points[-1][1] > 350 for ln in lanes)
    road[300:] = False  # the bonnet covers the bottom rows
    lanes = LaneLineExtractor().extract(mask.astype(bool), road)
    assert all(295 < ln.points[-1][1] < 310 for ln in lanes)
    lanes = LaneLineExtractor(extend_down=False).extract(mask.astype(bool), road)
    assert all(ln.points[-1][1] <= 252 for ln in lanes)  # the painted end (3 px thick line)


def test_no_paint_no_lanes(backend):
    assert LaneLineExtractor().extract(np.zeros((360, 640), bool), np.zeros((360, 640), bool)) == []
    # a featureless grey frame: no road, no lines (and small frames are fine)
    flat = backend.detect_batch([np.full((720, 1280, 3), 90, np.uint8), np.zeros((200, 300, 3), np.uint8)])
    assert [r.lanes for r in flat] == [[], []] and flat[0].drivable_fraction == 0.0
