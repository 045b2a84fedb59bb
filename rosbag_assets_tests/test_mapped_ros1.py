"""The zero-copy ROS1 reader yields exactly what rosbags yields, or declines."""

from pathlib import Path

import pytest
from bagwriting import make_compressed_image, make_image, write_bag
from conftest import ROS1_BAGS, ROS2_BAGS, shared
from rosbags.highlevel import AnyReader

from rosbag_assets.jobs.mapped_ros1 import mapped_messages


def _both(path: Path, topics: set[str] | None = None) -> tuple[list, list | None]:
    with AnyReader([path]) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        expected = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages(connections=conns)]
        mapped = mapped_messages(conns)
        got = None if mapped is None else [(c.topic, t, bytes(raw)) for c, t, raw in mapped]
    return expected, got


@pytest.mark.parametrize(
    "name", sorted(p.name for p in ROS1_BAGS.glob("*.bag")) if ROS1_BAGS.is_dir() else []
)
def test_real_ros1_bags_read_identically_or_decline(name: str) -> None:
    shared("bags")
    expected, got = _both(ROS1_BAGS / name)
    if got is not None:
        assert got == expected and expected


def test_written_bag_with_several_topics_and_equal_times(tmp_path: Path) -> None:
    t0 = 1_700_000_000_000_000_000
    msgs = {
        "/a": [(t0 + i, make_image("ros1", "mono8", 2, 2, 2, bytes([i] * 4))) for i in range(50)],
        "/b": [
            (t0 + i, make_compressed_image("ros1", "jpeg", b"\xff\xd8" + bytes([i]) * 99)) for i in range(50)
        ],
        "/c": [(t0 + 2 * i, make_image("ros1", "mono8", 1, 1, 1, bytes([i]))) for i in range(30)],
    }
    bag = tmp_path / "multi.bag"
    write_bag(bag, "ros1", msgs)
    expected, got = _both(bag)
    assert got == expected and len(expected) == 130
    expected, got = _both(bag, {"/b", "/c"})
    assert got == expected and len(expected) == 80


def test_declines_compressed_chunks_and_ros2(tmp_path: Path) -> None:
    shared("bags")
    compressed = [p for p in ROS1_BAGS.glob("*.bag") if "bz2" in p.name or "lz4" in p.name]
    for bag in compressed:
        assert _both(bag)[1] is None, bag
    mcap = tmp_path / "m"
    write_bag(mcap, "mcap", {"/a": [(1, make_image("mcap", "mono8", 1, 1, 1, b"\x00"))]})
    assert _both(mcap)[1] is None
    assert ROS2_BAGS.is_dir()


def test_released_pages_still_read_back_correctly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages dropped from the resident set behind the reader fault back in for views still held."""
    from rosbag_assets.jobs import mapped_ros1

    monkeypatch.setattr(mapped_ros1, "_RELEASE_EVERY", 16 * 4096)
    t0 = 1_700_000_000_000_000_000
    msgs = {
        "/a": [(t0 + i, make_image("ros1", "mono8", 100, 200, 200, bytes([i]) * 20_000)) for i in range(120)]
    }
    bag = tmp_path / "big.bag"
    write_bag(bag, "ros1", msgs)
    with AnyReader([bag]) as reader:
        expected = [bytes(raw) for _, _, raw in reader.messages()]
        held = [raw for _, _, raw in mapped_messages(list(reader.connections))]  # keep every view
    assert [bytes(v) for v in held] == expected
