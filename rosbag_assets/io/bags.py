"""Opening bags of every supported format with one reader, and naming what went wrong when it fails.

A bag rosbags refuses for damage it can work around (index missing or cut off, MCAP cut short) or for the
ROS1 MCAP profile is opened through `io.recovery` instead, as a `RecoveredBag`: the same attributes the
steps use, plus the `RecoveryReport` saying how it was read and whether anything was left unread.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.storage import Storage, local_files

if TYPE_CHECKING:
    from rosbag_assets.io.recovery import MessageStream, RecoveryReport

# ROS1 bags carry their message definitions; ROS2 bags without them fall back to this store.
DEFAULT_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
EMPTY_START = 2**63 - 1


class BagReadError(RuntimeError):
    """A bag that cannot be read; the message names the bag (and topic, where known) and the reason."""


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def not_the_bags_fault(exc: BaseException) -> bool:
    """A failure that says nothing about the bag (a download that gave up, a full disk): it fails the step
    (to be retried) instead of marking the bag unreadable."""
    from rosbag_assets.io.s3_reads import BagDownloadError

    return isinstance(exc, BagDownloadError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    )


class RecoveredBag:
    """What the steps use of rosbags' ``AnyReader``, over `recovery.open_messages` for a damaged bag.

    `recovery` says which mode read it, how many messages are readable and, when `recovery.complete` is
    False, where and why reading stops early. Paths in it and in errors are the bag's URI, not a temp copy.
    """

    def __init__(self, path: Path, uri: str) -> None:
        from rosbag_assets.io.recovery import open_messages

        self.path, self.uri = path, uri
        try:
            connections, stream, report = open_messages(path, None)
        except BagReadError as exc:
            raise type(exc)(self._named(str(exc))) from exc
        self.connections = connections
        self._stream: MessageStream = stream
        self.recovery: RecoveryReport = report
        report.path = uri
        if report.stop_path:
            report.stop_path = self._named(report.stop_path)
        report.problems = [self._named(p) for p in report.problems]
        self.is2 = stream.is2
        self.message_count = report.messages
        self.start_time = report.start_ns if report.start_ns is not None else EMPTY_START
        self.end_time = report.end_ns + 1 if report.end_ns is not None else 0

    def _named(self, text: str) -> str:
        return text.replace(str(self.path), self.uri.rstrip("/"))

    def messages(self, connections: Any = ()) -> Iterator[tuple[Any, int, Any]]:
        """(connection, log time ns, raw bytes) of `connections` (default: all), in the bag's order."""
        wanted = {c.id for c in connections} if connections else None
        try:
            for conn, log_time, raw in self._stream:
                if wanted is None or conn.id in wanted:
                    yield conn, log_time, raw
        except BagReadError as exc:
            raise type(exc)(self._named(str(exc))) from exc

    def deserialize(self, rawdata: Any, msgtype: str) -> Any:
        return self._stream.deserialize(rawdata, msgtype)

    def close(self) -> None:
        self._stream.close()


BagReader = AnyReader | RecoveredBag


@contextmanager
def open_bag(storage: Storage, bag: BagRef, workdir: Path | None = None) -> Iterator[BagReader]:
    """Open `bag` (downloading it first when remote): an open AnyReader, or a `RecoveredBag` when rosbags
    refuses it for damage recovery can work around. Raises BagReadError naming the bag otherwise."""
    keys = [f.key for f in bag.files]
    with local_files(storage, keys, workdir) as paths:
        # a ROS2 bag folder opens by its folder; single files by themselves
        target = (
            [next(p for p in paths if p.name == "metadata.yaml").parent] if bag.has_metadata else paths[:1]
        )
        uri = bag_uri(storage, bag)
        if all(p.stat().st_size == 0 for p in paths if p.name != "metadata.yaml"):
            raise BagReadError(f"{uri}: zero-length file, nothing was recorded")
        reader: BagReader = AnyReader(target, default_typestore=DEFAULT_TYPESTORE)
        try:
            reader.open()
        except Exception as exc:
            try:
                reader = RecoveredBag(target[0], uri)
            except BagReadError as recovery_exc:
                text = str(recovery_exc)  # names the bag; says what recovery tried, when it applied
                if ": cannot open (" in text or ": no such file" in text:
                    text = f"{uri}: cannot open {bag.format} bag ({describe_error(exc)})"
                raise BagReadError(text) from exc
        try:
            yield reader
        finally:
            reader.close()


def bag_uri(storage: Storage, bag: BagRef) -> str:
    """The address a person would use for this bag."""
    if bag.has_metadata:
        return storage.uri(bag.files[0].key).rsplit("/", 1)[0] + "/"
    return storage.uri(bag.files[0].key)
