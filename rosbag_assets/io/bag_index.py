"""Message times per topic from a bag's own indexes, without reading or deserialising payloads.

ROS1 bags keep every message's time in their index (rosbags loads it on open); MCAP files keep a message
index record per chunk and channel (16 bytes per message); sqlite3 bags keep a timestamp column. Reading
those costs a few bytes per message, so the `raw_bags` inventory can draw message rates of a multi-GB bag
in well under a second. An unindexed MCAP file falls back to one pass over its records (payloads are read
but never deserialised).
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag2 import Reader as Ros2Reader
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

_MCAP_INDEX_HEADER = struct.Struct("<BQHI")  # opcode 0x07, record length, channel id, array bytes
_MCAP_MESSAGE_INDEX = 0x07
MIN_BIN_NS = 100_000_000  # 0.1 s
TARGET_BINS = 600


def message_times(reader: Any) -> dict[str, np.ndarray]:
    """{topic: sorted log times (ns, int64)} of every message of an open rosbags ``AnyReader`` (topics
    without messages are left out)."""
    per_topic: dict[str, list[np.ndarray]] = defaultdict(list)
    unindexed = []
    for conn in reader.connections:
        times = _connection_times(conn)
        if times is None:
            unindexed.append(conn)
        else:
            per_topic[conn.topic].append(times)
    if unindexed:
        scanned: dict[str, list[int]] = defaultdict(list)
        for conn, log_time, _ in reader.messages(connections=unindexed):
            scanned[conn.topic].append(log_time)
        for topic, values in scanned.items():
            per_topic[topic].append(np.asarray(values, np.int64))
    merged = {t: np.sort(np.concatenate(parts)) for t, parts in per_topic.items()}
    return {t: values for t, values in merged.items() if len(values)}


def _connection_times(conn: Any) -> np.ndarray | None:
    owner = conn.owner
    if isinstance(owner, Ros1Reader):
        return np.fromiter((entry.time for entry in owner.indexes.get(conn.id, [])), np.int64)
    storage = owner.storage if isinstance(owner, Ros2Reader) else owner
    if not isinstance(storage, DirectoryReader | McapReader | Sqlite3Reader):
        return None
    parts: Iterable[tuple[Any, int]]
    if isinstance(storage, DirectoryReader):
        parts = [
            (part, c.id)
            for part in storage.storages
            for c in part.connections
            if c.topic == conn.topic and c.msgtype == conn.msgtype
        ]
    else:
        parts = [(storage, conn.id)]
    arrays = []
    for part, cid in parts:
        times = _storage_times(part, cid)
        if times is None:
            return None
        arrays.append(times)
    return np.concatenate(arrays) if arrays else np.zeros(0, np.int64)


def _storage_times(storage: Any, cid: int) -> np.ndarray | None:
    if isinstance(storage, Sqlite3Reader) and storage.dbconn is not None:
        rows = storage.dbconn.cursor().execute("SELECT timestamp FROM messages WHERE topic_id = ?", (cid,))
        return np.fromiter((r[0] for r in rows), np.int64)
    if isinstance(storage, McapReader) and storage.bio is not None and storage.chunks:
        fd = storage.bio.fileno()
        arrays = []
        for chunk in storage.chunks:
            offset = chunk.message_index_offsets.get(cid)
            if offset is None:
                continue
            head = os.pread(fd, _MCAP_INDEX_HEADER.size, offset)
            opcode, _, channel, size = _MCAP_INDEX_HEADER.unpack(head)
            if opcode != _MCAP_MESSAGE_INDEX or channel != cid:
                return None  # not the record the chunk index promised: let the caller scan instead
            body = os.pread(fd, size, offset + _MCAP_INDEX_HEADER.size)
            arrays.append(np.frombuffer(body, "<u8").reshape(-1, 2)[:, 0].astype(np.int64))
        return np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
    return None


def bin_width_ns(start_ns: int, end_ns: int, target_bins: int = TARGET_BINS) -> int:
    """A bin width giving about `target_bins` bins over the span, never below 0.1 s, on a 1-2-5 scale."""
    span = max(end_ns - start_ns, 1)
    raw = max(span / target_bins, MIN_BIN_NS)
    magnitude = 10 ** int(np.floor(np.log10(raw)))
    for step in (1, 2, 5, 10):
        if raw <= step * magnitude:
            return int(step * magnitude)
    return int(10 * magnitude)


def rate_rows(bag: str, times: dict[str, np.ndarray], bin_ns: int) -> list[dict[str, Any]]:
    """Message counts per topic in fixed bins aligned to multiples of `bin_ns` (only non-empty bins)."""
    rows = []
    for topic, values in sorted(times.items()):
        if not len(values):
            continue
        bins, counts = np.unique(values // bin_ns, return_counts=True)
        rows.extend(
            {"bag": bag, "topic": topic, "start_ns": int(b) * bin_ns, "bin_ns": bin_ns, "count": int(c)}
            for b, c in zip(bins, counts, strict=True)
        )
    return rows
