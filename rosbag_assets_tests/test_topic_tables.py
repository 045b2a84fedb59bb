"""topic_tables: every non-image topic of real and hand-written bags as Parquet, checked against the bags."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bagwriting import make_header, typestore_for, write_bag
from conftest import ROS1_BAGS, ROS2_BAGS, SHARED_DATA, shared
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from rosbag_assets.io.bags import DEFAULT_TYPESTORE
from rosbag_assets.io.drives import find_bags
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.topic_tables import (
    IMAGE_MSGTYPES,
    TopicTablesOptions,
    topic_slug,
    write_drive_topic_tables,
    write_topic_tables,
)
from rosbag_assets.steps.topic_tables import batch as batch_module
from rosbag_assets.steps.topic_tables.batch import TopicBuffer
from rosbag_assets.steps.topic_tables.plan import build_plan
from rosbag_assets.vision import topic_rows
from rosbag_assets.vision.topic_rows import draw_topic_rows

IMU = "sensor_msgs/msg/Imu"
TURTLE_POSE_MSG = "float32 x\nfloat32 y\nfloat32 theta\nfloat32 linear_velocity\nfloat32 angular_velocity\n"
TURTLE_COLOR_MSG = "uint8 r\nuint8 g\nuint8 b\n"


def _messages(bag: Path, topic: str) -> list[tuple[int, object]]:
    """(log time, message) of `topic`, read the plain way."""
    with AnyReader([bag], default_typestore=DEFAULT_TYPESTORE) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [(t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=conns)]


def _counts(bag: Path) -> dict[str, tuple[str, int]]:
    """topic -> (message type, message count) from the bag's own index."""
    with AnyReader([bag], default_typestore=DEFAULT_TYPESTORE) as reader:
        out: dict[str, tuple[str, int]] = {}
        for c in reader.connections:
            out[c.topic] = (c.msgtype, out.get(c.topic, ("", 0))[1] + c.msgcount)
        return out


def _all_real_bags() -> list[Path]:
    if not (SHARED_DATA / "bags").is_dir():
        pytest.skip("shared bags missing")
    return sorted(p for p in (SHARED_DATA / "bags").rglob("*") if p.is_file())


def test_every_real_bag_every_non_image_topic_has_all_its_messages(tmp_path: Path) -> None:
    bags = _all_real_bags()
    options = TopicTablesOptions(
        msgdefs={"turtlesim/msg/Pose": TURTLE_POSE_MSG, "turtlesim/msg/Color": TURTLE_COLOR_MSG}
    )
    summary = write_topic_tables(bags, tmp_path, options)
    assert summary.bag_errors == {}
    written = {(t.bag, t.topic): t for t in summary.tables}
    checked = 0
    for bag in bags:
        name = bag.stem
        for topic, (msgtype, count) in _counts(bag).items():
            if msgtype in IMAGE_MSGTYPES:
                assert (name, topic) not in written
                assert not (tmp_path / topic_slug(topic) / f"{name}.parquet").exists()
                continue
            table = written[(name, topic)]
            assert (table.rows, table.errors, table.messages) == (count, 0, count), (name, topic)
            parquet = pq.ParquetFile(tmp_path / topic_slug(topic) / f"{name}.parquet")
            assert parquet.metadata.num_rows == count
            meta = parquet.schema_arrow.metadata
            assert meta[b"rosbag_assets.topic"].decode() == topic
            assert meta[b"rosbag_assets.msgtype"].decode() == msgtype
            checked += 1
    assert checked >= 30  # turtlesim x4 formats, tiny_svo, ros_numpy, the bare ROS2 bag
    # log times are the bag's, in order
    bag = ROS1_BAGS / "rosbagjs_example.bag"
    times = pq.read_table(tmp_path / "tf" / "rosbagjs_example.parquet")["log_time_ns"].to_pylist()
    assert times == [t for t, _ in _messages(bag, "/tf")]


