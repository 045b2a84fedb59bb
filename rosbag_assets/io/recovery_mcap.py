"""Reading MCAP files rosbags refuses: cut short (no summary, no footer) or written with the ROS1 profile.

rosbags reads an MCAP only when it ends in a footer and uses the ros2 profile. A recording cut short keeps
every record before the cut, so the `mcap` package's StreamReader reads records one after another from the
start, and a record is only used once it is whole (a short read stops the scan). Two passes: the first
finds schemas, channels, counts and where the file stops (channels must be known before the caller picks
topics); the second yields messages. Messages come in file order,
not log-time order as rosbags' indexed read gives them. Chunk CRCs are checked.

ROS1-profile MCAP (``ros1msg`` schemas, ROS1 wire bytes, as mcap-ros1-support writes) carries the same message
definition text as a ROS1 bag, so its channels become ROS1-style connections and the bytes deserialize with
``typestore.deserialize_ros1``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mcap.records import Channel, Header, McapRecord, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag1,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys.msg import normalize_msgtype

MAGIC = b"\x89MCAP0\r\n"
_SCHEMA_FORMATS = {
    "ros1msg": MessageDefinitionFormat.MSG,
    "ros2msg": MessageDefinitionFormat.MSG,
    "ros2idl": MessageDefinitionFormat.IDL,
    "omgidl": MessageDefinitionFormat.IDL,
    "": MessageDefinitionFormat.NONE,
}


class _ShortRead(Exception):
    """The file ends inside a record."""


class _ExactReader:
    """A file whose reads return exactly what was asked for or raise, so a record is only used when it is
    whole, and the stop reason can say that the file ends inside a record (rather than some parse error)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.pos = fh, 0

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        if size is not None and 0 <= size != len(data):
            raise _ShortRead(f"wanted {size} bytes at byte {self.pos}, the file holds {len(data)}")
        self.pos += len(data)
        return data


@dataclass
class FileScan:
    """One MCAP file after the first pass."""

    path: Path
    size: int
    profile: str = ""
    stop_offset: int | None = None  # start of the first record not read whole; None: read up to the footer
    stop_reason: str | None = None
    messages: int = 0


def _records(path: Path, scan: FileScan) -> Iterator[McapRecord]:
    """Whole records of `path` in file order; where and why reading stopped goes into `scan`."""
    with path.open("rb") as fh:
        src = _ExactReader(fh)
        records = StreamReader(src, validate_crcs=True, record_size_limit=max(scan.size, 1)).records
        # the end of the last whole record, i.e. where the next one starts
        good = len(MAGIC) if fh.read(len(MAGIC)) == MAGIC else 0
        fh.seek(0)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except Exception as exc:
                scan.stop_offset = good
                if isinstance(exc, _ShortRead) and good == scan.size:
                    scan.stop_reason = f"the file ends at byte {good} without a footer (recording not closed)"
                elif isinstance(exc, _ShortRead):
                    scan.stop_reason = f"the file ends at byte {scan.size}, inside the record at byte {good}"
                else:
                    scan.stop_reason = f"unreadable record at byte {good} ({type(exc).__name__}: {exc})"
                return
            good = src.pos
            yield record


