"""The zero-copy reader yields exactly what rosbags yields (ROS1 and MCAP), or declines."""

from pathlib import Path

import pytest
from bagwriting import make_compressed_image, make_image, typestore_for, write_bag
from conftest import ROS1_BAGS, ROS2_BAGS, shared
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer

from rosbag_assets.io import mapped
from rosbag_assets.io.bags import DEFAULT_TYPESTORE
from rosbag_assets.io.mapped import mapped_messages

T0 = 1_700_000_000_000_000_000


def _both(path: Path, topics: set[str] | None = None) -> tuple[list, list | None]:
    with AnyReader([path], default_typestore=DEFAULT_TYPESTORE) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        expected = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages(connections=conns)]
        found = mapped_messages(conns)
        got = None if found is None else [(c.topic, t, bytes(raw)) for c, t, raw in found]
    return expected, got


# Which real bags the zero-copy reader must map (uncompressed chunks) and which it must leave to rosbags.
MAPPED_REAL_BAGS = [
    "duckietown_sim_compressed.bag",
    "get_images_tiny.bag",
    "ros_numpy_test.bag",
    "rosbagjs_example-unsorted-chunks.bag",
    "rosbagjs_example.bag",
    "tiny_svo.bag",
]
DECLINED_REAL_BAGS = ["rosbagjs_example-bz2.bag", "rosbagjs_example-lz4.bag", "rosbagjs_no-messages.bag"]


@pytest.mark.parametrize("name", MAPPED_REAL_BAGS)
def test_real_uncompressed_ros1_bags_are_mapped_and_read_identically(name: str) -> None:
    expected, got = _both(shared("bags", "ros1", name))
    assert got is not None, f"{name}: the fast reader declined an uncompressed bag"
    assert got == expected and expected


@pytest.mark.parametrize("name", DECLINED_REAL_BAGS)
def test_compressed_or_empty_real_bags_are_left_to_rosbags(name: str) -> None:
    _, got = _both(shared("bags", "ros1", name))
    assert got is None


def _messages(fmt: str) -> dict:
    return {
        "/a": [(T0 + i, make_image(fmt, "mono8", 2, 2, 2, bytes([i] * 4))) for i in range(50)],
        "/b": [
            (T0 + i, make_compressed_image(fmt, "jpeg", b"\xff\xd8" + bytes([i]) * 99)) for i in range(50)
        ],
        "/c": [(T0 + 2 * i, make_image(fmt, "mono8", 1, 1, 1, bytes([i]))) for i in range(30)],
    }


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_written_bags_with_several_topics_and_equal_times(tmp_path: Path, fmt: str) -> None:
    bag = tmp_path / ("multi.bag" if fmt == "ros1" else "multi")
    write_bag(bag, fmt, _messages(fmt))
    targets = [bag] if fmt == "ros1" else [bag, *bag.glob("*.mcap")]  # a bag folder and a bare .mcap file
    for target in targets:
        expected, got = _both(target)
        assert got == expected and len(expected) == 130
        expected, got = _both(target, {"/b", "/c"})
        assert got == expected and len(expected) == 80


def test_declines_what_it_cannot_map(tmp_path: Path) -> None:
    shared("bags")
    for bag in [p for p in ROS1_BAGS.glob("*.bag") if "bz2" in p.name or "lz4" in p.name]:
        assert _both(bag)[1] is None, bag  # compressed chunks
    sqlite = tmp_path / "s"
    write_bag(sqlite, "sqlite3", {"/a": [(1, make_image("sqlite3", "mono8", 1, 1, 1, b"\x00"))]})
    assert _both(sqlite)[1] is None
    assert _both(ROS2_BAGS / "turtlesim_no_metadata.db3")[1] is None


def test_mcap_with_per_message_compression_is_left_to_rosbags(tmp_path: Path) -> None:
    store = typestore_for("mcap")
    bag = tmp_path / "zstd"
    writer = Ros2Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)  # before opening
    with writer:
        conn = writer.add_connection("/a", "sensor_msgs/msg/Image", typestore=store)
        msg = make_image("mcap", "mono8", 1, 1, 1, b"\x07")
        writer.write(conn, T0, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    expected, got = _both(bag)
    assert got is None and len(expected) == 1


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_released_pages_still_read_back_correctly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Pages dropped from the resident set behind the reader fault back in for views still held."""
    monkeypatch.setattr(mapped, "_RELEASE_EVERY", 16 * 4096)
    msgs = {
        "/a": [(T0 + i, make_image(fmt, "mono8", 100, 200, 200, bytes([i]) * 20_000)) for i in range(120)]
    }
    bag = tmp_path / ("big.bag" if fmt == "ros1" else "big")
    write_bag(bag, fmt, msgs)
    with AnyReader([bag]) as reader:
        expected = [bytes(raw) for _, _, raw in reader.messages()]
        held = [raw for _, _, raw in mapped_messages(list(reader.connections))]  # keep every view
    assert [bytes(v) for v in held] == expected