def test_turtlesim_pose_fields_match_the_messages(tmp_path: Path) -> None:
    bag = shared("bags", "ros1", "rosbagjs_example-lz4.bag")
    write_topic_tables([bag], tmp_path, TopicTablesOptions(include=["/turtle1/*"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "turtle1.cmd_vel",
        "turtle1.color_sensor",
        "turtle1.pose",
    ]
    df = pd.read_parquet(tmp_path / "turtle1.pose")
    assert list(df.columns) == ["log_time_ns", "x", "y", "theta", "linear_velocity", "angular_velocity"]
    msgs = _messages(bag, "/turtle1/pose")
    assert len(df) == len(msgs) == 1344
    for field in ("x", "y", "theta", "linear_velocity", "angular_velocity"):
        np.testing.assert_array_equal(
            df[field].to_numpy(), np.array([getattr(m, field) for _, m in msgs], np.float32)
        )
    assert df["x"].dtype == np.float32 and df["x"].nunique() > 10


def test_bare_ros2_bag_needs_the_turtlesim_definitions(tmp_path: Path) -> None:
    bag = shared("bags", "ros2", "turtlesim_no_metadata.db3")
    summary = write_topic_tables([bag], tmp_path / "without")
    by_topic = {t.topic: t for t in summary.tables}
    pose = by_topic["/turtle1/pose"]
    assert (pose.rows, pose.errors, pose.first_error_index, pose.path) == (0, 1173, 0, None)
    assert "turtlesim/msg/Pose" in pose.first_error and "msgdefs" in pose.first_error
    assert by_topic["/rosout"].rows == 6  # the known types are still written
    assert by_topic["/turtle1/cmd_vel"].rows == 0 and by_topic["/turtle1/cmd_vel"].path.exists()

    options = TopicTablesOptions(msgdefs={"turtlesim/msg/Pose": TURTLE_POSE_MSG})
    summary = write_topic_tables([bag], tmp_path / "with", options)
    assert summary.rows_per_topic()["/turtle1/pose"] == 1173
    df = pd.read_parquet(tmp_path / "with" / "turtle1.pose")
    assert list(df.columns)[1:] == ["x", "y", "theta", "linear_velocity", "angular_velocity"]
    # the turtle never moved (no cmd_vel): every pose is turtlesim's spawn point, decoded field by field
    assert df["x"].to_numpy() == pytest.approx(5.544445) and df["y"].to_numpy() == pytest.approx(5.544445)
    assert (df["theta"] == 0).all() and (df["linear_velocity"] == 0).all()


def test_tiny_svo_imu_orientation_header_and_covariance(tmp_path: Path) -> None:
    bag = shared("bags", "ros1", "tiny_svo.bag")
    write_topic_tables([bag], tmp_path, TopicTablesOptions(include=["/imu/data"]))
    table = pq.read_table(tmp_path / "imu.data" / "tiny_svo.parquet")
    msgs = _messages(bag, "/imu/data")
    assert table.num_rows == len(msgs) == 35
    for axis in "xyzw":
        expected = [getattr(m.orientation, axis) for _, m in msgs]
        assert table[f"orientation.{axis}"].to_pylist() == expected
    assert table["linear_acceleration.z"].to_pylist() == [m.linear_acceleration.z for _, m in msgs]
    stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for _, m in msgs]
    assert table["header_stamp_ns"].to_pylist() == stamps
    assert table["header.frame_id"].to_pylist() == ["imu"] * 35
    assert table.schema.field("orientation_covariance").type == pa.list_(pa.float64(), 9)
    assert table["orientation_covariance"].to_pylist()[0] == msgs[0][1].orientation_covariance.tolist()


def _cloud_points(data: bytes, step: int, count: int) -> np.ndarray:
    """x, y, z of each point, unpacked one by one (independent of the step's numpy decoding)."""
    return np.array([struct.unpack_from("<3f", data, i * step) for i in range(count)])


@pytest.mark.parametrize("binary", ["keep", "summary", "drop"])
def test_ros_numpy_pointcloud_under_each_binary_policy(tmp_path: Path, binary: str) -> None:
    bag = shared("bags", "ros1", "ros_numpy_test.bag")
    ((_, cloud),) = _messages(bag, "/pointcloud")
    raw = cloud.data.tobytes()
    assert len(raw) == 1500  # 100 points of 15 bytes
    summary = write_topic_tables(
        [bag], tmp_path, TopicTablesOptions(include=["/pointcloud"], binary=binary, max_binary_bytes=1000)
    )
    row = pq.read_table(tmp_path / "pointcloud" / "ros_numpy_test.parquet").to_pylist()[0]
    assert [f["name"] for f in row["fields"]] == ["x", "y", "z", "r", "g", "b"]
    assert (row["width"], row["height"], row["point_step"]) == (100, 1, 15)
    summary_columns = {k for k in row if ":" in k}
    if binary == "keep":
        assert row["data"] == raw and summary_columns == set()
        assert summary.tables[0].nulled == 0
        return
    assert row["data"] is None and summary.tables[0].nulled == 1
    if binary == "drop":
        assert summary_columns == set()
        return
    xyz = _cloud_points(raw, 15, 100)
    assert row["data:len"] == 1500 and row["data:points"] == 100
    for i, axis in enumerate("xyz"):
        assert row[f"data:{axis}_min"] == pytest.approx(xyz[:, i].min())
        assert row[f"data:{axis}_max"] == pytest.approx(xyz[:, i].max())


def test_small_blobs_are_kept_under_summary(tmp_path: Path) -> None:
    bag = shared("bags", "ros1", "ros_numpy_test.bag")
    write_topic_tables([bag], tmp_path, TopicTablesOptions(include=["/pointcloud", "/occupancygrid"]))
    cloud = pq.read_table(tmp_path / "pointcloud" / "ros_numpy_test.parquet").to_pylist()[0]
    assert len(cloud["data"]) == 1500 and cloud["data:points"] == 100
    grid = pq.read_table(tmp_path / "occupancygrid" / "ros_numpy_test.parquet")
    ((_, msg),) = _messages(bag, "/occupancygrid")
    assert grid["data"].to_pylist()[0] == msg.data.tolist()  # int8[] stays a list column
    assert grid["data:len"].to_pylist() == [900]
    assert grid["info.width"].to_pylist() == [30]


CUSTOM_MSG = """std_msgs/Header header
string label
Box[] boxes
Box best
float32[] scores
uint8[] mask
string[] tags
float64[4] quat
int16 level
time seen
================================================================================
MSG: my_pkg/Box
string label
float32 score
int32[] ids
geometry_msgs/Point center
"""
DETECTION = "my_pkg/msg/Detection"
FLAGS_MSG = "byte flag\nchar letter\nbool ok\nint64 big\nuint64 huge\nstring name\n"


def _custom_store(fmt: str):
    store = get_typestore(Stores.ROS1_NOETIC if fmt == "ros1" else Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(CUSTOM_MSG, DETECTION))
    return store


def _detection(store, fmt: str, i: int):
    t = store.types
    boxes = [
        t["my_pkg/msg/Box"](
            label=f"car{k}",
            score=0.5 + k / 8,
            ids=np.arange(k, dtype=np.int32),
            center=t["geometry_msgs/msg/Point"](x=k, y=i, z=0.0),
        )
        for k in range(i % 3)
    ]
    sec, nsec = divmod(1_000 + i, 10)
    return t[DETECTION](
        header=_header(store, fmt, 5_000_000_000 + i),
        label=f"frame{i}",
        boxes=boxes,
        best=t["my_pkg/msg/Box"](
            label="best",
            score=1.0,
            ids=np.array([i], np.int32),
            center=t["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
        ),
        scores=np.linspace(0, 1, i, dtype=np.float32),
        mask=np.full(i, 7, np.uint8),
        tags=[f"t{k}" for k in range(i % 2)],
        quat=np.array([0.0, 0.0, 0.0, 1.0]),
        level=-i,
        seen=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
    )


def _header(store, fmt: str, stamp_ns: int):
    t = store.types
    stamp = t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    extra = {"seq": 0} if fmt == "ros1" else {}
    return t["std_msgs/msg/Header"](stamp=stamp, frame_id="cam", **extra)


@pytest.mark.parametrize("fmt", ["ros1", "mcap", "sqlite3"])
def test_custom_type_defined_only_in_the_bag(tmp_path: Path, fmt: str) -> None:
    store = _custom_store(fmt)
    msgs = [(1_000 + i, _detection(store, fmt, i)) for i in range(7)]
    bag = write_bag(
        tmp_path / ("drive.bag" if fmt == "ros1" else "drive"), fmt, {"/detections": msgs}, typestore=store
    )
    assert DETECTION not in DEFAULT_TYPESTORE.fielddefs  # only the bag knows the type
    summary = write_topic_tables([bag], tmp_path / "out")
    assert summary.tables[0].msgtype == DETECTION and summary.tables[0].errors == 0
    table = pq.read_table(tmp_path / "out" / "detections" / "drive.parquet")
    assert table.num_rows == 7
    assert table["log_time_ns"].to_pylist() == [t for t, _ in msgs]
    assert table["header_stamp_ns"].to_pylist() == [5_000_000_000 + i for i in range(7)]
    assert table["label"].to_pylist() == [f"frame{i}" for i in range(7)]
    assert table["best.center.z"].to_pylist() == [3.0] * 7
    assert table["best.ids"].to_pylist() == [[i] for i in range(7)]
    assert table["seen.sec"].to_pylist() == [divmod(1_000 + i, 10)[0] for i in range(7)]
    assert table["level"].to_pylist() == [-i for i in range(7)]
    assert table["mask"].to_pylist() == [bytes([7] * i) for i in range(7)]
    assert table["tags"].to_pylist() == [[f"t{k}" for k in range(i % 2)] for i in range(7)]
    assert table["scores"].to_pylist()[3] == pytest.approx([0.0, 0.5, 1.0])
    assert table.schema.field("quat").type == pa.list_(pa.float64(), 4)
    boxes = table["boxes"].to_pylist()
    assert [len(b) for b in boxes] == [i % 3 for i in range(7)]
    assert boxes[2][1] == {
        "label": "car1",
        "score": 0.625,
        "ids": [0],
        "center": {"x": 1.0, "y": 2.0, "z": 0.0},
    }


@pytest.mark.parametrize("fmt", ["ros1", "mcap"])
def test_a_broken_message_is_skipped_and_counted_not_the_topic(tmp_path: Path, fmt: str) -> None:
    store = typestore_for(fmt)
    t = store.types
    cov = np.zeros(9)

    def imu(i: int):
        v = t["geometry_msgs/msg/Vector3"](x=float(i), y=0.0, z=0.0)
        q = t["geometry_msgs/msg/Quaternion"](x=float(i), y=0.0, z=0.0, w=1.0)
        return t[IMU](make_header(fmt, 10 + i, "imu"), q, cov, v, cov, v, cov)

    path = tmp_path / ("b.bag" if fmt == "ros1" else "b")
    serialize = store.serialize_ros1 if fmt == "ros1" else store.serialize_cdr
    writer = (
        Ros1Writer(path) if fmt == "ros1" else Ros2Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    )
    with writer:
        conn = writer.add_connection("/imu", IMU, typestore=store)
        for i in range(6):
            raw = bytes(serialize(imu(i), IMU))
            writer.write(conn, 100 + i, raw[: len(raw) // 2] if i in (2, 4) else raw)
    summary = write_topic_tables([path], tmp_path / "out")
    (table,) = summary.tables
    assert (table.messages, table.rows, table.errors, table.first_error_index) == (6, 4, 2, 2)
    assert summary.errors_per_topic() == {"/imu": 2}
    out = pq.read_table(tmp_path / "out" / "imu" / "b.parquet")
    assert out["orientation.x"].to_pylist() == [0.0, 1.0, 3.0, 5.0]
    assert out["log_time_ns"].to_pylist() == [100, 101, 103, 105]


def test_a_row_arrow_rejects_costs_only_that_row() -> None:
    store = DEFAULT_TYPESTORE
    plan = build_plan(store, "std_msgs/msg/String", 1024, summary=False)
    buffer = TopicBuffer(plan, TopicTablesOptions(), plan.schema())
    text = store.types["std_msgs/msg/String"]
    buffer.add(0, 10, text(data="a"), 8)
    buffer.add(1, 11, text(data=12345), 8)  # a malformed message object: not a string
    buffer.add(2, 12, text(data="c"), 8)
    batch, failures = buffer.take()
    assert batch.column("data").to_pylist() == ["a", "c"]
    assert [i for i, _ in failures] == [1] and "ArrowTypeError" in failures[0][1]
    assert len(buffer) == 0


def test_row_groups_are_bounded_and_topics_filtered(tmp_path: Path) -> None:
    bag = shared("bags", "ros1", "rosbagjs_example.bag")
    options = TopicTablesOptions(include=["/turtle*", "/tf"], exclude=["*/cmd_vel"], row_group_rows=100)
    summary = write_topic_tables([bag], tmp_path, options)
    assert sorted(t.topic for t in summary.tables) == [
        "/tf",
        "/turtle1/color_sensor",
        "/turtle1/pose",
        "/turtle2/color_sensor",
        "/turtle2/pose",
    ]
    meta = pq.ParquetFile(tmp_path / "turtle1.pose" / "rosbagjs_example.parquet").metadata
    assert meta.num_row_groups == 14  # 1344 rows in groups of at most 100
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == 100
    tight = TopicTablesOptions(include=["/turtle1/pose"], row_group_bytes=500)
    write_topic_tables([("tight", bag)], tmp_path, tight)
    meta = pq.ParquetFile(tmp_path / "turtle1.pose" / "tight.parquet").metadata
    assert meta.num_rows == 1344 and meta.num_row_groups > 50  # 20-byte messages, 500-byte groups


def test_a_drive_of_several_bags_reads_back_as_one_table_per_topic(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "run2").mkdir(parents=True)
    for name in ("rosbagjs_example.bag", "rosbagjs_example-bz2.bag"):
        (landing / name).write_bytes(shared("bags", "ros1", name).read_bytes())
    (landing / "broken.bag").write_bytes(b"#ROSBAG V2.0\nnot really")
    (landing / "run2" / "tiny.db3").write_bytes((ROS2_BAGS / "turtlesim_no_metadata.db3").read_bytes())
    storage = LocalStorage(landing)
    bags, _ = find_bags(storage.list_files(""))
    summary = write_drive_topic_tables(
        storage, bags, tmp_path / "out", TopicTablesOptions(include=["/turtle1/pose", "/rosout"])
    )
    assert list(summary.bag_errors) == ["broken.bag"] and "broken.bag" in summary.bag_errors["broken.bag"]
    files = sorted(p.name for p in (tmp_path / "out" / "turtle1.pose").iterdir())
    assert files == [
        "rosbagjs_example-bz2.bag.parquet",
        "rosbagjs_example.bag.parquet",
    ]  # run2 has no Pose definition
    pose = pd.read_parquet(tmp_path / "out" / "turtle1.pose")
    assert len(pose) == 2 * 1344
    # ROS1 and ROS2 rosout differ in type and schema, yet both land in the topic's folder
    assert summary.rows_per_topic() == {"/turtle1/pose": 2 * 1344, "/rosout": 10 + 10 + 6}
    meta = summary.metadata()
    assert meta["rows"]["raw_value"] == 2 * 1344 + 26
    assert meta["skipped_messages"]["raw_value"] == 1173
    assert len(meta["per_table"]["raw_value"]["records"]) == 6
    # rows over time, counted while writing: every written row in one bin, each bag's span its log times
    binned: dict[str, int] = {}
    for row in summary.rate_rows():
        binned[row["topic"]] = binned.get(row["topic"], 0) + row["count"]
    assert binned == summary.rows_per_topic()
    spans = {s["bag"]: (s["start_ns"], s["end_ns"]) for s in summary.bag_spans()}
    times = pd.concat(
        pd.read_parquet(f)["log_time_ns"] for f in (tmp_path / "out").glob("*/rosbagjs_example.bag.parquet")
    )
    assert spans["rosbagjs_example.bag"] == (times.min(), times.max()) and len(spans) == 3
    picture = draw_topic_rows(summary.bag_spans(), summary.rate_rows(), "rows")
    assert picture.shape == (topic_rows.TITLE_H + 2 * topic_rows.ROW_H + topic_rows.AXIS_H, 640, 3)
    for i, share in enumerate((0.01, 0.3)):  # /rosout's 26 messages draw a few bars, the pose a long band
        row = picture[topic_rows.TITLE_H + i * topic_rows.ROW_H :][: topic_rows.ROW_H].astype(int)
        assert (row.max(axis=2) - row.min(axis=2) > 20).mean() > share  # coloured: not white or grey


def test_fieldless_messages_and_topics_that_share_a_folder_name(tmp_path: Path) -> None:
    t = typestore_for("ros1").types
    bag = write_bag(
        tmp_path / "e.bag",
        "ros1",
        {
            "/ping": [(1, t["std_msgs/msg/Empty"]()), (2, t["std_msgs/msg/Empty"]())],
            "ping": [(3, t["std_msgs/msg/String"](data="relative"))],
        },
    )
    summary = write_topic_tables([bag], tmp_path / "out")
    paths = {t.topic: t.path.relative_to(tmp_path / "out").as_posix() for t in summary.tables}
    assert paths == {"/ping": "ping/e.parquet", "ping": "ping@2/e.parquet"}
    empty = pq.read_table(tmp_path / "out" / "ping" / "e.parquet")
    assert empty.column_names == ["log_time_ns"] and empty["log_time_ns"].to_pylist() == [1, 2]
    assert pq.read_table(tmp_path / "out" / "ping@2" / "e.parquet")["data"].to_pylist() == ["relative"]


def _tables(out: Path) -> dict[str, pa.Table]:
    return {p.relative_to(out).as_posix(): pq.read_table(p) for p in sorted(out.rglob("*.parquet"))}


def test_fast_path_writes_exactly_what_rosbags_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "FAST_MIN_ROWS", 1)  # small topics too, for coverage
    names = ("rosbagjs_example.bag", "tiny_svo.bag", "ros_numpy_test.bag", "turtlesim_no_metadata.db3")
    bags = [p for p in _all_real_bags() if p.name in names]  # every format and message kind, once
    flags_store = get_typestore(Stores.ROS1_NOETIC)
    flags_store.register(get_types_from_msg(FLAGS_MSG, "my_pkg/msg/Flags"))
    flags_cls = flags_store.types["my_pkg/msg/Flags"]
    flags = [
        (
            i,
            flags_cls(
                flag=-3 + i, letter=200 + i, ok=bool(i % 2), big=-(2**62), huge=2**64 - 1 - i, name="n"
            ),
        )
        for i in range(4)
    ]
    flags_bag = write_bag(tmp_path / "flags.bag", "ros1", {"/flags": flags}, typestore=flags_store)
    bags.append(flags_bag)
    store = _custom_store("mcap")
    custom = write_bag(
        tmp_path / "custom",
        "mcap",
        {"/det": [(i, _detection(store, "mcap", 4)) for i in range(5)]},
        typestore=store,
    )
    options = {"msgdefs": {"turtlesim/msg/Pose": TURTLE_POSE_MSG, "turtlesim/msg/Color": TURTLE_COLOR_MSG}}
    fast = write_topic_tables([*bags, custom], tmp_path / "fast", TopicTablesOptions(**options))
    slow = write_topic_tables(
        [*bags, custom], tmp_path / "slow", TopicTablesOptions(fast_path=False, **options)
    )
    assert sum(t.fast_rows for t in slow.tables) == 0
    fast_rows = {(t.bag, t.topic): t.fast_rows for t in fast.tables}
    assert fast_rows[("rosbagjs_example", "/turtle1/pose")] == 1344
    assert fast_rows[("turtlesim_no_metadata", "/turtle1/pose")] == 1173  # CDR
    assert fast_rows[("tiny_svo", "/imu/data")] == 35  # a header with a string
    assert fast_rows[("rosbagjs_example", "/tf")] == 0  # arrays of messages go through rosbags
    assert fast_rows[("custom", "/det")] == 0
    assert fast_rows[("flags", "/flags")] == 4
    flags_table = pq.read_table(tmp_path / "fast" / "flags" / "flags.parquet")
    assert flags_table["flag"].to_pylist() == [-3, -2, -1, 0]  # ROS byte is signed, char unsigned
    assert flags_table["letter"].to_pylist() == [200, 201, 202, 203]
    assert flags_table["huge"].to_pylist() == [2**64 - 1 - i for i in range(4)]
    a, b = _tables(tmp_path / "fast"), _tables(tmp_path / "slow")
    assert a.keys() == b.keys() and len(a) > 20
    for name in a:
        assert a[name].equals(b[name]), name


def test_fast_path_falls_back_when_the_layout_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "FAST_MIN_ROWS", 1)
    store = typestore_for("mcap")
    t = store.types
    cov = np.arange(9, dtype=np.float64)

    def imu(i: int, frame: str):
        v = t["geometry_msgs/msg/Vector3"](x=float(i), y=-1.5, z=2.0**i)
        q = t["geometry_msgs/msg/Quaternion"](x=float(i), y=0.0, z=0.0, w=1.0)
        return t[IMU](make_header("mcap", 10 + i, frame), q, cov, v, cov, v, cov)

    frames = ["imu"] * 4 + ["imu_left"] * 3 + ["imu"] * 5 + ["abc"] * 4 + ["big"] * 2
    raws = [bytes(store.serialize_cdr(imu(i, f), IMU)) for i, f in enumerate(frames)]
    raws[13] = raws[13].replace(b"abc", b"\xff\xfe\xfd")  # same size, not UTF-8: rosbags rejects it
    raws[16] = bytes(store.serialize_cdr(imu(16, "big"), IMU, little_endian=False))
    raws[17] = bytes(store.serialize_cdr(imu(17, "big"), IMU, little_endian=False))
    path = tmp_path / "bag"
    with Ros2Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/imu", IMU, typestore=store)
        for i, raw in enumerate(raws):
            writer.write(conn, 100 + i, raw)
    # row groups of 4: [imu x4] fast, [imu_left x3 + imu] mixed, [imu x4] fast, [abc x4] one broken, [big x2] BE
    (table,) = write_topic_tables([path], tmp_path / "out", TopicTablesOptions(row_group_rows=4)).tables
    assert (table.rows, table.errors, table.first_error_index) == (17, 1, 13)
    assert "UnicodeDecodeError" in table.first_error or "decode" in table.first_error
    assert table.fast_rows == 4 + 4
    out = pq.read_table(tmp_path / "out" / "imu" / "bag.parquet")
    kept = [i for i in range(18) if i != 13]
    assert out["header.frame_id"].to_pylist() == [frames[i] for i in kept]
    assert out["angular_velocity.z"].to_pylist() == [2.0**i for i in kept]
    assert out["header_stamp_ns"].to_pylist() == [10 + i for i in kept]
    assert out["orientation_covariance"].to_pylist()[-1] == cov.tolist()  # big-endian, read by rosbags


def test_a_bag_damaged_mid_way_keeps_what_was_read_and_says_where_it_stopped(tmp_path: Path) -> None:
    store = typestore_for("ros1")
    text = store.types["std_msgs/msg/String"]
    bag = tmp_path / "damaged.bag"
    writer = Ros1Writer(bag)
    writer.set_compression(Ros1Writer.CompressionFormat.LZ4)
    writer.chunk_threshold = 4096  # many small chunks
    with writer:
        conn = writer.add_connection("/s", "std_msgs/msg/String", typestore=store)
        for i in range(2000):
            writer.write(
                conn, 1000 + i, store.serialize_ros1(text(data=f"message {i} " * 3), "std_msgs/msg/String")
            )
    data = bytearray(bag.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(
        200
    )  # zeroes inside an lz4 chunk: it fails when the reader gets there
    bag.write_bytes(bytes(data))
    good = shared("bags", "ros1", "rosbagjs_example-unsorted-chunks.bag")
    summary = write_topic_tables([bag, good], tmp_path / "out")
    assert list(summary.bag_errors) == ["damaged"]
    assert "reading stopped after" in summary.bag_errors["damaged"] and "LZ4" in summary.bag_errors["damaged"]
    (damaged,) = [t for t in summary.tables if t.bag == "damaged"]
    assert 500 < damaged.rows < 2000
    out = pq.read_table(damaged.path)  # a valid file of the messages before the damage, in order
    assert out["data"].to_pylist() == [f"message {i} " * 3 for i in range(damaged.rows)]
    assert summary.rows_per_topic()["foo"] == 3  # the next bag is written whole
