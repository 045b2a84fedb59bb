"""Zero-copy message reads from uncompressed ROS1 bags and ROS2 MCAP files, through a memory map.

rosbags copies every message two or three times (file -> chunk bytes -> slices); for multi-megabyte raw
images that copying costs about a quarter of the JPEG encode. For bags whose chunks are stored
uncompressed (the common case for camera bags), `mapped_messages` walks rosbags' own chunk index and
yields memoryviews straight into the mapped file; anything else (bz2/lz4/zstd chunks, per-message
compression, sqlite3, unindexed MCAP) returns None and the caller uses rosbags' reader. Same messages, same
order as rosbags. Unlike rosbags, MCAP chunk CRCs are not verified (that alone would cost ~0.4 s per GB).
"""

from __future__ import annotations

import heapq
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1.reader import RecordType, decompressors
from rosbags.rosbag2 import Reader as Ros2Reader
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_mcap import McapReader

_U32 = struct.Struct("<I")
_MCAP_RECORD = struct.Struct("<BQ")  # opcode, length
_MCAP_MESSAGE = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_MCAP_MESSAGE_OP = 0x05
_UNCOMPRESSED = decompressors["none"]
_RELEASE_EVERY = 64 << 20
_POPULATE_AHEAD = 32 << 20
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14

Message = tuple[Any, int, memoryview]


def mapped_messages(connections: list[Any]) -> Iterator[Message] | None:
    """(connection, log time ns, raw message bytes as a memoryview) in time order, or None if unsupported.

    `connections` come from an open rosbags ``AnyReader`` and must all belong to one bag.
    """
    if len({id(c.owner) for c in connections}) != 1:
        return None
    reader = connections[0].owner
    if isinstance(reader, Ros1Reader):
        return _ros1(reader, connections)
    if isinstance(reader, Ros2Reader):
        reader = reader.storage
    if isinstance(reader, (DirectoryReader, McapReader)):
        return _ros2(reader, connections)
    return None


