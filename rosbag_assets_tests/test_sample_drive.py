"""Tests for the rendered sample drive (ROS1 + ROS2/MCAP bags of the same scene)."""

from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from rosbag_assets.demo import sample_drive

SECONDS, HZ, WIDTH, HEIGHT = 1.0, 10.0, 320, 180
N_MESSAGES = round(SECONDS * HZ)
PERIOD_NS = round(1e9 / HZ)
YOLO_MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "models" / "yolo11n_int8.tflite"


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drive_dir = tmp_path_factory.mktemp("drive")
    paths = sample_drive.write_sample_drive(
        drive_dir, seconds=SECONDS, hz=HZ, width=WIDTH, height=HEIGHT, seed=0
    )
    assert paths == [drive_dir / "front_ros1.bag", drive_dir / "front_ros2"]
    return drive_dir


def read_bag(path: Path) -> dict[str, list[tuple[int, Any]]]:
    """topic -> [(log time ns, message)] in log-time order."""
    out: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([path]) as reader:
        for conn, log_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((log_ns, reader.deserialize(raw, conn.msgtype)))
    return out


@pytest.fixture(scope="module")
def bags(drive: Path) -> dict[str, dict[str, list[tuple[int, Any]]]]:
    return {name: read_bag(drive / name) for name in ("front_ros1.bag", "front_ros2")}


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def raw_image(msg: Any) -> np.ndarray:
    assert msg.encoding == "bgr8"
    assert msg.step == msg.width * 3
    return np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)


def test_drive_holds_exactly_the_two_bags(drive: Path) -> None:
    assert sorted(p.name for p in drive.iterdir()) == ["front_ros1.bag", "front_ros2"]
    assert (drive / "front_ros1.bag").read_bytes()[:13] == b"#ROSBAG V2.0\n"
    ros2 = drive / "front_ros2"
    assert (ros2 / "metadata.yaml").is_file()
    assert [p.suffix for p in ros2.iterdir() if p.name != "metadata.yaml"] == [".mcap"]


@pytest.mark.parametrize("name", ["front_ros1.bag", "front_ros2"])
def test_topics_types_and_counts(drive: Path, name: str) -> None:
    with AnyReader([drive / name]) as reader:
        found = {conn.topic: (conn.msgtype, conn.msgcount) for conn in reader.connections}
    for topic in (sample_drive.FRONT_TOPIC, sample_drive.SIDE_TOPIC, sample_drive.SPEED_TOPIC):
        assert found[topic] == (sample_drive.TOPICS[topic], N_MESSAGES)
    assert found == {topic: (msgtype, N_MESSAGES) for topic, msgtype in sample_drive.TOPICS.items()}


@pytest.mark.parametrize("name", ["front_ros1.bag", "front_ros2"])
def test_raw_images_have_content_and_motion(bags: dict, name: str) -> None:
    frames = [raw_image(msg) for _, msg in bags[name][sample_drive.FRONT_TOPIC]]
    assert len(frames) == N_MESSAGES
    for frame in frames:
        assert frame.shape == (HEIGHT, WIDTH, 3)
        assert frame.std() > 20.0
    for prev, curr in itertools.pairwise(frames):
        assert np.abs(prev.astype(np.int16) - curr.astype(np.int16)).mean() > 0.5
    assert {msg.header.frame_id for _, msg in bags[name][sample_drive.FRONT_TOPIC]} == {"camera_front"}


@pytest.mark.parametrize("name", ["front_ros1.bag", "front_ros2"])
def test_compressed_topic_is_decodable_jpeg(bags: dict, name: str) -> None:
    frames = []
    for _, msg in bags[name][sample_drive.SIDE_TOPIC]:
        assert msg.format == "jpeg"
        frame = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert frame is not None
        assert frame.shape == (HEIGHT, WIDTH, 3)
        assert frame.std() > 20.0
        frames.append(frame)
    assert np.abs(frames[0].astype(np.int16) - frames[-1].astype(np.int16)).mean() > 0.5


