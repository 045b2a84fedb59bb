"""One streaming pass over one bag: select image topics, parse, encode on a bounded pool, write shards."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from rosbag_assets.io import publish
from rosbag_assets.io.bags import (
    EMPTY_START,
    BagReadError,
    RecoveredBag,
    bag_uri,
    describe_error,
    not_the_bags_fault,
    open_bag,
)
from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.mapped import mapped_messages
from rosbag_assets.io.shards import ShardWriteError, TarShards
from rosbag_assets.io.storage import Storage, safe_name
from rosbag_assets.steps import report
from rosbag_assets.steps.extracted_frames.options import COMPRESSED, IMAGE, ExtractedFramesOptions
from rosbag_assets.steps.extracted_frames.wire import parse_image_message
from rosbag_assets.steps.progress import Progress
from rosbag_assets.vision import images


def topic_slug(topic: str) -> str:
    return safe_name(re.sub(r"[^A-Za-z0-9._-]+", "_", topic.strip("/")) or "root")


def topic_slugs(topics: list[str]) -> dict[str, str]:
    """Folder names for a bag's topics; topics that would share one (``/cam/a`` and ``/cam_a``) get a hash
    suffix each, so no topic's shards overwrite another's."""
    plain = {t: topic_slug(t) for t in topics}
    taken = Counter(plain.values())
    return {
        t: slug if taken[slug] == 1 else f"{slug}-{hashlib.sha256(t.encode()).hexdigest()[:8]}"
        for t, slug in plain.items()
    }


class FrameWriteError(RuntimeError):
    """Writing frames to the output failed (e.g. the disk is full); names the bag, topic and destination.
    Never taken for a bad frame: the step fails and nothing is published."""


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
    read_mode: str = "normal"  # how the bag was read (io.recovery's modes for damaged bags)
    complete: bool = True  # False: part of the bag could not be read (see read_error)
    read_error: str | None = None  # why the bag could not be opened, or read to its end
    undecodable: dict[str, int] = field(default_factory=dict)  # topic -> messages skipped as undecodable
    first_undecodable: dict[str, str] = field(default_factory=dict)  # topic -> first such error, named
    zero_stamps: dict[str, int] = field(default_factory=dict)  # topic -> frames whose header stamp is 0

    def skip(self, uri: str, topic: str, index: int, log_time: int, reason: str) -> None:
        """Count one message that could not be parsed or decoded; only the first per topic is spelled out."""
        self.undecodable[topic] = self.undecodable.get(topic, 0) + 1
        if topic not in self.first_undecodable:
            self.first_undecodable[topic] = (
                f"{uri} topic {topic} message {index} (log time {log_time}): {reason}"
            )


class _Encoder:
    """A bounded pool that encodes frames; cheap work (pass-through) runs inline, still in order."""

    def __init__(self, opts: ExtractedFramesOptions):
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


def _stamp_ns(msg: Any, log_time: int) -> tuple[int, bool]:
    """(the frame's time, whether it fell back to the log time because the header stamp is 0 or missing)."""
    try:
        stamp = msg.header.stamp
        ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    except (AttributeError, TypeError, ValueError):
        ns = 0
    return (ns, False) if ns > 0 else (int(log_time), True)


def _encode_raw(msg: Any, opts: ExtractedFramesOptions) -> tuple[bytes, str, int, int]:
    img = images.image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    if opts.resizing:
        img = images.resize_keep_aspect(img, opts.max_width, opts.max_height)
    data, ext = images.encode_array(img, opts.image_format, opts.jpeg_quality)
    return data, ext, img.shape[1], img.shape[0]


def _encode_compressed(msg: Any, opts: ExtractedFramesOptions) -> tuple[bytes, str, int, int]:
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


def _shard_sink(staging: publish.Draft, bag_slug: str, shard_mb: float, slugs: dict[str, str]) -> TarShards:
    """Tar shards for one bag: ``frames/<bag>/<topic>/shard-00000.tar``, one open shard per topic."""

    def open_write(topic: str, n: int) -> tuple[str, AbstractContextManager[BinaryIO]]:
        key = f"frames/{bag_slug}/{slugs[topic]}/shard-{n:05d}.tar"
        return key, staging.storage.open_write(staging.key(key))

    return TarShards(open_write, max(1, int(shard_mb * 1024 * 1024)))


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
    staging: publish.Draft,
    opts: ExtractedFramesOptions,
    log: report.StepLog,
) -> BagExtraction:
    """Stream one bag once, writing every selected frame into `staging`; return its index rows.

    A message that cannot be parsed or decoded is skipped and counted (per topic, the first one named);
    every other frame of its topic is kept. A bag that cannot be opened, or stops being readable part way,
    is reported in `read_error` with what was read until then. A failure to write the output is not the
    bag's fault: it raises FrameWriteError.
    """
    out = BagExtraction(bag.name)
    t0 = time.perf_counter()
    uri = bag_uri(source, bag)
    encoder = _Encoder(opts)
    sink: TarShards | None = None
    pending: list[tuple[Future, dict[str, Any], int]] = []
    seen: Counter[str] = Counter()  # messages read per topic: the index of the next one
    try:
        with open_bag(source, bag) as reader:
            if isinstance(reader, RecoveredBag):
                out.read_mode, out.complete = reader.recovery.mode, reader.recovery.complete
                if not out.complete:
                    out.read_error = f"recovered in part: {reader.recovery.summary()}"
            conns = select_connections(reader, opts.topics)
            for conn in conns:
                out.topics_seen[conn.topic] = out.topics_seen.get(conn.topic, 0) + int(conn.msgcount or 0)
            if not conns:
                return _finish(out, uri, log, t0)
            slugs = topic_slugs(sorted({c.topic for c in conns}))
            if opts.layout == "shards":
                sink = _shard_sink(staging, bag.slug, opts.shard_mb, slugs)
            start = reader.start_time if reader.start_time != EMPTY_START else 0
            ros2 = bool(reader.is2)
            window = (
                start + int(opts.start_offset_s * 1e9) if opts.start_offset_s is not None else None,
                start + int(opts.end_offset_s * 1e9) if opts.end_offset_s is not None else None,
            )
            min_gap = int(1e9 / opts.max_rate_hz) if opts.max_rate_hz else 0
            last_kept: dict[str, int] = {}
            used_names: Counter[str] = Counter()
            messages = mapped_messages(conns) or reader.messages(connections=conns)
            progress = Progress(log, f"extracting {uri}", out.topics_seen)  # every ~5 s: done/total, ETA
            messages = iter(progress.iterate(messages, key=lambda item: item[0].topic))
            while True:
                try:
                    item = next(messages, None)
                except Exception as exc:  # the bag is damaged from here on: keep what was read
                    if not_the_bags_fault(exc):
                        raise
                    out.complete = False
                    out.read_error = (
                        f"{uri}: reading stopped after {sum(seen.values())} image messages "
                        f"({describe_error(exc)})"
                    )
                    break
                if item is None:
                    break
                conn, log_time, rawdata = item
                index = seen[conn.topic]
                seen[conn.topic] += 1
                if (window[0] is not None and log_time < window[0]) or (
                    window[1] is not None and log_time > window[1]
                ):
                    out.skipped_window += 1
                    continue
                try:
                    try:
                        msg = parse_image_message(rawdata, conn.msgtype, ros2)
                    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
                        msg = reader.deserialize(rawdata, conn.msgtype)
                except Exception as exc:
                    out.skip(uri, conn.topic, index, log_time, f"cannot deserialize ({describe_error(exc)})")
                    continue
                stamp, unstamped = _stamp_ns(msg, log_time)
                if min_gap and conn.topic in last_kept and stamp - last_kept[conn.topic] < min_gap:
                    out.skipped_rate += 1
                    continue
                last_kept[conn.topic] = stamp
                if unstamped:
                    out.zero_stamps[conn.topic] = out.zero_stamps.get(conn.topic, 0) + 1
                base = f"frames/{bag.slug}/{slugs[conn.topic]}/{stamp:019d}"
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
                pending.append((fut, row, index))
                if len(pending) >= 256 or (pending[0][0].done() and len(pending) >= 32):
                    _collect(pending, out, uri, sink)
    except BagReadError as exc:  # could not be opened
        out.complete = False
        out.read_error = str(exc)
    finally:
        encoder.close()
        try:
            _collect(pending, out, uri, sink)
            if sink is not None:
                try:
                    sink.close()
                except ShardWriteError as exc:
                    raise FrameWriteError(
                        f"{uri} topic {exc.stream}: writing frame shards to {staging.uri()} failed ({exc})"
                    ) from exc
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
    return _finish(out, uri, log, t0)