@dataclass
class McapRecovery:
    """The channels and messages of one or more MCAP files (a ROS2 bag folder), read sequentially."""

    paths: list[Path]
    ros1: bool = False  # ROS1 wire bytes (profile ros1) rather than CDR
    connections: list[Connection] = field(default_factory=list)
    files: list[FileScan] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    start_ns: int | None = None
    end_ns: int | None = None
    _ids: dict[tuple[int, int], int] = field(default_factory=dict)  # (file, channel) -> connection id

    def scan(self) -> None:
        """First pass: schemas, channels and message counts of every file, and where each one stops."""
        found: list[tuple[int, Channel, Schema | None, int]] = []
        for number, path in enumerate(self.paths):
            scan = FileScan(path, path.stat().st_size)
            self.files.append(scan)
            schemas: dict[int, Schema] = {}
            channels: dict[int, Channel] = {}
            counts: Counter[int] = Counter()
            for record in _records(path, scan):
                if isinstance(record, Message):
                    counts[record.channel_id] += 1
                    t = record.log_time
                    self.start_ns = t if self.start_ns is None else min(t, self.start_ns)
                    self.end_ns = t if self.end_ns is None else max(t, self.end_ns)
                elif isinstance(record, Channel):
                    channels.setdefault(record.id, record)
                elif isinstance(record, Schema):
                    schemas.setdefault(record.id, record)
                elif isinstance(record, Header):
                    scan.profile = record.profile
            if scan.stop_offset == 0:
                raise ValueError(f"{path}: not an MCAP file ({scan.stop_reason})")
            scan.messages = sum(counts.values())
            for cid, channel in channels.items():
                found.append((number, channel, schemas.get(channel.schema_id), counts[cid]))
            orphans = set(counts) - set(channels)
            if orphans:
                self.problems.append(
                    f"{path}: {sum(counts[c] for c in orphans)} messages on channels {sorted(orphans)} "
                    "that no channel record defines; skipped"
                )
        encodings = {channel.message_encoding for _, channel, _, _ in found}
        self.ros1 = any(f.profile == "ros1" for f in self.files) or encodings == {"ros1"}
        self._connections(found)

    def _connections(self, found: list[tuple[int, Channel, Schema | None, int]]) -> None:
        """One connection per (topic, type, definition) across files, like rosbags merges a bag's files."""
        wire = "ros1" if self.ros1 else "cdr"
        by_key: dict[tuple[str, str, str], int] = {}
        counts: Counter[int] = Counter()
        first: dict[int, Connection] = {}
        for number, channel, schema, count in found:
            where = f"{self.paths[number]} channel {channel.id} ({channel.topic})"
            if channel.message_encoding != wire:
                self.problems.append(f"{where}: {channel.message_encoding!r} messages, not {wire}; skipped")
                continue
            if schema is None or schema.encoding not in _SCHEMA_FORMATS:
                self.problems.append(f"{where}: no usable schema; skipped")
                continue
            msgdef = MessageDefinition(_SCHEMA_FORMATS[schema.encoding], schema.data.decode())
            msgtype = normalize_msgtype(schema.name) if self.ros1 else schema.name
            key = (channel.topic, msgtype, msgdef.data)
            cid = by_key.setdefault(key, len(by_key))
            self._ids[(number, channel.id)] = cid
            counts[cid] += count
            if cid not in first:
                first[cid] = Connection(
                    cid, channel.topic, msgtype, msgdef, "", 0, _ext(channel, self.ros1), self
                )
        self.connections = [c._replace(msgcount=counts[c.id]) for c in first.values()]

    def messages(self, connections: list[Connection]) -> Iterator[tuple[Connection, int, bytes]]:
        """Second pass: (connection, log time ns, raw bytes) of the given connections, in file order."""
        wanted = {c.id: c for c in connections}
        for number, (path, first) in enumerate(zip(self.paths, self.files, strict=True)):
            again = FileScan(path, first.size)
            for record in _records(path, again):
                if isinstance(record, Message):
                    cid = self._ids.get((number, record.channel_id))
                    if cid in wanted:
                        yield wanted[cid], record.log_time, record.data
            if (again.stop_offset, again.size) != (first.stop_offset, path.stat().st_size):
                raise RuntimeError(
                    f"{path}: changed while being read (first pass stopped at {first.stop_offset}, "
                    f"second at {again.stop_offset})"
                )


def _ext(channel: Channel, ros1: bool) -> Any:
    if ros1:
        latching = channel.metadata.get("latching", "")
        return ConnectionExtRosbag1(
            channel.metadata.get("callerid") or None, int(latching) if latching.isdigit() else None
        )
    try:
        qos = parse_qos(channel.metadata.get("offered_qos_profiles", "") or [])
    except Exception:
        qos = []
    return ConnectionExtRosbag2(channel.message_encoding, qos)