@pytest.mark.parametrize("name", ["front_ros1.bag", "front_ros2"])
def test_stamps_start_at_epoch_and_step_by_period(bags: dict, name: str) -> None:
    for topic in sample_drive.TOPICS:
        records = bags[name][topic]
        stamps = np.array([stamp_ns(msg) for _, msg in records], dtype=np.int64)
        assert stamps[0] == sample_drive.EPOCH_NS
        assert np.all(np.abs(np.diff(stamps) - PERIOD_NS) <= 1)
        latency = np.array([log_ns for log_ns, _ in records], dtype=np.int64) - stamps
        assert np.all(latency >= 0)
        assert np.all(latency < PERIOD_NS)


def test_ros1_and_ros2_hold_the_same_drive(bags: dict) -> None:
    ros1, ros2 = bags["front_ros1.bag"], bags["front_ros2"]
    for topic in sample_drive.TOPICS:
        assert [stamp_ns(m) for _, m in ros1[topic]] == [stamp_ns(m) for _, m in ros2[topic]]
        assert [t for t, _ in ros1[topic]] == [t for t, _ in ros2[topic]]
    for (_, a), (_, b) in zip(ros1[sample_drive.FRONT_TOPIC], ros2[sample_drive.FRONT_TOPIC], strict=True):
        assert np.array_equal(raw_image(a), raw_image(b))
    speeds = [m.twist.linear.x for _, m in ros2[sample_drive.SPEED_TOPIC]]
    assert speeds == [m.twist.linear.x for _, m in ros1[sample_drive.SPEED_TOPIC]]
    assert all(5.0 < v < 12.0 for v in speeds)


def test_rendering_is_deterministic_per_seed() -> None:
    a = sample_drive.render_frames(0.5, sample_drive.build_scene(0), WIDTH, HEIGHT)
    b = sample_drive.render_frames(0.5, sample_drive.build_scene(0), WIDTH, HEIGHT)
    c = sample_drive.render_frames(0.5, sample_drive.build_scene(1), WIDTH, HEIGHT)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_front_view_has_lane_paint_and_road() -> None:
    front, _ = sample_drive.render_frames(0.0, sample_drive.build_scene(0), 960, 540)
    bottom = front[int(540 * 0.8) :, : 960 // 2]  # lower-left: asphalt and the solid left edge line
    gray = cv2.cvtColor(bottom, cv2.COLOR_BGR2GRAY)
    assert (gray > 200).mean() > 0.01  # white paint
    assert ((gray > 60) & (gray < 120)).mean() > 0.3  # grey asphalt
    sky = front[:20]
    assert sky[..., 0].mean() > sky[..., 2].mean() + 40  # blue sky (BGR)


def test_rewrite_replaces_bags_and_leaves_no_temporaries(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"seconds": 0.3, "hz": 10.0, "width": 96, "height": 64}
    first = sample_drive.write_sample_drive(tmp_path, **kwargs)
    second = sample_drive.write_sample_drive(tmp_path, **kwargs, seed=3)
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front_ros1.bag", "front_ros2"]
    with AnyReader([second[1]]) as reader:
        assert sum(conn.msgcount for conn in reader.connections) == 3 * len(sample_drive.TOPICS)


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sample_drive.write_sample_drive(tmp_path, seconds=0.0)
    with pytest.raises(ValueError):
        sample_drive.write_sample_drive(tmp_path, width=8)
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_written_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "cli_drive"
    args = [str(out_dir), "--seconds", "0.2", "--hz", "10", "--width", "96", "--height", "64"]
    assert sample_drive.main(args) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out_dir / "front_ros1.bag"), str(out_dir / "front_ros2")]
    assert all(Path(p).exists() for p in printed)


@pytest.mark.slow
@pytest.mark.skipif(
    not YOLO_MODEL.is_file() or importlib.util.find_spec("ai_edge_litert") is None,
    reason="needs the yolo11n int8 TFLite model and ai-edge-litert",
)
def test_yolo_finds_bus_and_people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_AUTOINSTALL", "0")
    monkeypatch.setenv("YOLO_CONFIG_DIR", os.environ.get("YOLO_CONFIG_DIR", str(tmp_path)))
    from ultralytics import YOLO

    model = YOLO(str(YOLO_MODEL), task="detect")
    front, side = sample_drive.render_frames(2.0, sample_drive.build_scene(0), 960, 540)
    found = []
    for frame in (front, side):
        result = model.predict(frame, imgsz=640, conf=0.4, verbose=False)[0]
        found.append({result.names[int(c)] for c in result.boxes.cls})
    assert {"bus", "person"} <= found[0]
    assert {"bus", "person"} <= found[1]
