"""foxglove_mcap: a drive's frames, labels, scenes and timeline as an MCAP, read back with `mcap`'s reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from mcap.reader import make_reader

from rosbag_assets.io.foxglove_annotations import class_rgb
from rosbag_assets.io.foxglove_mcap import FoxgloveExportError, write_foxglove_mcap
from rosbag_assets.vision.foxglove_frame import draw_foxglove_frame

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _jpegs() -> list[bytes]:
    folder = SHARED_DATA / "images" / "bdd100k"
    files = sorted(folder.glob("*.jpg"))
    if not files:
        pytest.skip(f"shared test data missing: {folder}")
    return [f.read_bytes() for f in files]


def _drive(n: int = 6) -> dict[str, pd.DataFrame]:
    """Frames of two cameras (real JPEGs), boxes on some frames, lanes, two scenes and a speed signal."""
    jpegs = _jpegs()
    frames = pd.DataFrame(
        [
            {
                "topic": topic,
                "stamp_ns": T0 + i * 100 * MS + shift,
                "frame_key": f"{topic}/{i}",
                "format": "jpg",
                "i": i,
            }
            for topic, shift in (("/front/image", 0), ("/side/image", 5 * MS))
            for i in range(n)
        ]
    )
    frames["blob"] = [jpegs[i % len(jpegs)] for i in frames["i"]]
    boxes = [  # frame index, x1, y1, x2, y2, class, confidence
        ("/front/image", 1, 10.0, 20.0, 110.0, 220.0, "car", 0.91),
        ("/front/image", 1, 300.0, 40.0, 340.0, 140.0, "person", 0.55),
        ("/front/image", 4, 1.0, 2.0, 3.0, 4.0, "bus", 0.7),
        ("/side/image", 2, 5.0, 5.0, 50.0, 60.0, "car", 0.8),
    ]
    objects = pd.DataFrame(
        [
            {
                "topic": topic,
                "frame_key": f"{topic}/{i}",
                "stamp_ns": T0 + i * 100 * MS + (5 * MS if "side" in topic else 0),
            }
            | dict(zip(["x1", "y1", "x2", "y2", "class_name", "confidence"], rest, strict=True))
            for topic, i, *rest in boxes
        ]
    )
    line = [[400.0, 400.0], [600.0, 300.0]]
    lanes = pd.DataFrame(
        [
            {"topic": "/front/image", "frame_key": f"/front/image/{i}", "stamp_ns": T0 + i * 100 * MS}
            | {"side": side, "points": [[100.0 + i, 700.0], *line]}
            for i in range(n)
            for side in ("left", "right")
        ]
    )
    scenes = pd.DataFrame(
        [
            {"start_ns": T0 + 50 * MS, "end_ns": T0 + 250 * MS, "rule": "pedestrian_near", "name": "s0"},
            {"start_ns": T0 + 300 * MS, "end_ns": T0 + 450 * MS, "rule": "hard_brake", "name": "s1"},
        ]
    )
    timeline = pd.DataFrame({"time_ns": [T0 + k * 50 * MS for k in range(2 * n)]})
    timeline["speed_mps"] = [10.0 + k for k in range(2 * n)]
    timeline["brake"] = [0.0] * (2 * n - 1) + [float("nan")]
    return {"frames": frames, "objects": objects, "lanes": lanes, "scenes": scenes, "timeline": timeline}


def _read_blob(row: dict[str, Any]) -> bytes:
    return row["blob"]


class _Decoder:
    """Protobuf messages from the schemas stored in the file itself (as Foxglove decodes them)."""

    def __init__(self) -> None:
        self.classes: dict[int, Any] = {}

    def __call__(self, schema: Any, data: bytes) -> Any:
        if schema.id not in self.classes:
            fds = descriptor_pb2.FileDescriptorSet.FromString(schema.data)
            pool = descriptor_pool.DescriptorPool()
            pending = list(fds.file)
            while pending:  # dependencies first, whatever order the set lists them in
                for fd in list(pending):
                    if all(dep in {f.name for f in fds.file if f not in pending} for dep in fd.dependency):
                        pool.Add(fd)
                        pending.remove(fd)
            self.classes[schema.id] = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))
        return self.classes[schema.id].FromString(data)


def _read(path: Path) -> tuple[Any, list[tuple[str, str, int, Any]]]:
    """(summary, [(topic, schema name, log time, decoded message)])."""
    decode = _Decoder()
    with path.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        out = []
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            if schema.encoding == "protobuf":
                decoded = decode(schema, message.data)
            else:
                assert schema.encoding == "jsonschema" and channel.message_encoding == "json"
                decoded = json.loads(message.data)
            out.append((channel.topic, schema.name, message.log_time, decoded))
    return summary, out


def test_drive_export_opens_with_every_schema_and_count(tmp_path: Path) -> None:
    d = _drive()
    path = tmp_path / "drive.mcap"
    labels = {k: d[k] for k in ("objects", "lanes", "scenes", "timeline")}
    export = write_foxglove_mcap(path, d["frames"], _read_blob, **labels, metadata={"drive": "d1"})
    summary, messages = _read(path)
    schemas = {s.name: s.encoding for s in summary.schemas.values()}
    assert schemas == {
        "foxglove.CompressedImage": "protobuf",
        "foxglove.ImageAnnotations": "protobuf",
        "foxglove.Event": "protobuf",
        "foxglove.Log": "protobuf",
        "rosbag_assets.timeline": "jsonschema",
    }
    counts = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
    assert counts == {
        "/front/image": 6,
        "/side/image": 6,
        "/front/image/objects": 6,  # one per frame, empty ones included
        "/side/image/objects": 6,
        "/front/image/lanes": 6,
        "/side/image/lanes": 6,
        "/scenes": 2,
        "/scenes/log": 4,
        "/timeline": 12,
    }
    assert export.messages == counts and export.bytes == path.stat().st_size
    assert (export.boxes, export.lanes, export.unmatched_labels) == (4, 12, 0)

    # images: the stored bytes at their stamps
    frames = d["frames"]
    for topic in ("/front/image", "/side/image"):
        got = [(t, m) for top, _, t, m in messages if top == topic]
        want = frames[frames["topic"] == topic]
        assert [t for t, _ in got] == want["stamp_ns"].tolist()
        assert [m.data for _, m in got] == want["blob"].tolist()
        assert {m.format for _, m in got} == {"jpeg"}
        assert [m.timestamp.seconds * 10**9 + m.timestamp.nanos for _, m in got] == want["stamp_ns"].tolist()

    # annotations: one closed box + one text per label row, at the frame's stamp
    boxes = [(t, m) for top, _, t, m in messages if top.endswith("/objects")]
    assert sum(len(m.points) for _, m in boxes) == len(d["objects"]) == sum(len(m.texts) for _, m in boxes)
    by_time = {t: m for t, m in boxes if m.points and t == T0 + 100 * MS}
    (frame1,) = by_time.values()
    assert [len(p.points) for p in frame1.points] == [4, 4]
    assert {p.type for p in frame1.points} == {2}  # LINE_LOOP
    car = frame1.points[0]
    assert [(p.x, p.y) for p in car.points] == [(10.0, 20.0), (110.0, 20.0), (110.0, 220.0), (10.0, 220.0)]
    assert [t.text for t in frame1.texts] == ["car 0.91", "person 0.55"]
    lane_msgs = [m for top, _, _, m in messages if top == "/front/image/lanes"]
    assert sum(len(m.points) for m in lane_msgs) == len(d["lanes"])
    assert {p.type for m in lane_msgs for p in m.points} == {3}  # LINE_STRIP
    assert [(p.x, p.y) for p in lane_msgs[2].points[0].points] == [
        (102.0, 700.0),
        (400.0, 400.0),
        (600.0, 300.0),
    ]

    # scenes: events with their rule, log lines at start and end
    events = [(t, m) for top, _, t, m in messages if top == "/scenes"]
    assert [t for t, _ in events] == d["scenes"]["start_ns"].tolist()
    assert [{kv.key: kv.value for kv in m.metadata} for _, m in events] == [
        {"rule": "pedestrian_near", "name": "s0"},
        {"rule": "hard_brake", "name": "s1"},
    ]
    assert events[1][1].end_time.seconds * 10**9 + events[1][1].end_time.nanos == T0 + 450 * MS
    log_times = sorted(t for top, _, t, _ in messages if top == "/scenes/log")
    assert log_times == sorted([*d["scenes"]["start_ns"], *d["scenes"]["end_ns"]])

    # timeline: numbers at their times, NaN left out
    rows = [(t, m) for top, _, t, m in messages if top == "/timeline"]
    assert [t for t, _ in rows] == d["timeline"]["time_ns"].tolist()
    assert rows[3][1] == {"time_ns": T0 + 150 * MS, "speed_mps": 13.0, "brake": 0.0}
    assert "brake" not in rows[-1][1]
    timeline_schema = next(s for s in summary.schemas.values() if s.name == "rosbag_assets.timeline")
    assert json.loads(timeline_schema.data)["properties"]["speed_mps"] == {"type": "number"}
    with path.open("rb") as f:
        assert [(m.name, m.metadata) for m in make_reader(f).iter_metadata()] == [
            ("rosbag_assets", {"drive": "d1"})
        ]


def test_messages_are_written_in_time_order(tmp_path: Path) -> None:
    d = _drive()
    path = tmp_path / "drive.mcap"
    write_foxglove_mcap(
        path, d["frames"], _read_blob, objects=d["objects"], scenes=d["scenes"], timeline=d["timeline"]
    )
    with path.open("rb") as f:
        times = [m.log_time for _, _, m in make_reader(f).iter_messages(log_time_order=False)]
    assert times == sorted(times)


def test_one_scene_range(tmp_path: Path) -> None:
    d = _drive()
    path = tmp_path / "scene.mcap"
    start, end = T0 + 50 * MS, T0 + 250 * MS  # scene s0
    labels = {k: d[k] for k in ("objects", "lanes", "scenes", "timeline")}
    export = write_foxglove_mcap(path, d["frames"], _read_blob, **labels, start_ns=start, end_ns=end)
    _, messages = _read(path)
    front = [t for top, _, t, _ in messages if top == "/front/image"]
    assert front == [T0 + 100 * MS, T0 + 200 * MS]
    assert all(start <= t < end for _, _, t, _ in messages)  # the scene's end is the range's end: no end line
    assert (export.boxes, export.lanes, export.unmatched_labels) == (3, 4, 0)  # the bus at 400 ms is outside
    assert [t for top, _, t, _ in messages if top == "/scenes"] == [start]
    assert len([1 for top, *_ in messages if top == "/timeline"]) == 4


def test_labels_without_frame_key_match_on_topic_and_stamp(tmp_path: Path) -> None:
    d = _drive(3)
    frames = d["frames"].drop(columns=["frame_key", "format"])  # format is sniffed from the bytes
    objects = d["objects"].drop(columns=["frame_key"])
    export = write_foxglove_mcap(tmp_path / "a.mcap", frames, _read_blob, objects=objects)
    assert export.boxes == 3 and export.unmatched_labels == 1  # frame 4 is not in a 3-frame drive
    _, messages = _read(tmp_path / "a.mcap")
    assert {m.format for top, _, _, m in messages if top == "/side/image"} == {"jpeg"}


def test_png_frames_and_bad_input(tmp_path: Path) -> None:
    frames = pd.DataFrame([{"topic": "cam", "stamp_ns": T0, "format": "png"}])
    write_foxglove_mcap(tmp_path / "p.mcap", frames, lambda row: b"\x89PNG\r\n\x1a\nrest")
    _, messages = _read(tmp_path / "p.mcap")
    assert [(top, m.format, m.data) for top, _, _, m in messages] == [
        ("/cam", "png", b"\x89PNG\r\n\x1a\nrest")
    ]
    tiff = pd.DataFrame(
        [{"topic": "depth", "stamp_ns": T0, "format": "tiff"}, {"topic": "depth", "stamp_ns": T0 + 1}]
    )
    export = write_foxglove_mcap(tmp_path / "t.mcap", tiff, lambda row: b"II*\x00 a float TIFF")
    assert export.skipped_frames == 2 and export.messages == {}
    with pytest.raises(FoxgloveExportError, match="frames: missing column"):
        write_foxglove_mcap(tmp_path / "x.mcap", frames.drop(columns="stamp_ns"), lambda row: b"")
    with pytest.raises(FoxgloveExportError, match=r"timeline: columns \['note'\] are not numeric"):
        write_foxglove_mcap(
            tmp_path / "y.mcap",
            frames,
            lambda row: b"",
            timeline=pd.DataFrame({"time_ns": [T0], "note": ["x"]}),
        )


def test_the_frame_with_most_annotations_is_kept_and_drawn_as_foxglove_shows_it(tmp_path: Path) -> None:
    d = _drive()
    export = write_foxglove_mcap(
        tmp_path / "drive.mcap", d["frames"], _read_blob, objects=d["objects"], lanes=d["lanes"]
    )
    sample = export.sample
    assert sample is not None  # front frame 1: two boxes and two lanes, more than any other frame
    assert (sample.topic, sample.stamp_ns) == ("/front/image", T0 + 100 * MS)
    assert sample.data == d["frames"]["blob"][1]
    assert [b["class_name"] for b in sample.boxes] == ["car", "person"] and len(sample.lanes) == 2
    picture = draw_foxglove_frame(sample.data, sample.topic, sample.stamp_ns, sample.boxes, sample.lanes)
    frame = cv2.imdecode(np.frombuffer(sample.data, np.uint8), cv2.IMREAD_COLOR)
    k = 640 / frame.shape[1]
    assert picture.shape == (round(frame.shape[0] * k), 640, 3)
    # the car's box in the colour its ImageAnnotations carry, along its left edge below the tag
    car_bgr = np.array(class_rgb(sample.boxes[0])[::-1]) * 255
    edge = picture[round(150 * k) : round(215 * k), round(10 * k)].astype(float)
    assert np.abs(edge - car_bgr).max(axis=1).mean() < 40
    # the right lane (blue in Foxglove; drawn over the left one, which has the same points here)
    right = picture[round(550.5 * k), round(250.5 * k)].astype(int)
    assert right[0] > 150 and right[2] < 120
    strip = picture[-30:]  # the caption: white text on black
    assert 0.7 < (strip.max(axis=2) < 30).mean() < 0.98 and (strip.min(axis=2) > 220).any()
