"""`extracted_frames`: one streaming pass over each bag for all selected image topics.

Raw frames are encoded on a bounded thread pool (OpenCV releases the GIL); `CompressedImage` payloads are
passed through untouched. Frames go into an uncommitted version folder, indexed per bag
(``index/part-<bag>.parquet``), and are committed last with a drive-wide ``index.parquet``. A bag can be
extracted on its own (one Batch array child per bag) and the parts merged by `finalize_extract`.

Layouts: ``shards`` (default) appends frames, in bag order, to tar shards per bag and topic
(``frames/<bag>/<topic>/shard-00000.tar``, WebDataset-style; ``tar -xf`` gives the files back) and the index
records each frame's byte range, so a drive is a few large objects instead of millions of small ones;
``files`` writes one file per frame.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from rosbag_assets.io import publish
from rosbag_assets.io.bags import BagReadError, bag_uri, describe_error, open_bag
from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.mapped import mapped_messages
from rosbag_assets.io.shards import TarShards
from rosbag_assets.io.storage import FileInfo, Storage, join_key
from rosbag_assets.steps import report, runtime
from rosbag_assets.vision import images

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
INDEX_COLUMNS = [
    "drive",
    "bag",
    "topic",
    "stamp_ns",
    "log_time_ns",
    "width",
    "height",
    "encoding",
    "format",
    "frame_key",
    "data_key",
    "offset",
    "bytes",
    "path",
]
LAYOUTS = ("shards", "files")


@dataclass
class ExtractOptions:
    """What to extract and how to write it."""

    topics: list[str] | None = None  # None: every Image and CompressedImage topic
    max_rate_hz: float | None = None  # per topic; None keeps every frame
    start_offset_s: float | None = None  # time window relative to each bag's first message
    end_offset_s: float | None = None
    image_format: str = "jpeg"  # "jpeg" or "png" for raw images (depth is always lossless)
    jpeg_quality: int = 90
    max_width: int | None = None  # resize keeping aspect, never upscale
    max_height: int | None = None
    reencode_compressed: bool = False  # CompressedImage is passed through untouched unless asked or resized
    layout: str = "shards"  # "shards": tar shards per bag+topic with byte ranges; "files": one file per frame
    shard_mb: float = 512  # a shard is closed and the next one started past this size
    workers: int = 0  # encoder threads per bag; 0 = all cores, shared by the bags extracted at once
    bag_workers: int = 0  # bags extracted at once, each in its own process; 0 = auto (see `bag_parallelism`)
    max_in_flight: int = 0  # bounded queue of frames being encoded; 0 = 4 x workers

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ExtractOptions:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown extract options: {sorted(unknown)}")
        opts = cls(**data)
        if opts.image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be 'jpeg' or 'png', got {opts.image_format!r}")
        if not 1 <= opts.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {opts.jpeg_quality}")
        if opts.max_rate_hz is not None and opts.max_rate_hz <= 0:
            raise ValueError("max_rate_hz must be positive")
        if opts.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {opts.layout!r}")
        if opts.shard_mb <= 0:
            raise ValueError("shard_mb must be positive")
        if opts.workers < 0 or opts.bag_workers < 0:
            raise ValueError("workers and bag_workers must be >= 0 (0 = automatic)")
        return opts

    @property
    def resizing(self) -> bool:
        return bool(self.max_width or self.max_height)

    @property
    def passes_through(self) -> bool:
        """CompressedImage payloads are stored as they are (no decode, no re-encode)."""
        return not (self.resizing or self.reencode_compressed)


def topic_slug(topic: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", topic.strip("/")) or "root"


@dataclass
class BagExtraction:
    """What one bag contributed: index rows, counts and problems."""

    bag: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped_rate: int = 0
    skipped_window: int = 0
    errors: list[str] = field(default_factory=list)
    topics_seen: dict[str, int] = field(default_factory=dict)  # image topic -> messages in the bag
    seconds: float = 0.0


class _Encoder:
    """A bounded pool that encodes frames; cheap work (pass-through) runs inline, still in order."""

    def __init__(self, opts: ExtractOptions):
        workers = opts.workers or os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="encode")
        self.slots = threading.BoundedSemaphore(opts.max_in_flight or 4 * workers)

    def submit(self, fn: Any, *args: Any) -> Future:
        self.slots.acquire()
        fut = self.pool.submit(fn, *args)
        fut.add_done_callback(lambda _: self.slots.release())
        return fut

    @staticmethod
    def inline(fn: Any, *args: Any) -> Future:
        """Run `fn` now, in this thread; a finished future keeps it in line with the pooled frames."""
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _stamp_ns(msg: Any, log_time: int) -> int:
    stamp = msg.header.stamp
    ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    return ns if ns > 0 else int(log_time)


def _encode_raw(msg: Any, opts: ExtractOptions) -> tuple[bytes, str, int, int]:
    img = images.image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    if opts.resizing:
        img = images.resize_keep_aspect(img, opts.max_width, opts.max_height)
    data, ext = images.encode_array(img, opts.image_format, opts.jpeg_quality)
    return data, ext, img.shape[1], img.shape[0]


def _encode_compressed(msg: Any, opts: ExtractOptions) -> tuple[bytes, str, int, int]:
    raw = msg.data
    fmt = images.compressed_format(msg.format, raw)
    if opts.resizing or opts.reencode_compressed:
        img = images.decode_compressed(raw)
        if opts.resizing:
            img = images.resize_keep_aspect(img, opts.max_width, opts.max_height)
        data, ext = images.encode_array(img, opts.image_format, opts.jpeg_quality)
        return data, ext, img.shape[1], img.shape[0]
    data = raw if isinstance(raw, np.ndarray) else np.frombuffer(bytes(raw), np.uint8)
    width, height = images.encoded_size(data)
    return data, ".jpg" if fmt == "jpeg" else ".png", width, height


def _shard_sink(staging: publish.Staging, bag_slug: str, shard_mb: float) -> TarShards:
    """Tar shards for one bag: ``frames/<bag>/<topic>/shard-00000.tar``, one open shard per topic."""

    def open_write(topic: str, n: int) -> tuple[str, AbstractContextManager[BinaryIO]]:
        key = f"frames/{bag_slug}/{topic_slug(topic)}/shard-{n:05d}.tar"
        return key, staging.storage.open_write(staging.key(key))

    return TarShards(open_write, max(1, int(shard_mb * 1024 * 1024)))


# --- zero-copy parsing of Image / CompressedImage wire bytes ---------------------------------------------


class _Stamp:
    __slots__ = ("nanosec", "sec")

    def __init__(self, sec: int, nanosec: int) -> None:
        self.sec, self.nanosec = sec, nanosec


class _Header:
    __slots__ = ("stamp",)

    def __init__(self, sec: int, nanosec: int) -> None:
        self.stamp = _Stamp(sec, nanosec)


class _RawImage:
    """The fields of ``sensor_msgs/Image`` that extraction uses; ``data`` is a view into the raw bytes."""

    __slots__ = ("data", "encoding", "header", "height", "is_bigendian", "step", "width")


class _RawCompressed:
    """The fields of ``sensor_msgs/CompressedImage`` that extraction uses; ``data`` is a view."""

    __slots__ = ("data", "format", "header")


_U32 = struct.Struct("<I")
_I32U32 = struct.Struct("<iI")
_U32X2 = struct.Struct("<II")


class _Cursor:
    """Little-endian reader over ROS1 or CDR (XCDR1, little-endian) message bytes."""

    __slots__ = ("buf", "cdr", "pos")

    def __init__(self, buf: memoryview, cdr: bool) -> None:
        self.buf, self.cdr = buf, cdr
        self.pos = 4 if cdr else 0  # CDR: 4-byte encapsulation header, alignment counted after it

    def align(self, n: int) -> None:
        if self.cdr:
            self.pos += -(self.pos - 4) % n

    def u32(self) -> int:
        self.align(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def u8(self) -> int:
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def string(self) -> str:
        size = self.u32()
        end = self.pos + size
        if end > len(self.buf):
            raise ValueError("string runs past the message")
        raw = bytes(self.buf[self.pos : end])
        self.pos = end
        return (raw[:-1] if self.cdr and raw.endswith(b"\0") else raw).decode()

    def blob(self) -> memoryview:
        size = self.u32()
        end = self.pos + size
        if end > len(self.buf):
            raise ValueError("byte array runs past the message")
        view = self.buf[self.pos : end]
        self.pos = end
        return view

    def header(self) -> _Header:
        if self.cdr:
            self.align(4)
            sec, nanosec = _I32U32.unpack_from(self.buf, self.pos)
            self.pos += 8
        else:
            _, sec, nanosec = struct.unpack_from("<III", self.buf, self.pos)  # seq, stamp
            self.pos += 12
        self.string()  # frame_id
        return _Header(sec, nanosec)


def parse_image_message(rawdata: bytes | memoryview, msgtype: str, ros2: bool) -> Any:
    """Parse Image / CompressedImage wire bytes without copying pixel data.

    Handles ROS1 serialization and little-endian CDR; raises ValueError for anything else (big-endian CDR,
    truncated data) so the caller can fall back to the full deserializer.
    """
    buf = memoryview(rawdata).cast("B") if not isinstance(rawdata, memoryview) else rawdata
    if ros2 and (len(buf) < 4 or buf[1] != 1):
        raise ValueError("not little-endian CDR")
    cur = _Cursor(buf, ros2)
    header = cur.header()
    if msgtype == IMAGE:
        msg: Any = _RawImage()
        msg.header = header
        msg.height = cur.u32()
        msg.width = cur.u32()
        msg.encoding = cur.string()
        msg.is_bigendian = cur.u8()
        msg.step = cur.u32()
        msg.data = np.frombuffer(cur.blob(), dtype=np.uint8)
        return msg
    if msgtype == COMPRESSED:
        msg = _RawCompressed()
        msg.header = header
        msg.format = cur.string()
        msg.data = np.frombuffer(cur.blob(), dtype=np.uint8)
        return msg
    raise ValueError(f"no fast parser for {msgtype}")


def select_connections(reader: Any, topics: list[str] | None) -> list[Any]:
    return [
        c
        for c in reader.connections
        if c.msgtype in (IMAGE, COMPRESSED) and (topics is None or c.topic in topics)
    ]


def extract_bag(
    *,
    drive: str,
    source: Storage,
    bag: BagRef,
    staging: publish.Staging,
    opts: ExtractOptions,
    log: report.JobLog,
) -> BagExtraction:
    """Stream one bag once, writing every selected frame into `staging`; return its index rows."""
    out = BagExtraction(bag.name)
    t0 = time.perf_counter()
    encoder = _Encoder(opts)
    sink = _shard_sink(staging, bag.slug, opts.shard_mb) if opts.layout == "shards" else None
    pending: list[tuple[Future, dict[str, Any]]] = []
    failed_topics: dict[str, str] = {}
    uri = bag_uri(source, bag)
    try:
        with open_bag(source, bag) as reader:
            conns = select_connections(reader, opts.topics)
            for conn in conns:
                out.topics_seen[conn.topic] = out.topics_seen.get(conn.topic, 0) + int(conn.msgcount or 0)
            if not conns:
                return out
            start = reader.start_time
            ros2 = bool(reader.is2)
            window = (
                start + int(opts.start_offset_s * 1e9) if opts.start_offset_s is not None else None,
                start + int(opts.end_offset_s * 1e9) if opts.end_offset_s is not None else None,
            )
            min_gap = int(1e9 / opts.max_rate_hz) if opts.max_rate_hz else 0
            last_kept: dict[str, int] = {}
            used_names: Counter[str] = Counter()
            messages = mapped_messages(conns) or reader.messages(connections=conns)
            for conn, log_time, rawdata in messages:
                if conn.topic in failed_topics:
                    continue
                if (window[0] is not None and log_time < window[0]) or (
                    window[1] is not None and log_time > window[1]
                ):
                    out.skipped_window += 1
                    continue
                try:
                    try:
                        msg = parse_image_message(rawdata, conn.msgtype, ros2)
                    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
                        msg = reader.deserialize(bytes(rawdata), conn.msgtype)
                except Exception as exc:
                    failed_topics[conn.topic] = (
                        f"{uri} topic {conn.topic}: cannot deserialize ({describe_error(exc)})"
                    )
                    continue
                stamp = _stamp_ns(msg, log_time)
                if min_gap and conn.topic in last_kept and stamp - last_kept[conn.topic] < min_gap:
                    out.skipped_rate += 1
                    continue
                last_kept[conn.topic] = stamp
                base = f"frames/{bag.slug}/{topic_slug(conn.topic)}/{stamp:019d}"
                used_names[base] += 1
                if used_names[base] > 1:  # duplicate stamp: never overwrite
                    base = f"{base}-{used_names[base] - 1}"
                row = {
                    "drive": drive,
                    "bag": bag.name,
                    "topic": conn.topic,
                    "stamp_ns": stamp,
                    "log_time_ns": int(log_time),
                }
                if conn.msgtype == IMAGE:
                    row["encoding"] = msg.encoding
                    fut = encoder.submit(_frame, staging, sink, base, _encode_raw, msg, opts)
                else:
                    row["encoding"] = msg.format or "compressed"
                    run = encoder.inline if opts.passes_through else encoder.submit
                    fut = run(_frame, staging, sink, base, _encode_compressed, msg, opts)
                pending.append((fut, row))
                if len(pending) >= 256 or (pending[0][0].done() and len(pending) >= 32):
                    _collect(pending, out, failed_topics, uri, sink)
    except BagReadError as exc:
        out.errors.append(str(exc))
    except Exception as exc:  # corrupt chunk mid-bag, decompression error, ...
        out.errors.append(
            f"{uri}: read failed after {len(out.rows) + len(pending)} frames ({describe_error(exc)})"
        )
    finally:
        encoder.close()
        try:
            _collect(pending, out, failed_topics, uri, sink)
            if sink is not None:
                sink.close()
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
    out.errors.extend(failed_topics.values())
    for error in out.errors:
        log.warning(error)
    out.seconds = time.perf_counter() - t0
    log.info(f"{uri}: {len(out.rows)} frames in {out.seconds:.2f}s")
    return out


def _frame(
    staging: publish.Staging,
    sink: TarShards | None,
    base: str,
    encode: Callable[..., tuple[Any, str, int, int]],
    msg: Any,
    opts: ExtractOptions,
) -> dict[str, Any]:
    """Encode (or pass through) one message; without a shard sink, also store it as its own file."""
    data, ext, width, height = encode(msg, opts)
    key = f"{base}{ext}"
    info = {"width": width, "height": height, "format": ext.lstrip("."), "frame_key": key}
    info["bytes"] = memoryview(data).nbytes
    if sink is None:
        staging.write_bytes(key, data)
        info["data_key"], info["offset"] = key, 0
    else:
        info["data"] = data  # appended to the shard by `_collect`, in bag order
    return info


def _collect(
    pending: list[tuple[Future, dict[str, Any]]],
    out: BagExtraction,
    failed: dict[str, str],
    uri: str,
    sink: TarShards | None,
) -> None:
    """Move finished frames into the index (and their shards), in submission order.

    Topics whose frames cannot be decoded are remembered and skipped from then on.
    """
    for fut, row in pending:
        try:
            info = fut.result()
        except Exception as exc:  # bad pixels, unknown encoding, undecodable payload: name it, skip the topic
            failed.setdefault(row["topic"], f"{uri} topic {row['topic']}: {describe_error(exc)}")
            continue
        if row["topic"] in failed:
            continue
        if sink is not None:
            data = info.pop("data")
            mtime = row["stamp_ns"] // 1_000_000_000
            info["data_key"], info["offset"] = sink.append(row["topic"], info["frame_key"], data, mtime)
        row.update(info)
        out.rows.append(row)
    pending.clear()


# A worker process takes ~1-2 s to start (imports); measured on 2 cores: two 0.7 GB bags at once ran at 0.57x
# one after the other, two 2.7 GB bags at 1.46x. Automatic parallelism is only used for bags this large.
PARALLEL_MIN_BAG_BYTES = 2_000_000_000


def bag_parallelism(requested: int, bag_bytes: list[int]) -> int:
    """How many bags to extract at once: `requested`, or automatically half the cores when the bags are big
    enough to pay for a worker process each; never more than there are bags."""
    if requested:
        return max(1, min(requested, len(bag_bytes)))
    big = sum(1 for size in bag_bytes if size >= PARALLEL_MIN_BAG_BYTES)
    return max(1, min(max(1, (os.cpu_count() or 1) // 2), big))


class _RecordedLog:
    """Collects a worker process's log lines so the parent can replay them to the real log."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))


