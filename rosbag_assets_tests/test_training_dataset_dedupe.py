"""Near-duplicate removal on real frames: a standing car's copies go, moving or different frames stay."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from training_dataset_data import Drives, noisy_copy, real_images

from rosbag_assets.steps.training_dataset import TrainingDatasetOptions
from rosbag_assets.steps.training_dataset.dedupe import FrameReadError, dedupe_frames, distance, thumbnail

THRESHOLD = TrainingDatasetOptions().dedupe_threshold


def warped(data: bytes, zoom: float = 1.0, shift_px: float = 0.0) -> bytes:
    """The picture a moving car sees next: a zoom towards the horizon and/or a sideways pan."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h * 0.45), 0, zoom)
    m[0, 2] += shift_px
    out = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    return cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def brighter(data: bytes, beta: int) -> bytes:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.imencode(".jpg", cv2.convertScaleAbs(img, alpha=1, beta=beta))[1].tobytes()


def test_distance_separates_standing_from_moving_on_real_frames() -> None:
    images = real_images()
    same, moving = [], []
    for seed, data in enumerate(images.values()):
        base = thumbnail(data)
        same += [distance(base, thumbnail(noisy_copy(data, seed, sigma=s))) for s in (2, 8)]
        same.append(distance(base, thumbnail(brighter(data, 10))))  # an auto-exposure step
        moving += [
            distance(base, thumbnail(warped(data, zoom=1.01))),
            distance(base, thumbnail(warped(data, shift_px=4))),
        ]
    different = [distance(thumbnail(a), thumbnail(b)) for a, b in itertools.combinations(images.values(), 2)]
    assert max(same) < THRESHOLD < min(moving), (max(same), min(moving))
    assert min(different) > 20 * THRESHOLD


def test_a_standing_car_collapses_to_one_frame_per_stop_and_distinct_frames_stay() -> None:
    d = Drives()
    names = sorted(real_images())
    d.add("stop_and_go", names, repeats=6)  # 9 stops of 0.6 s at 10 Hz
    d.add("stop_and_go", names[:3], repeats=2, topic="/camera/rear", start_s=1_700_000_000.05)
    sunk: list[str] = []
    kept, report = dedupe_frames(
        d.frames, d.read_bytes, THRESHOLD, sink=lambda row, data: sunk.append(row["frame_key"])
    )

    assert report.considered == len(d.frames) == 9 * 6 + 3 * 2
    assert report.kept == len(kept) == 9 + 3
    assert report.dropped == 9 * 5 + 3
    assert report.dropped_per_topic == {"/camera/front/image/compressed": 45, "/camera/rear": 3}
    # the first frame of every stop is kept, and every picture is still there on each topic
    front = kept[kept["topic"] == "/camera/front/image/compressed"]
    assert sorted(d.source[(r.drive, r.frame_key)] for r in front.itertuples()) == names
    assert front["dedupe_distance"].dropna().min() > 20 * THRESHOLD
    assert sunk == kept["frame_key"].tolist()


def test_slow_drift_is_measured_against_the_last_kept_frame() -> None:
    name = sorted(real_images())[1]  # a BDD100K frame
    data = real_images()[name]
    d = Drives()
    d.add("creep", [name], repeats=1)
    row = d.rows[0]
    for i in range(1, 16):  # 0.1 % closer each frame: each step alone is below the threshold
        stamp = row["stamp_ns"] + i * 100_000_000
        key = f"frames/drive.mcap/creep/{stamp}.jpg"
        d.rows.append({**row, "stamp_ns": stamp, "frame_key": key})
        d.data[("creep", key)] = warped(data, zoom=1.001**i)
    thumbs = [thumbnail(d.read_bytes(r)) for r in d.rows]
    assert max(distance(a, b) for a, b in itertools.pairwise(thumbs)) < THRESHOLD
    kept, _ = dedupe_frames(d.frames, d.read_bytes, THRESHOLD)
    assert 3 <= len(kept) < len(d.rows)  # the drift adds up and frames are kept along the way
    assert kept["dedupe_distance"].dropna().min() >= THRESHOLD


def test_threshold_none_keeps_everything_and_read_errors_name_the_frame() -> None:
    d = Drives()
    d.add("x", sorted(real_images())[:2], repeats=3)
    kept, report = dedupe_frames(d.frames, d.read_bytes, None)
    assert len(kept) == 6 and report.dropped == 0

    def broken(row: dict) -> bytes:
        if row["stamp_ns"] == d.rows[4]["stamp_ns"]:
            raise OSError("range GET failed")
        return d.read_bytes(row)

    with pytest.raises(
        FrameReadError, match=rf"{d.rows[4]['frame_key']} of drive x \(topic /camera/front.*range GET"
    ):
        dedupe_frames(d.frames, broken, THRESHOLD)
    d.data[("x", d.rows[1]["frame_key"])] = b"not an image"
    with pytest.raises(FrameReadError, match="undecodable"):
        dedupe_frames(d.frames, d.read_bytes, THRESHOLD)


def test_reviewed_frames_are_never_dropped() -> None:
    d = Drives()
    d.add("x", sorted(real_images())[:1], repeats=4)
    frames = d.frames.assign(reviewed=[False, True, False, False])
    kept, report = dedupe_frames(frames, d.read_bytes, THRESHOLD)
    assert kept["frame_key"].tolist() == frames["frame_key"].iloc[:2].tolist()
    assert report.dropped == 2


def test_frames_too_small_for_a_quarter_scale_decode_still_get_a_thumbnail() -> None:
    """A real bag (ros_numpy's test.bag) holds a 2x2 RGBA PNG; OpenCV cannot decode it at 1/4 scale."""
    tiny = cv2.imencode(".png", np.full((2, 2, 4), 200, np.uint8))[1].tobytes()
    with pytest.raises(cv2.error):
        cv2.imdecode(np.frombuffer(tiny, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    assert thumbnail(tiny).shape == (36, 64)