class _Mapped:
    """A read-only map of a whole file whose already-read pages are dropped from the resident set."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as fh:
            self.map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        # never closed explicitly: yielded views may outlive the reader; the map goes with the last view
        self.view = memoryview(self.map)
        self.released = 0
        self.populated = 0
        self.can_populate = True

    def populate_from(self, pos: int) -> None:
        """Map the next stretch of the file in one call: page faults one by one cost more than the copy
        they save (~1 s per GB on a VM); a bulk MADV_POPULATE_READ costs a fraction of that."""
        if not self.can_populate or pos + (1 << 20) <= self.populated:
            return
        start = max(pos - pos % mmap.PAGESIZE, self.populated)
        length = min(_POPULATE_AHEAD, len(self.map) - start)
        if length <= 0:
            return
        try:
            self.map.madvise(_MADV_POPULATE_READ, start, length)
        except OSError:  # older kernels: fall back to faulting pages in as they are touched
            self.can_populate = False
        self.populated = start + length

    def release_before(self, pos: int) -> None:
        """Keep RSS flat however large the file: drop pages well behind `pos`. They stay in the page
        cache, and a view still in use simply faults them back in. The sweep starts at 0 each time, so pages
        faulted back in by late readers (frames waiting for their shard) go again; empty stretches of the
        page table are skipped by the kernel, so that costs microseconds."""
        if pos - self.released > 2 * _RELEASE_EVERY and hasattr(mmap, "MADV_DONTNEED"):
            upto = pos - _RELEASE_EVERY
            upto -= upto % mmap.PAGESIZE
            self.map.madvise(mmap.MADV_DONTNEED, 0, upto)
            self.released = upto


# --- ROS1 -------------------------------------------------------------------------------------------------


def _ros1(reader: Ros1Reader, connections: list[Any]) -> Iterator[Message] | None:
    if reader.bio is None or any(c.decompressor is not _UNCOMPRESSED for c in reader.chunks.values()):
        return None
    return _ros1_iter(reader, connections)


def _ros1_iter(reader: Ros1Reader, connections: list[Any]) -> Iterator[Message]:
    by_id = {c.id: c for c in connections}
    streams = [_ros1_entries(reader, cid) for cid in by_id]
    mapped = _Mapped(reader.path)
    view = mapped.view
    for log_time, chunk_pos, offset, cid in heapq.merge(*streams, key=_first):  # ties: connection order
        chunk = reader.chunks[chunk_pos]
        mapped.release_before(chunk.datapos)
        mapped.populate_from(chunk.datapos + offset)
        pos, end = chunk.datapos + offset, chunk.datapos + chunk.datasize
        while True:  # connection records may precede the message inside a chunk
            (header_len,) = _U32.unpack_from(view, pos)
            header_end = pos + 4 + header_len
            op = _ros1_op(view, pos + 4, header_end)
            (data_len,) = _U32.unpack_from(view, header_end)
            data_start = header_end + 4
            if data_start + data_len > end:
                raise ValueError(f"{reader.path}: record at {pos} runs past its chunk")
            if op != RecordType.CONNECTION:
                break
            pos = data_start + data_len
        if op != RecordType.MSGDATA:
            raise ValueError(f"{reader.path}: expected message data at {pos}, found record op {op}")
        yield by_id[cid], log_time, view[data_start : data_start + data_len]


def _ros1_entries(reader: Ros1Reader, cid: int) -> Iterator[tuple[int, int, int, int]]:
    for e in reader.indexes[cid]:
        yield e.time, e.chunk_pos, e.offset, cid


def _ros1_op(view: memoryview, pos: int, end: int) -> int:
    """The ``op`` field of a ROS1 record header (fields are ``<u32 len>name=value``)."""
    while pos < end:
        (field_len,) = _U32.unpack_from(view, pos)
        start = pos + 4
        if view[start : start + 3] == b"op=":
            return view[start + 3]
        pos = start + field_len
    raise ValueError("record header has no op field")


# --- ROS2 MCAP --------------------------------------------------------------------------------------------


def _ros2(storage: DirectoryReader | McapReader, connections: list[Any]) -> Iterator[Message] | None:
    if isinstance(storage, McapReader):
        parts = [(storage, {c.id: c for c in connections})]
    else:  # a bag folder: one or more storage files, read one after another like rosbags does
        if storage.metadata.compression_mode == "message":
            return None
        parts = [(s, _connection_map(s, connections)) for s in storage.storages]
    for part, _ in parts:
        if not isinstance(part, McapReader) or part.bio is None or not part.chunks:
            return None
        if any(chunk.compression for chunk in part.chunks):
            return None
    return (message for part, connmap in parts if connmap for message in _mcap_iter(part, connmap))


def _connection_map(storage: McapReader, connections: list[Any]) -> dict[int, Any]:
    """Storage connection id -> the caller's connection, matched the way rosbags matches them."""
    out = {}
    for x in storage.connections:
        for y in connections:
            if (
                y.topic == x.topic
                and y.msgtype == x.msgtype
                and y.ext == x.ext
                and (not x.digest or not y.digest or y.digest == x.digest)
            ):
                out[x.id] = y
                break
    return out


def _mcap_iter(storage: McapReader, connmap: dict[int, Any]) -> Iterator[Message]:
    mapped = _Mapped(storage.path)
    chunks = [c for c in storage.chunks if any(c.channel_count.get(cid, 0) for cid in connmap)]
    sources = [_mcap_chunk(mapped, chunk, connmap) for chunk in chunks]
    for log_time, _, connection, data in heapq.merge(*sources, key=_first_two):
        if connection is not None:
            yield connection, log_time, data


def _mcap_chunk(mapped: _Mapped, chunk: Any, connmap: dict[int, Any]) -> Iterator[tuple[int, int, Any, Any]]:
    """The chunk's messages in time order; first a placeholder at its start time, so chunks are only
    parsed when the merge reaches them."""
    yield chunk.message_start_time, 0, None, None
    mapped.release_before(chunk.chunk_start_offset)
    mapped.populate_from(chunk.chunk_start_offset)
    view = mapped.view
    pos = chunk.chunk_start_offset + 9 + 40 + len(chunk.compression)  # records start after the chunk header
    end = pos + chunk.uncompressed_size
    messages = []
    while pos < end:
        op, length = _MCAP_RECORD.unpack_from(view, pos)
        body = pos + 9
        pos = body + length
        if pos > end:
            raise ValueError(f"{mapped.path}: record at {body - 9} runs past its chunk")
        if op == _MCAP_MESSAGE_OP:
            channel, _, log_time, _ = _MCAP_MESSAGE.unpack_from(view, body)
            if channel in connmap:
                messages.append((log_time, chunk.chunk_start_offset, connmap[channel], view[body + 22 : pos]))
    messages.sort(key=_first)
    yield from messages


def _first(entry: tuple[Any, ...]) -> Any:
    return entry[0]


def _first_two(entry: tuple[Any, ...]) -> tuple[Any, Any]:
    return entry[0], entry[1]