def _extract_part(
    drive: str, source: Storage, bag: BagRef, staging: publish.Staging, opts: ExtractOptions
) -> list[tuple[str, str]]:
    """Worker-process body: extract one bag and store its index part; return its log lines."""
    runtime.tune_allocator()
    log = _RecordedLog()
    write_part(
        staging, bag, extract_bag(drive=drive, source=source, bag=bag, staging=staging, opts=opts, log=log)
    )
    return log.lines


def _extract_in_processes(
    drive: str,
    source: Storage,
    bags: list[BagRef],
    staging: publish.Staging,
    opts: ExtractOptions,
    parallel: int,
    log: report.JobLog,
) -> None:
    """Extract `parallel` bags at a time, one process each (reading and parsing are Python, one core each).

    Encoder threads are split between the processes unless `workers` is set. Processes are spawned, not
    forked, so no lock held by another thread of this process is inherited.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    per_bag = replace(opts, workers=opts.workers or max(1, (os.cpu_count() or 1) // parallel))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
        futures = {pool.submit(_extract_part, drive, source, bag, staging, per_bag): bag for bag in bags}
        for future in as_completed(futures):
            try:
                lines = future.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise RuntimeError(f"extraction of bag {futures[future].name} failed: {exc}") from exc
            for level, msg in lines:
                getattr(log, level)(msg)


def _part_key(bag: BagRef) -> str:
    return f"index/part-{bag.slug}.parquet"


def write_part(staging: publish.Staging, bag: BagRef, extraction: BagExtraction) -> None:
    """Store a bag's index rows and report inside the (uncommitted) version."""
    frame = pd.DataFrame(extraction.rows, columns=[c for c in INDEX_COLUMNS if c != "path"])
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    staging.write_bytes(_part_key(bag), buf.getvalue())
    bag_report = {
        "bag": extraction.bag,
        "skipped_rate": extraction.skipped_rate,
        "skipped_window": extraction.skipped_window,
        "errors": extraction.errors,
        "topics_seen": extraction.topics_seen,
        "seconds": extraction.seconds,
    }

    staging.write_bytes(f"index/part-{bag.slug}.json", json.dumps(bag_report).encode())


