"""Reading damaged bags: every whole message before the damage comes back, byte for byte, and the report says
where reading stopped. Expected counts come from rosbags reading the intact bag (its index offsets)."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1.reader import decompressors

from rosbag_assets.io.mapped import mapped_messages
from rosbag_assets.io.recovery import BagRecoveryError, open_messages
from rosbag_assets.steps.extracted_frames import parse_image_message

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bags" / "ros1"
U32 = struct.Struct("<I")
IMAGE_MD5 = "060021388200f6f0f447d0fcd9c64743"  # sensor_msgs/Image in ROS1


def bag(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return path


def intact_messages(path: Path) -> list[tuple[str, int, bytes, int, int]]:
    """(topic, log time, raw bytes, byte offset where its record ends, where it starts) of every message of
    an intact bag with uncompressed chunks, from rosbags' index."""
    data = path.read_bytes()
    out = []
    with Ros1Reader(path) as reader:
        topics = {c.id: c.topic for c in reader.connections}
        for cid, entries in reader.indexes.items():
            for entry in entries:
                chunk = reader.chunks[entry.chunk_pos]
                assert chunk.decompressor is decompressors["none"]
                pos = chunk.datapos + entry.offset
                while True:  # the index may point at a connection record just before the message
                    (hlen,) = U32.unpack_from(data, pos)
                    (dlen,) = U32.unpack_from(data, pos + 4 + hlen)
                    end = pos + 8 + hlen + dlen
                    if b"op=\x02" in data[pos + 4 : pos + 4 + hlen]:
                        break
                    pos = end
                out.append((topics[cid], entry.time, data[end - dlen : end], end, pos))
        rosbags_view = sorted((c.topic, t, bytes(raw)) for c, t, raw in reader.messages())
    assert sorted(m[:3] for m in out) == rosbags_view  # the oracle reads what rosbags reads
    return out


def read_all(path: Path, topics: list[str] | None = None) -> tuple[list[tuple[str, int, bytes]], Any]:
    _, stream, report = open_messages(path, topics)
    with stream:
        got = [(c.topic, t, bytes(raw)) for c, t, raw in stream]
    return got, report


def cut(src: Path, dest: Path, at: int) -> Path:
    dest.write_bytes(src.read_bytes()[:at])
    return dest


def zero_index_pos(data: bytes) -> bytes:
    at = data.index(b"index_pos=") + len(b"index_pos=")
    return data[:at] + bytes(8) + data[at + 8 :]


# --- ROS1 ------------------------------------------------------------------------------------------------


def test_intact_bag_reads_normally() -> None:
    src = bag("tiny_svo.bag")
    got, report = read_all(src)
    assert report.mode == "normal" and report.complete and report.first_error is None
    assert sorted(got) == sorted(m[:3] for m in intact_messages(src))
    assert report.messages == len(got) == 139


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.6, 0.97, 0.9999])
def test_truncated_ros1_bag_yields_every_whole_message_before_the_cut(
    tmp_path: Path, fraction: float
) -> None:
    src = bag("tiny_svo.bag")
    intact = intact_messages(src)
    at = int(src.stat().st_size * fraction)
    expected = sorted(m[:3] for m in intact if m[3] <= at)
    got, report = read_all(cut(src, tmp_path / "cut.bag", at))
    assert report.mode == "reindexed"
    assert "index" in report.first_error
    assert sorted(got) == expected
    assert report.messages == len(expected)
    assert not report.complete and report.stop_path == str(tmp_path / "cut.bag")
    last_end = max((m[3] for m in intact if m[3] <= at), default=0)
    assert last_end <= report.stop_offset <= at  # stopped right after the last whole record
    assert [t for _, t, _ in got] == sorted(t for _, t, _ in got)  # time order, like rosbags


