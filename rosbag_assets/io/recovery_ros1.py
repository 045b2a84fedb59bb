"""Reading ROS1 bags whose index is missing or cut off, the way ``rosbag reindex`` does, without writing.

A ROS1 bag keeps its index (connection records and chunk infos) at the end of the file and points at it from
the bag header. A recording that was killed, or a copy cut short, still holds every chunk before the damage,
but rosbags refuses it ("Bag is not indexed" / "Bag index looks damaged"). `ReindexedReader` is rosbags' own
ROS1 reader with `open` replaced by a scan from the start: chunk by chunk, the connection and message records
inside each, building the same in-memory index rosbags would have read. Everything downstream (rosbags'
``messages``, the zero-copy `jobs.mapped` path) then works unchanged.

Unlike ``rosbag reindex``, an uncompressed chunk that was being written when the file ends (cut short, or never
closed so its size fields are still 0) is not thrown away: its whole records are kept. A cut bz2/lz4 chunk is
lost (one chunk, ~768 KB, is a single compressed block: nothing in it decompresses).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from rosbags.interfaces import Connection, ConnectionExtRosbag1, MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1 import ReaderError
from rosbags.rosbag1.reader import Chunk, ChunkInfo, Header, IndexData, RecordType, decompressors, normalize
from rosbags.typesys.msg import normalize_msgtype

MAGIC = b"#ROSBAG V2.0\n"
_U32 = struct.Struct("<I")
_RECORD_NAMES = {t.value: t.name for t in RecordType}


@dataclass
class ScanOutcome:
    """Where the scan stopped and what it had to leave out."""

    stop_offset: int | None = None  # first byte not read: start of the first record that is not whole
    stop_reason: str | None = None
    problems: list[str] = field(default_factory=list)  # damage the scan stepped over (e.g. a bad chunk)
    salvaged: int = 0  # messages kept from a chunk cut off by the end of the file or never closed
    index_pos: int = 0  # what the bag header says (0: never indexed)


def parse_header(buf: Any, start: int, end: int, *, need_op: bool = True) -> Header | None:
    """A ROS1 record header (``<u32 len>name=value`` fields) in ``buf[start:end]``, None if malformed."""
    header = Header()
    pos = start
    while pos < end:
        if pos + 4 > end:
            return None
        (size,) = _U32.unpack_from(buf, pos)
        pos += 4
        if pos + size > end:
            return None
        name, sep, value = bytes(buf[pos : pos + size]).partition(b"=")
        if not sep:
            return None
        header[name.decode(errors="replace")] = value
        pos += size
    if need_op and len(header.get("op", b"")) != 1:
        return None
    return header


def record_at(buf: Any, pos: int, end: int) -> tuple[Header, int, int] | None:
    """(header, data start, data end) of the record at `pos`; None when its header does not fit before
    `end` or does not parse. The data end may lie past `end` (the caller decides what a cut record means)."""
    if pos + 4 > end:
        return None
    (header_len,) = _U32.unpack_from(buf, pos)
    header_end = pos + 4 + header_len
    if header_end + 4 > end:
        return None
    header = parse_header(buf, pos + 4, header_end)
    if header is None:
        return None
    (data_len,) = _U32.unpack_from(buf, header_end)
    return header, header_end + 4, header_end + 4 + data_len


class ReindexedReader(Ros1Reader):
    """rosbags' ROS1 reader for bags without a usable index: `open` rebuilds the index by scanning."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self.outcome = ScanOutcome()
        self._conns: dict[int, Connection] = {}
        self._index: dict[int, list[IndexData]] = defaultdict(list)

    def open(self) -> None:
        if self.bio is not None:
            raise ReaderError("Reader is already open.")
        self.bio = self.path.open("rb")
        try:
            size = os.fstat(self.bio.fileno()).st_size
            if size < len(MAGIC) or self.bio.read(len(MAGIC)) != MAGIC:
                raise ReaderError(f"{self.path}: not a ROS1 v2.0 bag (file magic missing)")
            with mmap.mmap(self.bio.fileno(), 0, access=mmap.ACCESS_READ) as view:
                self._scan(view, size)
        except BaseException:
            with suppress(Exception):
                self.close()
            raise
        self.indexes = {cid: sorted(self._index[cid]) for cid in self._conns}  # stable: file order on ties
        self.connections = [c._replace(msgcount=len(self.indexes[c.id])) for c in self._conns.values()]

    # --- the scan -------------------------------------------------------------------------------------

    def _stop(self, offset: int, reason: str) -> None:
        self.outcome.stop_offset, self.outcome.stop_reason = offset, reason

    def _scan(self, view: mmap.mmap, size: int) -> None:
        rec = record_at(view, len(MAGIC), size)
        if rec is None or rec[2] > size or rec[0].get_uint8("op") != RecordType.BAGHEADER:
            raise ReaderError(f"{self.path}: the bag header record is unreadable")
        header, _, pos = rec
        if header.get("encryptor"):
            raise ReaderError(
                f"{self.path}: bag encryption {header.get_string('encryptor')!r} is not supported"
            )
        self.outcome.index_pos = header.get_uint64("index_pos")
        while pos < size:
            rec = record_at(view, pos, size)
            if rec is None:
                self._stop(pos, f"record at byte {pos} is cut off or unreadable")
                return
            header, start, end = rec
            op = header.get_uint8("op")
            if op == RecordType.CHUNK:
                next_pos = self._chunk(view, size, pos, header, start, end)
                if next_pos is None:
                    return
                pos = next_pos
                continue
            if end > size:
                self._stop(pos, f"{_RECORD_NAMES.get(op, f'op {op}')} record at byte {pos} is cut off")
                return
            if op == RecordType.CONNECTION:  # the copies in the index section (rosbag reindex reads them too)
                self._connection(header, view[start:end], pos)
            elif op not in (RecordType.IDXDATA, RecordType.CHUNK_INFO):
                self._stop(pos, f"unexpected record (op {op}) at byte {pos}")
                return
            pos = end  # index records are rebuilt from the chunks themselves

    def _chunk(
        self, view: mmap.mmap, size: int, pos: int, header: Header, start: int, end: int
    ) -> int | None:
        """Index one chunk; return where the next record starts, or None when the scan ends here."""
        compression = header.get_string("compression")
        if compression not in decompressors:
            raise ReaderError(
                f"{self.path}: chunk at byte {pos} uses unsupported compression {compression!r}"
            )
        unclosed = end == start  # rosbag writes the sizes when it closes a chunk; 0 = recording interrupted
        if not unclosed and end <= size:
            if compression == "none":
                buf: Any = view
                base, limit = start, end
            else:
                try:
                    buf = decompressors[compression](view[start:end])
                except Exception as exc:
                    self.outcome.problems.append(
                        f"{self.path}: chunk at byte {pos} does not decompress ({exc}); its messages are lost"
                    )
                    return end
                base, limit = 0, len(buf)
            self.chunks[pos] = Chunk(end - start, start, decompressors[compression])
            stopped, count = self._chunk_records(buf, base, limit, pos)
            if stopped < limit:
                self.outcome.problems.append(
                    f"{self.path}: chunk at byte {pos} is damaged after {count} messages; the rest of it is lost"
                )
            return end
        what = "was never closed (recording interrupted)" if unclosed else "is cut off by the end of the file"
        if compression != "none":  # a cut compressed stream holds no whole block of a ~1 MB chunk: lost
            self._stop(pos, f"{compression} chunk at byte {pos} {what}; its messages are lost")
            return None
        # uncompressed: its records lie in the file as written, keep every whole one
        avail = size if unclosed else min(end, size)
        self.chunks[pos] = Chunk(avail - start, start, decompressors["none"])
        stopped, count = self._chunk_records(view, start, avail, pos)
        self.outcome.salvaged += count
        if unclosed:
            if count:
                self.outcome.problems.append(
                    f"{self.path}: chunk at byte {pos} was never closed (recording interrupted); "
                    f"{count} messages kept from it"
                )
            return stopped  # carry on after its last whole record
        self._stop(stopped, f"chunk at byte {pos} {what}; {count} whole messages kept from it")
        return None

    def _chunk_records(self, buf: Any, base: int, limit: int, chunk_pos: int) -> tuple[int, int]:
        """Index the whole records of one chunk's data ``buf[base:limit]``; return (where it stopped, messages)."""
        pos, count = base, 0
        times: list[int] = []
        counts: Counter[int] = Counter()
        while pos < limit:
            rec = record_at(buf, pos, limit)
            if rec is None or rec[2] > limit:
                break
            header, start, end = rec
            try:
                op = header.get_uint8("op")
                if op == RecordType.CONNECTION:
                    self._connection(header, buf[start:end], chunk_pos)
                elif op == RecordType.MSGDATA:
                    cid, time = header.get_uint32("conn"), header.get_time("time")
                    if cid not in self._conns:
                        self.outcome.problems.append(
                            f"{self.path}: message at chunk {chunk_pos} offset {pos - base} has connection "
                            f"{cid}, which no connection record defines; skipped"
                        )
                    else:
                        self._index[cid].append(IndexData(time, chunk_pos, pos - base))
                        times.append(time)
                        counts[cid] += 1
                        count += 1
                else:
                    break
            except ReaderError:
                break
            pos = end
        if times:
            self.chunk_infos.append(ChunkInfo(chunk_pos, min(times), max(times) + 1, dict(counts)))
        return pos, count

    def _connection(self, header: Header, data: Any, where: int) -> None:
        fields = parse_header(data, 0, len(data), need_op=False)
        try:
            cid = header.get_uint32("conn")
            if cid in self._conns:
                return
            if fields is None:
                raise ReaderError("connection header does not parse")
            latching = fields.get("latching", b"").decode() or None
            self._conns[cid] = Connection(
                cid,
                normalize(header.get_string("topic")),
                normalize_msgtype(fields.get_string("type")),
                MessageDefinition(MessageDefinitionFormat.MSG, fields.get_string("message_definition")),
                fields.get_string("md5sum"),
                0,
                ConnectionExtRosbag1(
                    fields.get_string("callerid") if "callerid" in fields else None,
                    int(latching) if latching and latching.isdigit() else None,
                ),
                self,
            )
        except ReaderError as exc:
            self.outcome.problems.append(
                f"{self.path}: connection record near byte {where} unreadable ({exc})"
            )