def bags_from_inventory(manifest: dict[str, Any]) -> list[BagRef]:
    """The readable bags recorded by the committed `raw_bags` version."""
    return [
        BagRef(b["name"], b["format"], [FileInfo(k, 0, "") for k in b["keys"]], b.get("has_metadata", False))
        for b in manifest["bags"]
        if b["ok"]
    ]


def finalize_extract(
    *,
    drive: str,
    staging: publish.Staging,
    bags: list[BagRef],
    opts: ExtractOptions,
    log: report.JobLog,
    elapsed_s: float | None = None,
) -> report.JobResult:
    """Merge per-bag parts into ``index.parquet``, evaluate checks and commit the version."""

    frames, reports = [], []
    for bag in bags:
        try:
            frames.append(
                pd.read_parquet(io.BytesIO(staging.storage.read_bytes(staging.key(_part_key(bag)))))
            )
            reports.append(json.loads(staging.storage.read_bytes(staging.key(f"index/part-{bag.slug}.json"))))
        except FileNotFoundError as exc:
            raise RuntimeError(
                f"bag {bag.name}: its extraction part is missing from {staging.uri()}"
            ) from exc
    index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=INDEX_COLUMNS)
    root = staging.uri().rstrip("/")
    index["path"] = [f"{root}/{k}" for k in index["data_key"]]
    index = index[INDEX_COLUMNS].sort_values(["bag", "topic", "stamp_ns", "frame_key"], ignore_index=True)
    buf = io.BytesIO()
    index.to_parquet(buf, index=False)
    staging.write_bytes("index.parquet", buf.getvalue())

    topics_seen: dict[str, int] = defaultdict(int)
    for rep in reports:
        for topic, count in rep["topics_seen"].items():
            topics_seen[topic] += count
    per_topic = index.groupby("topic").agg(
        frames=("frame_key", "size"), bytes=("bytes", "sum"), width=("width", "max"), height=("height", "max")
    )
    per_topic_rows = [
        {
            "topic": t,
            "messages": topics_seen.get(t, 0),
            "frames": int(per_topic.loc[t, "frames"]) if t in per_topic.index else 0,
            "bytes": int(per_topic.loc[t, "bytes"]) if t in per_topic.index else 0,
            "size": f"{int(per_topic.loc[t, 'width'])}x{int(per_topic.loc[t, 'height'])}"
            if t in per_topic.index
            else "",
        }
        for t in sorted(set(topics_seen) | set(per_topic.index))
    ]
    errors = [e for rep in reports for e in rep["errors"]]
    silent = [t["topic"] for t in per_topic_rows if t["messages"] > 0 and t["frames"] == 0]
    empty = [t["topic"] for t in per_topic_rows if t["messages"] == 0]
    if opts.topics:
        missing = sorted(set(opts.topics) - set(topics_seen))
        for topic in missing:
            log.warning(f"drive {drive}: requested topic {topic} is in none of the bags")
        silent += missing
    for topic in empty:
        log.warning(f"drive {drive}: image topic {topic} has no messages")

    manifest = {"drive": drive, "frames": len(index), "options": asdict(opts), "errors": errors}
    uri = staging.commit(manifest)
    log.info(f"committed {len(index)} frames to {uri}")
    total_bytes = int(index["bytes"].sum()) if len(index) else 0
    metadata = {
        "frames": report.integer(len(index)),
        "bytes": report.integer(total_bytes),
        "topics": report.integer(len(per_topic_rows)),
        "bags": report.integer(len(bags)),
        "frames_per_topic": report.table(
            per_topic_rows,
            [
                ("topic", "string"),
                ("messages", "int"),
                ("frames", "int"),
                ("bytes", "int"),
                ("size", "string"),
            ],
        ),
        "skipped_by_rate": report.integer(sum(rep["skipped_rate"] for rep in reports)),
        "skipped_by_window": report.integer(sum(rep["skipped_window"] for rep in reports)),
        "index": report.uri_value(staging.uri("index.parquet")),
        "frames_root": report.uri_value(uri),
        "layout": report.text(opts.layout),
        "stored_objects": report.integer(int(index["data_key"].nunique()) if len(index) else 0),
        "options": report.json_value(asdict(opts)),
    }
    if elapsed_s is not None:
        metadata["elapsed_s"] = report.number(elapsed_s)
        metadata["frames_per_s"] = report.number(len(index) / elapsed_s if elapsed_s else 0.0)
    if errors:
        metadata["problems"] = report.md("\n".join(f"- {e}" for e in errors))
    checks = [
        report.CheckOutcome(
            "every_image_topic_has_frames",
            passed=not silent,
            description="every image topic with messages produced at least one frame",
            metadata={
                "topics_without_frames": report.json_value(sorted(set(silent))),
                "empty_topics": report.json_value(empty),
            },
        ),
        report.CheckOutcome(
            "no_extraction_errors",
            passed=not errors,
            severity="WARN",
            description="no bag or topic failed to read or decode",
            metadata={"errors": report.json_value(errors)},
        ),
    ]
    return report.JobResult(metadata=metadata, checks=checks, data_version=_index_version(index))