def _finish(out: BagExtraction, uri: str, log: report.StepLog, t0: float) -> BagExtraction:
    """Turn the bag's problems into named errors and log them."""
    if out.read_error:
        out.errors.append(out.read_error)
    for topic, count in sorted(out.undecodable.items()):
        out.errors.append(
            f"{count} undecodable message(s) skipped; the first: {out.first_undecodable[topic]}"
        )
    for topic, count in sorted(out.zero_stamps.items()):
        log.warning(
            f"{uri} topic {topic}: {count} frame(s) with a zero or missing header stamp use the log time"
        )
    for error in out.errors:
        log.warning(error)
    out.seconds = time.perf_counter() - t0
    log.info(f"{uri}: {len(out.rows)} frames in {out.seconds:.2f}s")
    return out


def _frame(
    staging: publish.Draft,
    sink: TarShards | None,
    base: str,
    encode: Callable[..., tuple[Any, str, int, int]],
    msg: Any,
    opts: ExtractedFramesOptions,
) -> dict[str, Any]:
    """Encode (or pass through) one message; without a shard sink, also store it as its own file."""
    data, ext, width, height = encode(msg, opts)
    key = f"{base}{ext}"
    info = {"width": width, "height": height, "format": ext.lstrip("."), "frame_key": key}
    info["bytes"] = memoryview(data).nbytes
    if sink is None:
        try:
            staging.write_bytes(key, data)
        except Exception as exc:
            raise FrameWriteError(f"writing {staging.uri(key)} failed ({describe_error(exc)})") from exc
        info["data_key"], info["offset"] = key, 0
    else:
        info["data"] = data  # appended to the shard by `_collect`, in bag order
    return info


