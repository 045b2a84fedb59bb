"""Zero-copy message reads from uncompressed ROS1 bags, through a memory map.

rosbags copies every message twice (chunk -> bytes, then a slice of it); for multi-megabyte raw images
that copying costs about as much as a quarter of the JPEG encode. For bags whose chunks are stored
uncompressed (the common case for camera bags), `mapped_messages` walks rosbags' own chunk index and
yields memoryviews straight into the mapped file instead; anything else (bz2/lz4 chunks, ROS2 bags)
returns None and the caller uses rosbags' reader. Same messages, same order as ``Reader.messages``.
"""

from __future__ import annotations

import heapq
import mmap
import struct
from collections.abc import Iterator
from typing import Any

from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1.reader import RecordType, decompressors

_U32 = struct.Struct("<I")
_UNCOMPRESSED = decompressors["none"]


def mapped_messages(connections: list[Any]) -> Iterator[tuple[Any, int, memoryview]] | None:
    """(connection, log time ns, raw message bytes as a memoryview) in time order, or None if unsupported.

    `connections` come from an open rosbags ``AnyReader``; all must belong to one uncompressed ROS1 bag.
    """
    owners = {id(c.owner) for c in connections}
    if len(owners) != 1:
        return None
    reader = connections[0].owner
    if not isinstance(reader, Ros1Reader) or reader.bio is None:
        return None
    if any(chunk.decompressor is not _UNCOMPRESSED for chunk in reader.chunks.values()):
        return None
    return _iter(reader, connections)


_RELEASE_EVERY = 64 << 20


def _iter(reader: Ros1Reader, connections: list[Any]) -> Iterator[tuple[Any, int, memoryview]]:
    by_id = {c.id: c for c in connections}
    streams = [_entries(reader, cid) for cid in by_id]
    with open(reader.path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    # never closed explicitly: yielded views may outlive the loop; the map goes when the last view does
    view = memoryview(mapped)
    released = 0
    for log_time, chunk_pos, offset, cid in heapq.merge(*streams, key=_time):  # ties: connection order
        chunk = reader.chunks[chunk_pos]
        if chunk.datapos - released > 2 * _RELEASE_EVERY and hasattr(mmap, "MADV_DONTNEED"):
            # Drop the pages already read from this process's resident set so it stays flat however large
            # the bag is; they stay in the page cache, and a view still in use just faults them back in.
            upto = chunk.datapos - _RELEASE_EVERY
            upto -= upto % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_DONTNEED, released, upto - released)
            released = upto
        pos, end = chunk.datapos + offset, chunk.datapos + chunk.datasize
        while True:  # connection records may precede the message inside a chunk
            (header_len,) = _U32.unpack_from(view, pos)
            header_end = pos + 4 + header_len
            op = _op(view, pos + 4, header_end)
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


def _op(view: memoryview, pos: int, end: int) -> int:
    """The ``op`` field of a ROS1 record header (fields are ``<u32 len>name=value``)."""
    while pos < end:
        (field_len,) = _U32.unpack_from(view, pos)
        start = pos + 4
        if view[start : start + 3] == b"op=":
            return view[start + 3]
        pos = start + field_len
    raise ValueError("record header has no op field")


def _entries(reader: Ros1Reader, cid: int) -> Iterator[tuple[int, int, int, int]]:
    for e in reader.indexes[cid]:
        yield e.time, e.chunk_pos, e.offset, cid


def _time(entry: tuple[int, int, int, int]) -> int:
    return entry[0]