def _index_version(index: pd.DataFrame) -> str:
    import hashlib

    h = hashlib.sha256()
    for key, size in zip(index["frame_key"], index["bytes"], strict=True):
        h.update(f"{key}\0{size}\n".encode())
    return h.hexdigest()[:16]


def run_extract(
    *,
    drive: str,
    source: Storage,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    version: str | None = None,
    bag_names: list[str] | None = None,
    commit: bool = True,
    log: report.JobLog | None = None,
) -> report.JobResult:
    """Extract frames of the drive's readable bags (or only `bag_names`), then commit unless told not to.

    With ``commit=False`` and a shared `version`, several workers (e.g. one Batch array child per bag) can
    each write their bag's part; a final call with ``bag_names=[]`` and ``commit=True`` merges and commits.
    """
    log = log or report.default_log()
    opts = ExtractOptions.from_dict(options)
    runtime.tune_allocator()  # also for in-process runs that skip the entry point
    t0 = time.perf_counter()
    _, inventory = publish.require_current(output, join_key(drive, "raw_bags"))
    bags = bags_from_inventory(inventory)
    asset_prefix = join_key(drive, "extracted_frames")
    staging = (
        publish.Staging(output, asset_prefix, version)
        if version
        else publish.begin(output, asset_prefix, run_id)
    )
    todo = bags if bag_names is None else [b for b in bags if b.name in bag_names]
    if bag_names is not None and len(todo) != len(bag_names):
        unknown = sorted(set(bag_names) - {b.name for b in bags})
        raise ValueError(f"drive {drive}: bags {unknown} are not readable bags of the inventory")
    sizes = {b["name"]: int(b.get("bytes") or 0) for b in inventory["bags"]}
    parallel = bag_parallelism(opts.bag_workers, [sizes.get(b.name, 0) for b in todo])
    if parallel <= 1:
        for bag in todo:
            write_part(
                staging,
                bag,
                extract_bag(drive=drive, source=source, bag=bag, staging=staging, opts=opts, log=log),
            )
    else:
        _extract_in_processes(drive, source, todo, staging, opts, parallel, log)
    if not commit:
        return report.JobResult(
            metadata={"bags_extracted": report.integer(len(todo)), "version": report.text(staging.version)}
        )
    return finalize_extract(
        drive=drive, staging=staging, bags=bags, opts=opts, log=log, elapsed_s=time.perf_counter() - t0
    )
