"""raw_bags and extracted_frames jobs on the real third-party bags and on bags written here."""

import io
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from bagwriting import make_compressed_image, make_image, write_bag
from conftest import ROS1_BAGS, ROS2_BAGS, shared
from support import Log

from rosbag_assets.io import publish
from rosbag_assets.io.bags import BagReadError
from rosbag_assets.io.frames import read_indexed_bytes
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.extracted_frames import IncompleteDriveError, run_extracted_frames
from rosbag_assets.steps.raw_bags import run_raw_bags


def stored(row: pd.Series) -> bytes:
    """A frame's bytes straight from the index: `path` (a shard or a file), `offset` and `bytes`."""
    return read_indexed_bytes(row.to_dict())


def stored_image(row: pd.Series, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(stored(row), np.uint8), flags)


def _read(out: LocalStorage, drive: str, asset: str, name: str) -> pd.DataFrame:
    version, _ = publish.require_current(out, f"{drive}/{asset}")
    return pd.read_parquet(io.BytesIO(out.read_bytes(version.key(name))))


@pytest.fixture(scope="module")
def real_drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every real bag from ../shared/data plus the bad inputs a real landing folder collects."""
    shared("bags")
    drive = tmp_path_factory.mktemp("landing") / "real"
    drive.mkdir()
    for bag in ROS1_BAGS.glob("*.bag"):
        shutil.copy(bag, drive / bag.name)
    (drive / "ros2").mkdir()
    shutil.copy(ROS2_BAGS / "turtlesim_no_metadata.db3", drive / "ros2" / "turtlesim_no_metadata.db3")
    (drive / "zero.bag").write_bytes(b"")
    (drive / "truncated.bag").write_bytes((ROS1_BAGS / "tiny_svo.bag").read_bytes()[:100_000])
    (drive / "notes.txt").write_text("not a bag")
    return drive


@pytest.fixture(scope="module")
def real_outputs(real_drive: Path, tmp_path_factory: pytest.TempPathFactory):
    out = LocalStorage(tmp_path_factory.mktemp("out"))
    log = Log()
    inv = run_raw_bags(drive="real", source=LocalStorage(real_drive), output=out, log=log)
    # a drive with an unreadable and a partly readable bag fails, naming both, and publishes nothing ...
    with pytest.raises(IncompleteDriveError, match=r"(?s)2 bag\(s\).*truncated\.bag.*zero\.bag") as err:
        run_extracted_frames(drive="real", source=LocalStorage(real_drive), output=out, log=log)
    assert "allow_partial" in str(err.value) and publish.current(out, "real/extracted_frames") is None
    assert out.list_dirs("real/extracted_frames/versions") == []  # its draft is gone too
    # ... unless the user allows a partial drive
    ext = run_extracted_frames(
        drive="real", source=LocalStorage(real_drive), output=out, options={"allow_partial": True}, log=log
    )
    return out, inv, ext, log


def test_inventory_of_real_bags(real_outputs) -> None:
    out, inv, _, log = real_outputs
    bags = _read(out, "real", "raw_bags", "bags.parquet").set_index("bag")
    topics = _read(out, "real", "raw_bags", "topics.parquet")
    count = topics.groupby(["bag", "topic"])["count"].sum()
    assert count["tiny_svo.bag", "/camera/image_raw"] == 10
    assert count["get_images_tiny.bag", "/dvs/image_raw"] == 4
    assert count["get_images_tiny.bag", "/dvs1/image_raw"] == 3
    assert count["rosbagjs_example-bz2.bag", "/turtle1/pose"] == 1344
    assert count["rosbagjs_example-lz4.bag", "/turtle1/pose"] == 1344
    assert count["rosbagjs_example-unsorted-chunks.bag", "foo"] == 3
    assert count["ros2/turtlesim_no_metadata.db3", "/turtle1/pose"] == 1173
    assert bags.loc["ros2/turtlesim_no_metadata.db3", "format"] == "ros2-sqlite3"
    assert bags.loc["tiny_svo.bag", "format"] == "ros1"
    assert bags.loc["tiny_svo.bag", "duration_s"] == pytest.approx(0.5395, abs=1e-3)
    assert bags.loc["rosbagjs_no-messages.bag", "messages"] == 0
    # bad input: named, with a reason, never fatal for the rest of the drive
    assert not bags.loc["zero.bag", "ok"] and "zero-length" in bags.loc["zero.bag", "error"]
    # a bag cut short is read by recovery up to the cut, and recorded as such
    cut = bags.loc["truncated.bag"]
    assert cut["ok"] and cut["read_mode"] == "reindexed" and not cut["complete"]
    assert 0 < cut["stop_offset"] <= 100_000 and "truncated.bag" in cut["recovery"]
    assert bags.loc["tiny_svo.bag", "read_mode"] == "normal" and bags.loc["tiny_svo.bag", "complete"]
    assert any("notes.txt" in w and "not a bag" in w for w in log.warnings)
    assert any("rosbagjs_no-messages.bag" in w and "no messages" in w for w in log.warnings)
    assert any("/turtle1/cmd_vel" in w and "no messages" in w for w in log.warnings)
    assert inv.metadata["bags"]["raw_value"] == 12
    assert inv.metadata["unreadable_bags"]["raw_value"] == 1
    assert inv.metadata["partly_readable_bags"]["raw_value"] == 1
    (check,) = inv.checks
    assert check.name == "all_bags_readable" and not check.passed
    assert "truncated.bag" in check.metadata["recovered"]["raw_value"][0]


def test_extraction_of_real_bags(real_outputs, real_drive: Path) -> None:
    out, _, ext, _ = real_outputs
    index = _read(out, "real", "extracted_frames", "index.parquet")
    per_topic = index.groupby("topic").size().to_dict()
    assert per_topic == {
        "/camera/image_raw": 10,
        "/dvs/image_raw": 4,
        "/dvs1/image_raw": 3,
        "/image": 1,
        "/compressedimage": 1,
        "/gym/observations": 1,
    }
    svo = index[index["topic"] == "/camera/image_raw"]
    assert set(zip(svo["width"], svo["height"], strict=True)) == {(752, 480)}
    assert set(svo["encoding"]) == {"mono8"}
    assert all(Path(p).exists() for p in index["path"])
    expected = ["drive", "bag", "topic", "stamp_ns", "log_time_ns"]
    assert set(index.columns) >= {*expected, "width", "height", "encoding", "path", "bytes"}
    # compressed frames pass through byte for byte
    from rosbags.highlevel import AnyReader

    with AnyReader([real_drive / "duckietown_sim_compressed.bag"]) as reader:
        (conn,) = reader.connections
        (_, _, raw), *_ = list(reader.messages(connections=[conn]))
        original = reader.deserialize(raw, conn.msgtype).data.tobytes()
    (row,) = [r for _, r in index.iterrows() if r["topic"] == "/gym/observations"]
    assert stored(row) == original
    checks = {c.name: c for c in ext.checks}
    assert checks["every_image_topic_has_frames"].passed
    assert ext.metadata["frames"]["raw_value"] == 20
    # allow_partial: published, with the blocking check failed and naming both bags
    partial = checks["all_bags_extracted"]
    assert not partial.passed and partial.severity == "ERROR"
    named = {p["bag"] for p in partial.metadata["incomplete_bags"]["raw_value"]}
    assert named == {"zero.bag", "truncated.bag"} and "made current" in partial.description
    assert ext.metadata["published"]["raw_value"] is True
    assert publish.current(out, "real/extracted_frames")["incomplete_bags"]


def _write(tmp: Path, name: str, fmt: str, topic_msgs: dict) -> Path:
    drive = tmp / "landing" / name
    drive.mkdir(parents=True, exist_ok=True)
    write_bag(drive / ("cam.bag" if fmt == "ros1" else "cam"), fmt, topic_msgs)
    return drive


def _run(
    drive: Path, tmp: Path, options: dict | None = None
) -> tuple[LocalStorage, pd.DataFrame, Log, object]:
    out = LocalStorage(tmp / "out")
    log = Log()
    run_raw_bags(drive=drive.name, source=LocalStorage(drive), output=out, log=log)
    res = run_extracted_frames(
        drive=drive.name, source=LocalStorage(drive), output=out, options=options, log=log
    )
    # the version this run wrote, whether or not its blocking checks let it become current
    index = pd.read_parquet(res.metadata["index"]["raw_value"])
    return out, index, log, res


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_options_duplicate_stamps_depth_and_zero_stamps(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (48, 64, 3), np.uint8)
    depth = rng.integers(0, 65535, (24, 32), np.uint16)
    t0 = 1_700_000_000_000_000_000
    msgs = {
        "/cam/bgr": [
            (
                t0 + i * 50_000_000,
                make_image(fmt, "bgr8", 48, 64, 192, bgr.tobytes(), stamp_ns=t0 + i * 50_000_000),
            )
            for i in range(20)
        ],  # 20 Hz for 1 s
        "/cam/depth": [
            (t0 + i * 100_000_000, make_image(fmt, "16UC1", 24, 32, 64, depth.tobytes(), stamp_ns=t0))
            for i in range(3)
        ],  # three frames with the SAME header stamp
        "/cam/nostamp": [(t0 + 7, make_image(fmt, "mono8", 4, 4, 4, bytes(range(16)), stamp_ns=0))],
    }
    drive = _write(tmp_path, f"opts-{fmt}", fmt, msgs)

    _, index, _, _ = _run(drive, tmp_path / "all")
    depth_rows = index[index["topic"] == "/cam/depth"]
    assert len(depth_rows) == 3 and depth_rows["frame_key"].nunique() == 3  # never overwritten
    img = stored_image(depth_rows.iloc[0], cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and np.array_equal(img, depth)  # lossless 16-bit PNG
    nostamp = index[index["topic"] == "/cam/nostamp"].iloc[0]
    assert nostamp["stamp_ns"] == t0 + 7  # zero header stamp -> log time

    _, index, _, res = _run(
        drive, tmp_path / "rate", {"topics": ["/cam/bgr"], "max_rate_hz": 5, "image_format": "png"}
    )
    assert set(index["topic"]) == {"/cam/bgr"} and len(index) == 5
    assert np.array_equal(stored_image(index.iloc[0]), bgr)  # PNG is exact
    assert res.metadata["skipped_by_rate"]["raw_value"] == 15

    _, index, _, _ = _run(
        drive,
        tmp_path / "window",
        {"topics": ["/cam/bgr"], "start_offset_s": 0.2, "end_offset_s": 0.5, "max_width": 32},
    )
    assert len(index) == 7  # log times 0.2 .. 0.5 s inclusive at 20 Hz
    assert set(zip(index["width"], index["height"], strict=True)) == {(32, 24)}  # aspect kept


def test_unknown_encoding_and_topic_without_messages(tmp_path: Path) -> None:
    t0 = 1_700_000_000_000_000_000
    good = np.full((8, 8, 3), 99, np.uint8)
    msgs = {
        "/cam/weird": [(t0, make_image("ros1", "bayer_xyz9", 8, 8, 8, bytes(64), stamp_ns=t0))],
        "/cam/good": [(t0, make_image("ros1", "bgr8", 8, 8, 24, good.tobytes(), stamp_ns=t0))],
        "/cam/jpeg": [],
    }
    drive = tmp_path / "landing" / "bad"
    drive.mkdir(parents=True)
    write_bag(drive / "cam.bag", "ros1", msgs, msgtypes={"/cam/jpeg": "sensor_msgs/msg/CompressedImage"})
    _, index, log, res = _run(drive, tmp_path)
    assert set(index["topic"]) == {"/cam/good"}
    assert any("cam.bag" in w and "/cam/weird" in w and "bayer_xyz9" in w for w in log.warnings), log.warnings
    assert any("/cam/jpeg" in w and "no messages" in w for w in log.warnings), log.warnings
    checks = {c.name: c for c in res.checks}
    assert not checks["every_image_topic_has_frames"].passed  # /cam/weird had messages but no frames
    assert not checks["no_extraction_errors"].passed
    # a failed blocking check: the version is kept for inspection but never made current
    assert publish.current(LocalStorage(tmp_path / "out"), "bad/extracted_frames") is None
    assert "every_image_topic_has_frames" in res.metadata["not_published_because"]["raw_value"]


def test_failed_run_keeps_the_published_version(tmp_path: Path) -> None:
    t0 = 1_700_000_000_000_000_000
    img = np.zeros((8, 8, 3), np.uint8)
    msgs = {"/cam": [(t0, make_image("ros1", "bgr8", 8, 8, 24, img.tobytes(), stamp_ns=t0))]}
    drive = _write(tmp_path, "keep", "ros1", msgs)
    out, index, _, _ = _run(drive, tmp_path)
    before = publish.current(out, "keep/extracted_frames")
    with pytest.raises(ValueError, match="image_format"):
        run_extracted_frames(
            drive="keep", source=LocalStorage(drive), output=out, options={"image_format": "bmp"}
        )
    with pytest.raises(BagReadError, match="no bags found"):
        run_raw_bags(drive="keep", source=LocalStorage(tmp_path / "empty-dir"), output=out)
    assert publish.current(out, "keep/extracted_frames") == before
    assert _read(out, "keep", "extracted_frames", "index.parquet").equals(index)


def test_compressed_passthrough_and_reencode(tmp_path: Path) -> None:
    t0 = 1_700_000_000_000_000_000
    frame = cv2.imread(str(shared("images", "bdd100k", "cb22c820-f094952f.jpg")))
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    msgs = {
        "/cam/compressed": [
            (t0 + i, make_compressed_image("mcap", "jpeg", jpeg, stamp_ns=t0 + i)) for i in range(3)
        ]
    }
    drive = _write(tmp_path, "jpeg", "mcap", msgs)
    _, index, _, _ = _run(drive, tmp_path / "a")
    assert all(stored(row) == jpeg for _, row in index.iterrows())
    assert set(zip(index["width"], index["height"], strict=True)) == {(1280, 720)}
    _, index, _, _ = _run(drive, tmp_path / "b", {"max_width": 640, "image_format": "png"})
    assert set(index["format"]) == {"png"} and set(index["width"]) == {640}


def test_corrupt_compressed_frames_name_bag_and_topic(tmp_path: Path) -> None:
    """A CompressedImage whose payload is not an image skips that topic with a named reason; the rest is kept."""
    t0 = 1_700_000_000_000_000_000
    good = np.full((8, 8, 3), 50, np.uint8)
    msgs = {
        "/cam/broken": [(t0, make_compressed_image("ros1", "jpeg", b"\x00not a jpeg at all", stamp_ns=t0))],
        "/cam/good": [(t0, make_image("ros1", "bgr8", 8, 8, 24, good.tobytes(), stamp_ns=t0))],
    }
    drive = _write(tmp_path, "corrupt", "ros1", msgs)
    _, index, log, res = _run(drive, tmp_path)
    assert set(index["topic"]) == {"/cam/good"}
    assert any("cam.bag" in w and "/cam/broken" in w for w in log.warnings), log.warnings
    assert not {c.name: c for c in res.checks}["no_extraction_errors"].passed
