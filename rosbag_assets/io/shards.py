"""Tar shards: many small payloads appended to a few large objects, written on a background thread.

Each stream (e.g. one camera topic of one bag) has one open shard; past `limit_bytes` it is closed and the
next one started. Members are plain ustar/pax entries, so ``tar -xf`` gives the files back, and the caller
gets every payload's byte offset for random access (a local seek or an S3 range GET). A shard appears in
storage only once it is complete (``Storage.open_write``); `abort` leaves nothing behind.
"""

from __future__ import annotations

import os
import queue
import tarfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

END_OF_ARCHIVE = tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def _ustar_template() -> bytearray:
    info = tarfile.TarInfo("")
    info.mode = 0o644
    return bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))


_TEMPLATE = _ustar_template()
_MAX_OCTAL_11 = 8**11


def member_header(name: str, size: int, mtime: int) -> bytes:
    """The tar header block(s) for a regular file `name` of `size` bytes.

    Byte-identical to ``tarfile.TarInfo.tobuf(USTAR_FORMAT)`` (pinned by a test) for the common case of a
    short ASCII name, built from a template in a few microseconds instead of ~30; anything else (long or
    non-ASCII names, huge sizes) goes through `tarfile` itself, in pax format when ustar cannot hold it.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 100 and raw.isascii() and 0 <= size < _MAX_OCTAL_11 and 0 <= mtime < _MAX_OCTAL_11:
        buf = _TEMPLATE.copy()
        buf[0 : len(raw)] = raw
        buf[124:136] = b"%011o\0" % size
        buf[136:148] = b"%011o\0" % mtime
        buf[148:156] = b"        "
        buf[148:155] = b"%06o\0" % sum(buf)
        return bytes(buf)
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    try:
        return info.tobuf(format=tarfile.USTAR_FORMAT)  # names up to 255 characters (prefix field)
    except ValueError:
        return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8")


class ShardWriteError(RuntimeError):
    """A shard that could not be written or completed; `stream` names whose shard it was."""

    def __init__(self, stream: str | None, cause: BaseException) -> None:
        where = f" of {stream}" if stream else ""
        super().__init__(f"writing a frame shard{where} failed: {cause}")
        self.stream = stream


class TarShards:
    """Append members to per-stream tar shards; the file writes overlap the caller's work.

    `open_write(stream, n)` names and opens shard number `n` of a stream; it returns ``(key,
    context manager yielding a binary file)``. Offsets are computed by the caller's thread, so `append`
    returns at once; a write error surfaces on the next `append` or on `close`.
    """

    def __init__(
        self,
        open_write: Callable[[str, int], tuple[str, AbstractContextManager[BinaryIO]]],
        limit_bytes: int,
        max_queued: int = 4,
        batch_bytes: int = 16 * 1024 * 1024,
    ):
        self._open_write = open_write
        self.limit = limit_bytes
        self._sizes: dict[str, int] = {}  # stream -> bytes written to its open shard
        self._keys: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._ops: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(maxsize=max_queued)
        self._batch: list[tuple[Any, ...]] = []  # ops handed to the writer in groups (fewer thread switches)
        self._batch_size, self._batch_limit = 0, batch_bytes
        self._error: BaseException | None = None
        self._error_stream: str | None = None  # the stream whose shard failed, for the error message
        self._finishing_streams: dict[Future, str] = {}
        # Completing a shard can be slow (on S3: uploading it), so it happens beside the writer, not in its way.
        self._finisher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shard-finish")
        self._finishing: list[Future] = []
        self._thread = threading.Thread(target=self._run, name="shard-writer", daemon=True)
        self._thread.start()

    def append(self, stream: str, name: str, data: Any, mtime: int) -> tuple[str, int]:
        """Queue one member; return (shard key, byte offset of its payload inside the shard)."""
        self._raise_if_failed()
        view = memoryview(data).cast("B")
        if stream in self._sizes and self._sizes[stream] >= self.limit:
            self._put(("close", stream))
            del self._sizes[stream]
        if stream not in self._sizes:
            n = self._counts.get(stream, 0)
            self._counts[stream] = n + 1
            key, ctx = self._open_write(stream, n)
            self._keys[stream], self._sizes[stream] = key, 0
            self._put(("open", stream, ctx))
        header = member_header(name, view.nbytes, mtime)
        pad = -view.nbytes % tarfile.BLOCKSIZE
        offset = self._sizes[stream] + len(header)
        self._sizes[stream] = offset + view.nbytes + pad
        self._put(("write", stream, header, view, pad))
        self._batch_size += view.nbytes
        if self._batch_size >= self._batch_limit:
            self._flush()
        return self._keys[stream], offset

    def close(self) -> None:
        """Finish every open shard and wait for the writes; raises the first write error."""
        for stream in list(self._sizes):
            self._put(("close", stream))
        self._sizes.clear()
        self._stop()
        self._raise_if_failed()

    def abort(self) -> None:
        """Discard every open shard (nothing partial is published)."""
        self._put(("abort",))
        self._sizes.clear()
        self._stop()

    def _put(self, op: tuple[Any, ...]) -> None:
        self._batch.append(op)

    def _flush(self) -> None:
        batch, self._batch, self._batch_size = self._batch, [], 0
        self._send(batch)

    def _send(self, item: list[tuple[Any, ...]] | None) -> None:
        while self._thread.is_alive():
            try:
                self._ops.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _stop(self) -> None:
        self._flush()
        self._send(None)
        self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise ShardWriteError(self._error_stream, self._error) from self._error

    def _failed(self, exc: BaseException, stream: str | None) -> None:
        self._error, self._error_stream = exc, stream

    def _run(self) -> None:
        files: dict[str, tuple[AbstractContextManager[BinaryIO], BinaryIO]] = {}
        while (batch := self._ops.get()) is not None:
            if any(op[0] == "abort" for op in batch):
                break
            if self._error is None:
                self._write(batch, files)
        for ctx, _ in files.values():  # aborted or failed: discard what is still open
            reason = self._error or RuntimeError("aborted")
            ctx.__exit__(type(reason), reason, reason.__traceback__)
        self._finisher.shutdown(wait=True)
        for future in self._finishing:
            if future.exception() is not None and self._error is None:
                self._failed(future.exception(), self._finishing_streams.get(future))

    def _write(
        self,
        batch: list[tuple[Any, ...]],
        files: dict[str, tuple[AbstractContextManager[BinaryIO], BinaryIO]],
    ) -> None:
        failed = next((f for f in self._finishing if f.done() and f.exception()), None)
        if failed is not None:  # a shard could not be completed: stop early, `append` will say why
            self._failed(failed.exception(), self._finishing_streams.get(failed))
            return
        current: str | None = None
        try:
            pending: list[Any] = []  # buffers for one `writev` to the shard of `stream`
            stream = None
            for op in batch:
                kind = op[0]
                if pending and (kind != "write" or op[1] != stream or len(pending) > _IOV_MAX - 3):
                    current = stream
                    _writev(files[stream][1], pending)  # type: ignore[index]
                    pending = []
                current = op[1]
                if kind == "open":
                    ctx = op[2]
                    fh = ctx.__enter__()
                    fh.flush()
                    files[op[1]] = (ctx, fh)
                elif kind == "write":
                    _, stream, header, view, pad = op
                    pending += (header, view, tarfile.NUL * pad) if pad else (header, view)
                elif kind == "close":
                    ctx, fh = files.pop(op[1])
                    _writev(fh, [END_OF_ARCHIVE])
                    future = self._finisher.submit(ctx.__exit__, None, None, None)
                    self._finishing_streams[future] = op[1]
                    self._finishing.append(future)
            current = stream
            if pending:
                _writev(files[stream][1], pending)  # type: ignore[index]
        except BaseException as exc:
            self._failed(exc, current)


_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


def _writev(fh: BinaryIO, buffers: list[Any]) -> None:
    """Write all `buffers` to `fh` in as few system calls as possible (straight to the file descriptor)."""
    fd = fh.fileno()
    while buffers:
        written = os.writev(fd, buffers)
        while buffers and written >= memoryview(buffers[0]).nbytes:
            written -= memoryview(buffers[0]).nbytes
            buffers = buffers[1:]
        if buffers and written:
            buffers = [memoryview(buffers[0])[written:], *buffers[1:]]