def _collect(
    pending: list[tuple[Future, dict[str, Any], int]],
    out: BagExtraction,
    uri: str,
    sink: TarShards | None,
) -> None:
    """Move finished frames into the index (and their shards), in submission order.

    A frame that cannot be decoded or encoded (bad pixels, unknown encoding, not an image) is skipped and
    counted; a frame that cannot be written fails the extraction, naming the bag and topic.
    """
    for fut, row, index in pending:
        topic = row["topic"]
        try:
            info = fut.result()
        except FrameWriteError as exc:
            raise FrameWriteError(f"{uri} topic {topic}: {exc}") from exc
        except Exception as exc:
            out.skip(uri, topic, index, row["log_time_ns"], describe_error(exc))
            continue
        if sink is not None:
            data = info.pop("data")
            mtime = row["stamp_ns"] // 1_000_000_000
            try:
                info["data_key"], info["offset"] = sink.append(topic, info["frame_key"], data, mtime)
            except ShardWriteError as exc:
                raise FrameWriteError(
                    f"{uri} topic {exc.stream or topic}: writing frame shards failed ({exc})"
                ) from exc
            except OSError as exc:  # opening the topic's next shard
                raise FrameWriteError(f"{uri} topic {topic}: {describe_error(exc)}") from exc
        row.update(info)
        out.rows.append(row)
    pending.clear()
