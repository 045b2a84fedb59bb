"""Reading what can be read from damaged bags, and saying exactly how much that was.

`open_messages` opens a bag with rosbags as usual; only when rosbags refuses it for a reason recovery can
work around does it fall back:

- ``reindexed``: a ROS1 bag whose index is missing or cut off (recording killed, copy cut short) is scanned
  chunk by chunk like ``rosbag reindex`` (`recovery_ros1`).
- ``sequential``: an MCAP cut short (no summary, no footer) is read record by record (`recovery_mcap`).
- ``mcap-ros1``: an MCAP with the ROS1 profile (rosbags reads only ros2) is read the same way; its messages
  are ROS1 wire bytes with ROS1-style connections, so rosbags' ROS1 deserialisation applies.

Every mode yields what rosbags' ``AnyReader.messages`` yields, ``(connection, log time ns, raw bytes)``, and a
`RecoveryReport` says which mode ran, how many messages are readable, and where (byte offset) and why
reading stopped early. A recovered bag is never silently presented as whole: `RecoveryReport.complete`.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from rosbag_assets.io.bags import DEFAULT_TYPESTORE, BagReadError, describe_error
from rosbag_assets.io.recovery_mcap import MAGIC as MCAP_MAGIC
from rosbag_assets.io.recovery_mcap import McapRecovery
from rosbag_assets.io.recovery_ros1 import MAGIC as ROS1_MAGIC
from rosbag_assets.io.recovery_ros1 import ReindexedReader

MODES = ("normal", "reindexed", "sequential", "mcap-ros1")
Message = tuple[Connection, int, Any]

# what rosbags says when the damage is one recovery works around (anything else is re-raised)
_ROS1_INDEX_DAMAGE = ("Bag is not indexed", "Bag index looks damaged")
_MCAP_DAMAGE = (
    "File end magic is invalid",
    "Invalid MCAP footer",
    "Invalid MCAP summary offset",
    "Truncated record",
    "Profile is not ros2",
)
# raised by rosbags' index parsing itself when index bytes are inconsistent
_INDEX_PARSE_ERRORS = (struct.error, AssertionError, IndexError, KeyError)


class BagRecoveryError(BagReadError):
    """A bag that cannot be read even by recovery, or a message in it that cannot; the message names the
    file (and topic / message index where known)."""


@dataclass
class RecoveryReport:
    """How a bag was read and how much of it is readable."""

    path: str
    mode: str  # one of MODES
    messages: int  # readable messages, all topics
    topics: dict[str, int] = field(default_factory=dict)  # readable messages per topic
    start_ns: int | None = None
    end_ns: int | None = None  # log time of the last message
    file_bytes: int = 0
    stop_offset: int | None = None  # byte where reading stopped early (start of the first record not whole)
    stop_path: str | None = None  # the file stop_offset refers to (a ROS2 bag folder holds several)
    stop_reason: str | None = None
    first_error: str | None = None  # why rosbags refused the bag (None when mode is normal)
    problems: list[str] = field(default_factory=list)  # damage stepped over (a chunk lost, a channel skipped)
    salvaged: int = 0  # messages kept from a chunk cut off or never closed

    @property
    def complete(self) -> bool:
        """True only when nothing was left unread: no early stop and no damage stepped over."""
        return self.stop_offset is None and not self.problems

    def summary(self) -> str:
        """One line for a log: mode, count and, when incomplete, where and why it stopped."""
        text = f"{self.path}: {self.mode}, {self.messages} messages"
        if self.first_error:
            text += f" (rosbags: {self.first_error})"
        if self.stop_offset is not None:
            text += (
                f"; stopped at byte {self.stop_offset} of {self.stop_path or self.path}: {self.stop_reason}"
            )
        if self.problems:
            text += f"; {len(self.problems)} problems: " + "; ".join(self.problems)
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"complete": self.complete}


class MessageStream:
    """(connection, log time ns, raw bytes) of the selected topics, plus what deserialising them needs.

    Iterate it once; it closes its file when exhausted, on error, on `close` or at the end of a ``with``.
    ``is2`` is False for ROS1 wire bytes (ROS1 bags and ROS1-profile MCAP), True for CDR.
    """

    def __init__(
        self,
        path: Path,
        connections: list[Connection],
        messages: Iterator[Message],
        typestore: Typestore,
        is2: bool,
        report: RecoveryReport,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.path, self.connections, self.typestore, self.is2, self.report = (
            path,
            connections,
            typestore,
            is2,
            report,
        )
        self.count = 0  # messages yielded so far
        self._messages, self._close, self._last_topic = messages, close, None

    @property
    def start_time(self) -> int | None:
        return self.report.start_ns

    def __iter__(self) -> MessageStream:
        return self

    def __next__(self) -> Message:
        try:
            item = next(self._messages)
        except StopIteration:
            self.close()
            raise
        except Exception as exc:
            self.close()
            after = f" (after topic {self._last_topic})" if self._last_topic else ""
            raise BagRecoveryError(
                f"{self.path}: message {self.count}{after} unreadable in {self.report.mode} mode "
                f"({describe_error(exc)})"
            ) from exc
        self.count += 1
        self._last_topic = item[0].topic
        return item

    def deserialize(self, rawdata: Any, msgtype: str) -> Any:
        """The message object for `rawdata` (same call as rosbags' ``AnyReader.deserialize``)."""
        try:
            if self.is2:
                return self.typestore.deserialize_cdr(rawdata, msgtype)
            return self.typestore.deserialize_ros1(rawdata, msgtype)
        except Exception as exc:
            raise BagRecoveryError(
                f"{self.path}: cannot deserialize a {msgtype} ({describe_error(exc)})"
            ) from exc

    def close(self) -> None:
        close, self._close = self._close, None
        messages, self._messages = self._messages, iter(())
        if hasattr(messages, "close"):  # a generator: its own files close with it
            messages.close()
        if close is not None:
            close()

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_messages(
    path: str | Path, topics: list[str] | None = None, *, default_typestore: Typestore | None = None
) -> tuple[list[Connection], MessageStream, RecoveryReport]:
    """(selected connections, message stream, report) for a ROS1 bag, MCAP file or ROS2 bag folder.

    Tries rosbags first; falls back to recovery only when rosbags refuses the bag for index/footer damage or
    the ROS1 MCAP profile. `topics` None selects every topic. `default_typestore` is used for ROS2 bags that
    carry no message definitions (default: the project's ROS2 Humble store).
    """
    path = Path(path)
    if not path.exists():
        raise BagRecoveryError(f"{path}: no such file or folder")
    default = default_typestore or DEFAULT_TYPESTORE
    kind = _kind(path)
    try:
        if kind == "ros1":
            stream = _ros1(path, Ros1Reader(path), topics, "normal", None)
        else:
            stream = _any(path, topics, default)
    except BagRecoveryError:
        raise
    except Exception as exc:
        if not _recoverable(kind, exc, path):
            raise BagRecoveryError(f"{path}: cannot open ({describe_error(exc)})") from exc
        first_error = describe_error(exc)
        try:
            if kind == "ros1":
                stream = _ros1(path, ReindexedReader(path), topics, "reindexed", first_error)
            else:
                stream = _mcap(path, _mcap_files(path), topics, default, first_error)
        except BagRecoveryError:
            raise
        except Exception as exc2:
            raise BagRecoveryError(
                f"{path}: unreadable, and recovery failed too ({describe_error(exc2)}; rosbags: {first_error})"
            ) from exc2
    return stream.connections, stream, stream.report


def build_typestore(
    connections: list[Connection], *, ros2: bool, default: Typestore | None, path: Path
) -> Typestore:
    """The types the connections' own definitions describe (as rosbags' AnyReader builds them); for ROS1,
    each connection's md5 must match its definition."""
    types: dict[str, Any] = {}
    defined = [c for c in connections if c.msgdef.format != MessageDefinitionFormat.NONE]
    for conn in defined:
        try:
            if conn.msgdef.format == MessageDefinitionFormat.MSG:
                types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
            else:
                sep = "=" * 80 + "\n"
                parts = (
                    conn.msgdef.data.split(sep)[1:] if conn.msgdef.data.startswith(f"{sep}IDL: ") else None
                )
                for idl in [p.split("\n", 1)[1] for p in parts] if parts else [conn.msgdef.data]:
                    types.update(get_types_from_idl(idl))
        except Exception as exc:
            raise BagRecoveryError(
                f"{path}: topic {conn.topic}: message definition of {conn.msgtype} does not parse "
                f"({describe_error(exc)})"
            ) from exc
    if not defined and default is not None:
        types.update(default.fielddefs)
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    if not ros2:
        for conn in defined:
            if conn.digest and (have := store.generate_msgdef(conn.msgtype)[1]) != conn.digest:
                raise BagRecoveryError(
                    f"{path}: topic {conn.topic}: {conn.msgtype} definition hashes to {have}, "
                    f"the bag says {conn.digest}"
                )
    return store


# --- the four modes ---------------------------------------------------------------------------------------


def _select(connections: list[Connection], topics: list[str] | None) -> list[Connection]:
    return [c for c in connections if topics is None or c.topic in topics]


def _per_topic(connections: list[Connection]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for conn in connections:
        counts[conn.topic] += int(conn.msgcount or 0)
    return dict(sorted(counts.items()))


def _ros1(
    path: Path, reader: Ros1Reader, topics: list[str] | None, mode: str, first_error: str | None
) -> MessageStream:
    reader.open()
    try:
        store = build_typestore(reader.connections, ros2=False, default=None, path=path)
        count = sum(c.msgcount for c in reader.connections)
        report = RecoveryReport(
            str(path),
            mode,
            count,
            _per_topic(reader.connections),
            start_ns=reader.start_time if count else None,
            end_ns=reader.end_time - 1 if count else None,
            file_bytes=path.stat().st_size,
            first_error=first_error,
        )
        if isinstance(reader, ReindexedReader):
            out = reader.outcome
            report.stop_offset, report.stop_reason = out.stop_offset, out.stop_reason
            report.stop_path = str(path) if out.stop_offset is not None else None
            report.problems, report.salvaged = list(out.problems), out.salvaged
        selected = _select(reader.connections, topics)
        messages = reader.messages(connections=selected) if selected else iter(())
    except BaseException:
        reader.close()
        raise
    return MessageStream(path, selected, messages, store, False, report, reader.close)


def _any(path: Path, topics: list[str] | None, default: Typestore) -> MessageStream:
    reader = AnyReader([path], default_typestore=default)
    reader.open()
    try:
        count = reader.message_count
        report = RecoveryReport(
            str(path),
            "normal",
            count,
            _per_topic(reader.connections),
            start_ns=reader.start_time if count else None,
            end_ns=reader.end_time - 1 if count else None,
            file_bytes=_size(path),
        )
        selected = _select(reader.connections, topics)
        messages = reader.messages(connections=selected) if selected else iter(())
    except BaseException:
        reader.close()
        raise
    return MessageStream(path, selected, messages, reader.typestore, bool(reader.is2), report, reader.close)


def _mcap(
    path: Path, files: list[Path], topics: list[str] | None, default: Typestore, first_error: str
) -> MessageStream:
    rec = McapRecovery(files)
    rec.scan()
    store = build_typestore(rec.connections, ros2=not rec.ros1, default=default, path=path)
    connections = rec.connections
    if rec.ros1:  # ROS1-profile MCAP carries no md5: give the connections the one their definition has
        connections = [c._replace(digest=store.generate_msgdef(c.msgtype)[1]) for c in connections]
    stopped = next((f for f in rec.files if f.stop_offset is not None), None)
    count = sum(c.msgcount for c in connections)
    report = RecoveryReport(
        str(path),
        "mcap-ros1" if rec.ros1 else "sequential",
        count,
        _per_topic(connections),
        start_ns=rec.start_ns if count else None,
        end_ns=rec.end_ns if count else None,
        file_bytes=_size(path),
        stop_offset=stopped.stop_offset if stopped else None,
        stop_path=str(stopped.path) if stopped else None,
        stop_reason=stopped.stop_reason if stopped else None,
        first_error=first_error,
        problems=list(rec.problems)
        + [
            f"{f.path}: stopped at byte {f.stop_offset}: {f.stop_reason}"
            for f in rec.files
            if f.stop_offset is not None and f is not stopped
        ],
    )
    selected = _select(connections, topics)
    messages = rec.messages(selected) if selected else iter(())
    return MessageStream(path, selected, messages, store, not rec.ros1, report, None)


# --- what kind of bag, and whether recovery applies -------------------------------------------------------


def _kind(path: Path) -> str:
    """'ros1', 'mcap', 'folder' (ROS2 bag folder) or 'other', by content rather than by name, so an
    unfinished ``.bag.active`` recording reads as the ROS1 bag it is."""
    if path.is_dir():
        return "folder"
    with path.open("rb") as fh:
        head = fh.read(len(ROS1_MAGIC))
    if head.startswith(ROS1_MAGIC):
        return "ros1"
    if head.startswith(MCAP_MAGIC):
        return "mcap"
    return "other"


def _recoverable(kind: str, exc: BaseException, path: Path) -> bool:
    text = str(exc)
    if kind == "ros1":
        return any(s in text for s in _ROS1_INDEX_DAMAGE) or isinstance(exc, _INDEX_PARSE_ERRORS)
    if kind in ("mcap", "folder"):
        damaged = any(s in text for s in _MCAP_DAMAGE) or isinstance(exc, _INDEX_PARSE_ERRORS)
        return damaged and bool(_mcap_files(path))
    return False


def _mcap_files(path: Path) -> list[Path]:
    """The storage files of an MCAP bag: the file itself, or a folder's files in metadata.yaml order."""
    if not path.is_dir():
        return [path]
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        names = [path / name for name in info.get("relative_file_paths", [])]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        names = []
    return [p for p in names if p.suffix == ".mcap" and p.exists()] or sorted(path.glob("*.mcap"))


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size