def test_cut_exactly_at_and_one_byte_before_a_message_end(tmp_path: Path) -> None:
    src = bag("tiny_svo.bag")
    intact = sorted(intact_messages(src), key=lambda m: m[3])
    target = intact[len(intact) // 2]
    for at, keep in ((target[3], True), (target[3] - 1, False)):
        got, report = read_all(cut(src, tmp_path / f"cut{at}.bag", at))
        assert report.messages == sum(1 for m in intact if m[3] <= at)
        assert (target[:3] in got) is keep


def test_unindexed_bag_reads_whole_and_complete(tmp_path: Path) -> None:
    src = bag("tiny_svo.bag")
    path = tmp_path / "unindexed.bag"
    path.write_bytes(zero_index_pos(src.read_bytes()))
    got, report = read_all(path)
    assert report.mode == "reindexed" and "not indexed" in report.first_error
    assert report.complete and report.stop_offset is None
    assert sorted(got) == sorted(m[:3] for m in intact_messages(src))
    with AnyReader([src]) as reader:
        assert report.topics == {t: i.msgcount for t, i in reader.topics.items()}
        assert (report.start_ns, report.end_ns) == (reader.start_time, reader.end_time - 1)


def test_unfinished_recording_with_an_unclosed_chunk(tmp_path: Path) -> None:
    """What `rosbag record` leaves when killed: no index, and the last chunk's size fields still 0."""
    src = bag("tiny_svo.bag")
    data = src.read_bytes()
    with Ros1Reader(src) as reader:
        last = max(reader.chunks)
        chunk = reader.chunks[last]
    (hlen,) = U32.unpack_from(data, last)
    header = data[last + 4 : last + 4 + hlen]
    at = header.index(b"size=") + 5
    header = header[:at] + bytes(4) + header[at + 4 :]
    stop = chunk.datapos + chunk.datasize * 2 // 3  # the recorder died here
    broken = zero_index_pos(data[: last + 4]) + header + bytes(4) + data[chunk.datapos : stop]
    path = tmp_path / "recording.bag.active"  # the name `rosbag record` gives it; the content decides
    path.write_bytes(broken)
    intact = intact_messages(src)
    got, report = read_all(path)
    assert report.mode == "reindexed"
    assert sorted(got) == sorted(m[:3] for m in intact if m[3] <= stop)
    assert 0 < report.salvaged < sum(1 for m in intact if m[3] > last)
    assert any("never closed" in p for p in report.problems) and not report.complete


def test_topics_select_connections_and_images_deserialize(tmp_path: Path) -> None:
    src = bag("tiny_svo.bag")
    path = cut(src, tmp_path / "cut.bag", int(src.stat().st_size * 0.6))
    conns, stream, report = open_messages(path, ["/camera/image_raw"])
    with stream:
        assert {c.topic for c in conns} == {"/camera/image_raw"}
        images = [(stream.deserialize(raw, c.msgtype), raw, c) for c, _, raw in stream]
    assert len(images) == report.topics["/camera/image_raw"] > 0
    assert report.messages > len(images)  # the report covers every topic
    with AnyReader([src]) as reader:
        conn = next(c for c in reader.connections if c.topic == "/camera/image_raw")
        _, _, raw = next(reader.messages(connections=[conn]))
        first = reader.deserialize(raw, conn.msgtype)
    msg, raw, conn = images[0]
    assert (msg.width, msg.height, msg.encoding) == (first.width, first.height, first.encoding)
    assert np.array_equal(msg.data, first.data)
    fast = parse_image_message(raw, conn.msgtype, ros2=stream.is2)  # extraction's zero-copy parser
    assert (fast.width, fast.height) == (msg.width, msg.height)


def test_reindexed_bag_feeds_the_zero_copy_reader(tmp_path: Path) -> None:
    src = bag("tiny_svo.bag")
    path = cut(src, tmp_path / "cut.bag", int(src.stat().st_size * 0.6))
    conns, stream, report = open_messages(path)
    with stream:
        mapped = mapped_messages(conns)
        assert mapped is not None
        got = sorted((c.topic, t, bytes(raw)) for c, t, raw in mapped)
    assert len(got) == report.messages
    assert got == sorted(read_all(path)[0])


@pytest.mark.parametrize("name", ["rosbagjs_example-bz2.bag", "rosbagjs_example-lz4.bag"])
def test_compressed_chunks(tmp_path: Path, name: str) -> None:
    src = bag(name)
    with AnyReader([src]) as reader:
        expected = sorted((c.topic, t, bytes(raw)) for c, t, raw in reader.messages())
        (chunk_pos,) = reader.readers[0].chunks
        chunk = reader.readers[0].chunks[chunk_pos]
    path = tmp_path / "unindexed.bag"
    path.write_bytes(zero_index_pos(src.read_bytes()))
    got, report = read_all(path)
    assert sorted(got) == expected and report.complete
    # cut after the chunk (in its index records): every message; cut inside the chunk: none, and it says so
    got, report = read_all(cut(src, tmp_path / "after.bag", chunk.datapos + chunk.datasize + 10))
    assert sorted(got) == expected and not report.complete
    got, report = read_all(cut(src, tmp_path / "inside.bag", chunk.datapos + chunk.datasize // 2))
    assert got == [] and report.messages == 0 and report.stop_offset == chunk_pos
    assert "lost" in report.stop_reason


def test_errors_name_the_file_and_message(tmp_path: Path) -> None:
    src = bag("tiny_svo.bag")
    with pytest.raises(BagRecoveryError, match=r"header\.bag"):
        open_messages(cut(src, tmp_path / "header.bag", 1000))  # cut inside the bag header: nothing to read
    junk = tmp_path / "junk.bag"
    junk.write_bytes(b"not a bag at all" * 100)
    with pytest.raises(BagRecoveryError, match=r"junk\.bag"):
        open_messages(junk)
    # an indexed bag with a message record overwritten: opens normally, fails at that message by number
    victim = sorted(intact_messages(src), key=lambda m: m[1])[50]
    data = bytearray(src.read_bytes())
    data[victim[4] : victim[4] + 4] = b"\xff\xff\xff\xff"  # its header length
    broken = tmp_path / "broken.bag"
    broken.write_bytes(bytes(data))
    _, stream, report = open_messages(broken)
    assert report.mode == "normal"
    seen = 0
    with pytest.raises(BagRecoveryError, match=r"broken\.bag: message \d+") as err:
        for _ in stream:
            seen += 1
    assert f"message {seen} " in str(err.value)


# --- MCAP ------------------------------------------------------------------------------------------------


def ros1_types() -> dict[str, Any]:
    """genpy classes for sensor_msgs/Image and CompressedImage, as mcap-ros1-support's writer takes them."""
    from mcap_ros1._vendor.genpy import dynamic
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    types = {}
    for name in ("sensor_msgs/Image", "sensor_msgs/CompressedImage"):
        text, _ = store.generate_msgdef(name.replace("/", "/msg/"))
        types[name] = dynamic.generate_dynamic(name, text)[name]
    return types


def write_ros1_mcap(path: Path, count: int, chunk_size: int = 4096) -> list[tuple[str, int, Any]]:
    """A ROS1-profile MCAP written by mcap-ros1-support: raw and JPEG-style images on two topics."""
    from mcap_ros1.writer import Writer as Ros1McapWriter

    types = ros1_types()
    rng = np.random.default_rng(7)
    written = []
    with path.open("wb") as fh:
        writer = Ros1McapWriter(fh, chunk_size=chunk_size, compression=CompressionType.ZSTD)
        for i in range(count):
            t = 1_700_000_000_000_000_000 + i * 50_000_000
            if i % 3 == 2:
                msg = types["sensor_msgs/CompressedImage"]()
                msg.format, msg.data, topic = "jpeg", rng.bytes(500), "/camera/compressed"
            else:
                msg = types["sensor_msgs/Image"]()
                msg.height, msg.width, msg.encoding, msg.step = 24, 32, "rgb8", 96
                msg.data, topic = rng.bytes(24 * 96), "/camera/image_raw"
            msg.header.seq, msg.header.frame_id = i, "cam"
            msg.header.stamp.secs, msg.header.stamp.nsecs = divmod(t, 1_000_000_000)
            writer.write_message(topic, msg, log_time=t)
            written.append((topic, t, msg))
        writer.finish()
    return written


def whole_chunk_end_time(path: Path, at: int) -> int:
    """Log time of the last message in the chunks that end at or before byte `at` of the intact file."""
    with path.open("rb") as fh:
        chunks = make_reader(fh).get_summary().chunk_indexes
    return max(
        (c.message_end_time for c in chunks if c.chunk_start_offset + c.chunk_length <= at), default=-1
    )


def test_ros1_profile_mcap_reads_with_ros1_deserialisation(tmp_path: Path) -> None:
    path = tmp_path / "ros1.mcap"
    written = write_ros1_mcap(path, 30)
    conns, stream, report = open_messages(path)
    assert report.mode == "mcap-ros1" and report.complete and "ros2" in report.first_error
    assert {c.topic: c.msgtype for c in conns} == {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/compressed": "sensor_msgs/msg/CompressedImage",
    }
    assert next(c.digest for c in conns if c.topic == "/camera/image_raw") == IMAGE_MD5
    with stream:
        got = [(c, t, raw, stream.deserialize(raw, c.msgtype)) for c, t, raw in stream]
    assert stream.is2 is False and report.messages == len(got) == len(written)
    for (topic, t, sent), (conn, log_time, raw, msg) in zip(written, got, strict=True):
        assert (conn.topic, log_time) == (topic, t)
        assert (msg.header.seq, msg.header.frame_id) == (sent.header.seq, "cam")
        assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == t
        assert bytes(msg.data) == sent.data
        fast = parse_image_message(raw, conn.msgtype, ros2=False)  # extraction's parser takes the bytes too
        assert bytes(fast.data) == sent.data
        if conn.msgtype.endswith("/Image"):
            assert (msg.width, msg.height, msg.encoding, msg.step) == (32, 24, "rgb8", 96)
        else:
            assert msg.format == "jpeg"


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_ros1_profile_mcap(tmp_path: Path, fraction: float) -> None:
    intact = tmp_path / "ros1.mcap"
    written = write_ros1_mcap(intact, 40)
    at = int(intact.stat().st_size * fraction)
    last = whole_chunk_end_time(intact, at)
    expected = [(topic, t) for topic, t, _ in written if t <= last]
    path = cut(intact, tmp_path / "cut.mcap", at)
    _, stream, report = open_messages(path)
    with stream:
        got = [(c.topic, t, stream.deserialize(raw, c.msgtype)) for c, t, raw in stream]
    assert report.mode == "mcap-ros1" and not report.complete
    assert [g[:2] for g in got] == expected and report.messages == len(expected)
    assert [bytes(m.data) for _, _, m in got] == [m.data for _, t, m in written if t <= last]
    assert report.stop_offset <= at and report.stop_path == str(path)


def test_truncated_ros2_mcap_folder_and_file(tmp_path: Path) -> None:
    from bagwriting import make_image, write_bag

    rng = np.random.default_rng(3)
    msgs = [
        (t, make_image("mcap", "rgb8", 120, 160, 480, rng.bytes(120 * 480), stamp_ns=t))
        for t in range(1_000_000, 61_000_000, 1_000_000)
    ]
    folder = write_bag(tmp_path / "drive", "mcap", {"/camera/image_raw": msgs})
    (storage,) = folder.glob("*.mcap")
    with AnyReader([folder]) as reader:
        intact = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    at = int(storage.stat().st_size * 0.6)
    last = whole_chunk_end_time(storage, at)
    assert 0 < last < msgs[-1][0]  # the cut leaves some chunks whole and loses others
    expected = [m for m in intact if m[1] <= last]
    cut(storage, storage, at)
    for path in (folder, storage):
        got, report = read_all(path)
        assert report.mode == "sequential" and "magic" in report.first_error
        assert got == expected and report.messages == len(expected)
        assert report.stop_path == str(storage) and report.stop_offset <= at
    _, stream, _ = open_messages(storage)
    with stream:
        conn, _, raw = next(stream)
        msg = stream.deserialize(raw, conn.msgtype)
    assert stream.is2 and (msg.width, msg.height) == (160, 120) and np.array_equal(msg.data, msgs[0][1].data)


def test_unchunked_mcap_never_yields_a_cut_message(tmp_path: Path) -> None:
    """Unchunked MCAP (messages straight in the data section): a message the cut runs through never comes out."""
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    text, _ = store.generate_msgdef("std_msgs/msg/String", ros_version=2)
    string = store.types["std_msgs/msg/String"]
    payloads = [store.serialize_cdr(string(data=f"message {i} " * 20), string.__msgtype__) for i in range(10)]
    buf = io.BytesIO()
    writer = McapWriter(buf, use_chunking=False)
    writer.start(profile="ros2", library="test")
    schema = writer.register_schema("std_msgs/msg/String", "ros2msg", text.encode())
    channel = writer.register_channel("/chatter", "cdr", schema)
    for i, payload in enumerate(payloads):
        writer.add_message(channel, log_time=i + 1, data=bytes(payload), publish_time=i + 1)
    writer.finish()
    data = buf.getvalue()
    ends = [data.index(bytes(p)) + len(p) for p in payloads]
    for at, keep in ((ends[5], 6), (ends[5] - 1, 5), (ends[0] - 1, 0)):
        path = tmp_path / f"cut{at}.mcap"
        path.write_bytes(data[:at])
        got, report = read_all(path)
        assert [raw for _, _, raw in got] == [bytes(p) for p in payloads[:keep]]
        assert report.messages == keep and report.stop_offset <= at


def test_closing_early_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ros1.mcap"
    write_ros1_mcap(path, 10)
    cut(path, path, path.stat().st_size * 2 // 3)
    _, stream, report = open_messages(path)
    next(stream)
    stream.close()
    assert list(stream) == [] and report.mode == "mcap-ros1"
    with pytest.raises(BagRecoveryError, match=r"absent\.bag: no such file"):
        open_messages(tmp_path / "absent.bag")
