"""One drive (or one time range / scene of it) as an MCAP file that Foxglove opens as it is.

Written with foxglove-sdk's typed schemas (protobuf) into a private `foxglove.Context`, so nothing is
shared between files or with a live Foxglove server:

- ``<topic>``: ``foxglove.CompressedImage``, the stored JPEG/PNG bytes untouched;
- ``<topic>/objects``: ``foxglove.ImageAnnotations``, one per frame of the topic (empty where nothing was
  found, so old boxes do not linger): a closed LINE_LOOP per box and a "class score" text at its corner;
- ``<topic>/lanes``: ``foxglove.ImageAnnotations``, a LINE_STRIP per lane polyline, coloured by side;
- ``/scenes``: ``foxglove.Event`` (start/end, rule and any other scene column as metadata), and
  ``/scenes/log``: ``foxglove.Log`` lines at each scene's start and end, for the Log panel;
- ``/timeline``: JSON with a JSON schema of numbers, one message per timeline row, for Plot panels.

Every message's log time is its frame stamp / scene start / timeline time, and messages are written in time
order, reading one frame's bytes at a time.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from foxglove import Channel, Context, open_mcap
from foxglove.channels import CompressedImageChannel, EventChannel, ImageAnnotationsChannel, LogChannel
from foxglove.mcap import MCAPCompression, MCAPWriteOptions
from foxglove.messages import (
    CompressedImage,
    Event,
    KeyValuePair,
    Log,
    LogLevel,
)

from rosbag_assets.io.foxglove_annotations import box_annotations, lane_annotations, timestamp

_KEY_COLUMNS = {"topic", "stamp_ns", "frame_key"}
SCENES_TOPIC = "/scenes"
SCENES_LOG_TOPIC = "/scenes/log"
TIMELINE_TOPIC = "/timeline"
_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}


class FoxgloveExportError(ValueError):
    """Input that cannot become an MCAP; says which table and column."""


@dataclass
class SampleFrame:
    """The written frame with the most annotations (the first one when none has any), as the step's
    picture: kept while writing, so showing it reads nothing again."""

    topic: str
    stamp_ns: int
    data: bytes
    boxes: list[dict[str, Any]]
    lanes: list[dict[str, Any]]


@dataclass
class FoxgloveExport:
    """What `write_foxglove_mcap` wrote."""

    path: Path
    bytes: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # channel topic -> messages
    boxes: int = 0  # object label rows drawn
    lanes: int = 0  # lane rows drawn
    skipped_frames: int = 0  # frames neither JPEG nor PNG (float depth TIFFs), left out with their labels
    unmatched_labels: int = 0  # label rows whose frame is not among `frames` at all (labels of other frames)
    start_ns: int | None = None
    end_ns: int | None = None
    sample: SampleFrame | None = None


def write_foxglove_mcap(
    path: Path,
    frames: pd.DataFrame,
    read_bytes: Callable[[dict[str, Any]], bytes],
    *,
    objects: pd.DataFrame | None = None,
    lanes: pd.DataFrame | None = None,
    scenes: pd.DataFrame | None = None,
    timeline: pd.DataFrame | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    metadata: dict[str, str] | None = None,
    compression: str | None = "zstd",
) -> FoxgloveExport:
    """Write frames (+ labels, scenes, timeline) within ``[start_ns, end_ns)`` to a new MCAP at `path`.

    `frames`: frame index rows (``topic``, ``stamp_ns``, ``format``; ``frame_key`` when labels carry it);
    `read_bytes(row)` gives a frame's stored bytes. `objects`: ``x1 y1 x2 y2 class_name confidence`` in
    frame pixels; `lanes`: ``points`` ([[x, y], ...]) and ``side``; both matched to frames by ``frame_key``
    (or ``topic`` + ``stamp_ns``). `scenes`: ``start_ns end_ns rule`` (+ any columns); `timeline`:
    ``time_ns`` + numeric columns. `metadata` goes into an MCAP metadata record named ``rosbag_assets``.
    """
    path = Path(path)
    all_frames = _require(frames, "frames", ["topic", "stamp_ns"])
    export = FoxgloveExport(path)
    keyer = _frame_keyer(all_frames, objects, lanes)
    boxes = _group(objects, "objects", ["x1", "y1", "x2", "y2", "class_name", "confidence"], keyer)
    polylines = _group(lanes, "lanes", ["points", "side"], keyer)
    frame_keys = {
        keyer(row) for row in all_frames[[*_KEY_COLUMNS & set(all_frames.columns)]].to_dict("records")
    }
    export.unmatched_labels = sum(
        len(rows) for grouped in (boxes, polylines) for key, rows in grouped.items() if key not in frame_keys
    )
    frames = _in_range(all_frames, "stamp_ns", start_ns, end_ns).sort_values("stamp_ns", kind="stable")
    frames = frames.reset_index(drop=True)
    scenes_df = _scenes(scenes, start_ns, end_ns)
    timeline_df = _timeline(timeline, start_ns, end_ns)

    ctx = Context()
    options = MCAPWriteOptions(compression=_compression(compression))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_mcap(path, allow_overwrite=True, context=ctx, writer_options=options) as writer:
        if metadata:
            writer.write_metadata("rosbag_assets", {str(k): str(v) for k, v in metadata.items()})
        channels = _Channels(ctx, export)
        streams = [
            _frame_messages(
                frames, read_bytes, keyer, (objects, boxes), (lanes, polylines), channels, export
            ),
            _scene_messages(scenes_df, end_ns, channels),
            _timeline_messages(timeline_df, channels),
        ]
        for _, _, emit in heapq.merge(*streams, key=lambda item: item[:2]):
            emit()
    export.bytes = path.stat().st_size
    times = list(frames["stamp_ns"]) + list(scenes_df["start_ns"]) + list(timeline_df["time_ns"])
    if times:
        export.start_ns, export.end_ns = int(min(times)), int(max(times))
    return export


class _Channels:
    """Channels created on first use, each counting what it logged."""

    def __init__(self, ctx: Context, export: FoxgloveExport) -> None:
        self.ctx = ctx
        self.export = export
        self.channels: dict[str, Any] = {}

    def log(self, topic: str, make: Callable[[str], Any], message: Any, log_time: int) -> None:
        channel = self.channels.get(topic)
        if channel is None:
            channel = self.channels[topic] = make(topic)
        channel.log(message, log_time=int(log_time))
        self.export.messages[topic] = self.export.messages.get(topic, 0) + 1

    def typed(self, cls: Any) -> Callable[[str], Any]:
        return lambda topic: cls(topic, context=self.ctx)


Stream = Iterator[tuple[int, int, Callable[[], None]]]


def _frame_messages(
    frames: pd.DataFrame,
    read_bytes: Callable[[dict[str, Any]], bytes],
    keyer: Callable[[dict[str, Any]], Any],
    objects: tuple[pd.DataFrame | None, dict[Any, list[dict[str, Any]]]],
    lanes: tuple[pd.DataFrame | None, dict[Any, list[dict[str, Any]]]],
    channels: _Channels,
    export: FoxgloveExport,
) -> Stream:
    """Each frame, then its annotations, at the frame's stamp (order 0: frames lead at equal times).

    Given a label table, every frame gets an annotations message, empty when it has no labels.
    """
    (objects_df, boxes), (lanes_df, polylines) = objects, lanes
    images, annotations = channels.typed(CompressedImageChannel), channels.typed(ImageAnnotationsChannel)
    for row in frames.to_dict("records"):
        stamp = int(row["stamp_ns"])

        def emit(row: dict[str, Any] = row, stamp: int = stamp) -> None:
            topic = _topic(row["topic"])
            data = read_bytes(row)
            fmt = _FORMATS.get(str(row.get("format", "")).lower().lstrip(".")) or _sniff(data)
            if fmt is None:  # e.g. a float depth TIFF: Foxglove's CompressedImage takes JPEG/PNG/WebP/AVIF
                export.skipped_frames += 1
                return
            image = CompressedImage(timestamp=timestamp(stamp), frame_id=topic, data=bytes(data), format=fmt)
            channels.log(topic, images, image, stamp)
            key = keyer(row)
            found_boxes, found_lanes = boxes.get(key, []), polylines.get(key, [])
            if objects_df is not None:
                export.boxes += len(found_boxes)
                channels.log(f"{topic}/objects", annotations, box_annotations(found_boxes, stamp), stamp)
            if lanes_df is not None:
                export.lanes += len(found_lanes)
                channels.log(f"{topic}/lanes", annotations, lane_annotations(found_lanes, stamp), stamp)
            shown = len(found_boxes) + len(found_lanes)
            if export.sample is None or shown > len(export.sample.boxes) + len(export.sample.lanes):
                export.sample = SampleFrame(topic, stamp, bytes(data), found_boxes, found_lanes)

        yield stamp, 0, emit


def _scene_messages(scenes: pd.DataFrame, end_ns: int | None, channels: _Channels) -> Stream:
    """An Event per scene at its start, Log lines at its start and end (order 1: after frames)."""
    extra = [c for c in scenes.columns if c not in ("start_ns", "end_ns", "log_time_ns")]
    events, logs = channels.typed(EventChannel), channels.typed(LogChannel)
    for i, row in enumerate(scenes.to_dict("records")):
        start, end, log_time = int(row["start_ns"]), int(row["end_ns"]), int(row["log_time_ns"])
        meta = [KeyValuePair(key=str(c), value=_text(row[c])) for c in extra]
        event = Event(start_time=timestamp(start), end_time=timestamp(end), metadata=meta)
        label = f"scene {i} ({row['rule']})"
        started = _log(f"{label} starts, {(end - start) / 1e9:.1f} s", log_time)

        def emit_start(event: Event = event, started: Log = started, log_time: int = log_time) -> None:
            channels.log(SCENES_TOPIC, events, event, log_time)
            channels.log(SCENES_LOG_TOPIC, logs, started, log_time)

        yield log_time, 1, emit_start
        if end_ns is None or end < end_ns:
            ended = _log(f"{label} ends", end)
            yield end, 1, lambda ended=ended, end=end: channels.log(SCENES_LOG_TOPIC, logs, ended, end)


def _timeline_messages(timeline: pd.DataFrame, channels: _Channels) -> Stream:
    """One JSON message of numbers per timeline row (order 2); NaN and inf are left out of the row."""
    columns = [str(c) for c in timeline.columns if c != "time_ns"]
    schema = {
        "type": "object",
        "title": "rosbag_assets.timeline",
        "properties": {"time_ns": {"type": "integer"}} | {c: {"type": "number"} for c in columns},
    }
    make = lambda topic: Channel(topic, schema=schema, context=channels.ctx)  # noqa: E731
    times = timeline["time_ns"].to_numpy(dtype=np.int64)
    values = timeline.drop(columns="time_ns").to_numpy(dtype=np.float64)
    for t, row in zip(times.tolist(), values, strict=True):
        message = {"time_ns": t} | {
            c: v for c, v in zip(columns, row.tolist(), strict=True) if math.isfinite(v)
        }
        yield t, 2, lambda message=message, t=t: channels.log(TIMELINE_TOPIC, make, message, t)


# --- input shaping ---------------------------------------------------------------------------------------


def _require(df: pd.DataFrame | None, name: str, columns: list[str]) -> pd.DataFrame:
    if df is None:
        return pd.DataFrame(columns=columns)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FoxgloveExportError(f"{name}: missing column(s) {missing}; it has {list(df.columns)}")
    return df


def _in_range(df: pd.DataFrame, column: str, start_ns: int | None, end_ns: int | None) -> pd.DataFrame:
    keep = pd.Series(True, index=df.index)
    if start_ns is not None:
        keep &= df[column].astype("int64") >= start_ns
    if end_ns is not None:
        keep &= df[column].astype("int64") < end_ns
    return df[keep]


def _frame_keyer(
    frames: pd.DataFrame, *labels: pd.DataFrame | None
) -> Callable[[dict[str, Any]], tuple[str, Any]]:
    """Frames and labels meet on (topic, frame_key) when every table has frame_key, else (topic, stamp)."""
    tables = [frames, *(t for t in labels if t is not None)]
    if all("frame_key" in t.columns for t in tables):
        return lambda row: (row["topic"], row["frame_key"])
    for t in tables:
        if "topic" not in t.columns or "stamp_ns" not in t.columns:
            raise FoxgloveExportError("labels need frame_key, or topic and stamp_ns, to find their frames")
    return lambda row: (row["topic"], int(row["stamp_ns"]))


def _group(
    df: pd.DataFrame | None, name: str, columns: list[str], keyer: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    if df is None:
        return {}
    out: dict[Any, list[dict[str, Any]]] = {}
    for row in _require(df, name, columns).to_dict("records"):
        out.setdefault(keyer(row), []).append(row)
    return out


def _scenes(scenes: pd.DataFrame | None, start_ns: int | None, end_ns: int | None) -> pd.DataFrame:
    """Scenes overlapping the range; each logged at its start, or at the range start when it began before."""
    df = _require(scenes, "scenes", ["start_ns", "end_ns", "rule"]).copy()
    if start_ns is not None:
        df = df[df["end_ns"].astype("int64") >= start_ns]
    if end_ns is not None:
        df = df[df["start_ns"].astype("int64") < end_ns]
    df = df.sort_values("start_ns", kind="stable").reset_index(drop=True)
    low = start_ns if start_ns is not None else -(2**63)
    df["log_time_ns"] = df["start_ns"].astype("int64").clip(lower=low) if len(df) else []
    return df


def _timeline(timeline: pd.DataFrame | None, start_ns: int | None, end_ns: int | None) -> pd.DataFrame:
    df = _require(timeline, "timeline", ["time_ns"])
    numeric = [c for c in df.columns if c != "time_ns" and pd.api.types.is_numeric_dtype(df[c])]
    if len(df.columns) - 1 != len(numeric):
        bad = [c for c in df.columns if c != "time_ns" and c not in numeric]
        raise FoxgloveExportError(f"timeline: columns {bad} are not numeric")
    df = _in_range(df, "time_ns", start_ns, end_ns)
    return df.sort_values("time_ns", kind="stable").reset_index(drop=True)[["time_ns", *numeric]]


# --- small helpers -----------------------------------------------------------------------------------------


def _log(text: str, ns: int) -> Log:
    return Log(timestamp=timestamp(ns), level=LogLevel.Info, message=text, name="scenes")


def _topic(topic: Any) -> str:
    text = str(topic)
    return text if text.startswith("/") else f"/{text}"


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _sniff(data: bytes) -> str | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    return None


def _compression(name: str | None) -> MCAPCompression | None:
    if name is None or name == "none":
        return None
    options = {"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4}
    if name not in options:
        raise FoxgloveExportError(f"compression {name!r}: use zstd, lz4 or none")
    return options[name]
