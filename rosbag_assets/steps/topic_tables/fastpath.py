"""Whole row groups decoded straight from the serialised bytes, for message types of a fixed layout.

Most high-rate topics (IMU, odometry, poses, wheel speeds) serialise every message to the same bytes layout:
their strings (a header's ``frame_id``) and sequences keep one length. Such a batch is one numpy structured
array over the joined raw messages, so no message is deserialised into Python objects at all.

Safety: the layout is computed from one message rosbags has deserialised and must decode that message to the
very same values; a batch is taken this way only when every message has the layout's size, its CDR header is
little-endian and every string/sequence length field holds the layout's value. Anything else goes through
rosbags, message by message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

from rosbag_assets.steps.topic_tables.columns import Column, Kind
from rosbag_assets.steps.topic_tables.plan import TablePlan

_SIZES = {
    "bool": ("?", 1),
    "byte": ("i1", 1),  # as rosbags reads it
    "char": ("u1", 1),
    "int8": ("i1", 1),
    "uint8": ("u1", 1),
    "int16": ("<i2", 2),
    "uint16": ("<u2", 2),
    "int32": ("<i4", 4),
    "uint32": ("<u4", 4),
    "int64": ("<i8", 8),
    "uint64": ("<u8", 8),
    "float32": ("<f4", 4),
    "float64": ("<f8", 8),
}
_CDR_LE = 1  # encapsulation bytes 00 01 read as a big-endian uint16


class _NoLayout(Exception):
    """The message type (or this message) has no fixed layout."""


@dataclass
class Layout:
    """Where each column sits in a message of exactly `size` bytes."""

    dtype: np.dtype
    size: int
    checks: dict[str, int]  # hidden length fields -> the value every message must hold
    strings: dict[str, int]  # string column -> byte length (0: always "")
    counts: dict[str, int]  # sequence column -> element count

    def decode(self, plan: TablePlan, raws: Sequence[bytes]) -> list[pa.Array] | None:
        """The plan's columns of `raws`, or None when a message does not fit the layout."""
        if any(len(r) != self.size for r in raws):
            return None
        table = np.frombuffer(b"".join(raws), dtype=self.dtype, count=len(raws))
        for name, expected in self.checks.items():
            if not np.all(table[name] == expected):
                return None
        try:
            return [self._column(col, table) for col in plan.columns]
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None  # e.g. a string that is not UTF-8: rosbags names it, message by message

    def _column(self, col: Column, table: np.ndarray) -> pa.Array:
        n = len(table)
        if col.name in self.strings:
            width = self.strings[col.name]
            if width == 0:
                return pa.array([""] * n, pa.string())
            data = np.ascontiguousarray(table[col.name]).view(np.uint8)
            offsets = np.arange(n + 1, dtype=np.int32) * width
            array = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
            array.validate(full=True)
            return array
        if col.kind is Kind.SCALAR:
            return pa.array(np.ascontiguousarray(table[col.name]), type=col.type)
        count = self.counts.get(col.name, col.size)
        # an empty array has no field in the layout
        flat = np.ascontiguousarray(table[col.name]).reshape(-1) if count else np.zeros(0, col.numpy_dtype)
        if col.kind is Kind.FIXED_LIST:
            return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=col.elem), type=col.type)
        if col.kind is Kind.BINARY:
            offsets = np.arange(n + 1, dtype=np.int64) * count
            buffers = [None, pa.py_buffer(offsets), pa.py_buffer(flat.view(np.uint8))]
            return pa.Array.from_buffers(pa.large_binary(), n, buffers)
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * count)
        return pa.ListArray.from_arrays(offsets, pa.array(flat, type=col.elem), type=col.type)


def eligible(plan: TablePlan) -> bool:
    """Plans whose every column the fast path can fill (no arrays of strings or of messages)."""
    return bool(plan.columns) and all(c.kind not in (Kind.STRINGS, Kind.STRUCTS) for c in plan.columns)


def build_layout(store: Typestore, plan: TablePlan, raw: bytes, msg: Any, cdr: bool) -> Layout | None:
    """The layout of messages like `raw` (deserialised by rosbags as `msg`), checked by decoding `raw`."""
    walker = _Walker(store, cdr)
    try:
        walker.walk(plan.msgtype, msg, "")
    except _NoLayout:
        return None
    end = walker.pos + (4 if cdr else 0)
    if not (end <= len(raw) <= end + (3 if cdr else 0)):  # CDR may pad the end to 4 bytes
        return None
    fields = walker.fields + ([("#encapsulation", ">u2", 0)] if cdr else [])
    if cdr:
        walker.checks["#encapsulation"] = _CDR_LE
    dtype = np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] for f in fields],
            "offsets": [f[2] for f in fields],
            "itemsize": len(raw),
        }
    )
    layout = Layout(dtype, len(raw), walker.checks, walker.strings, walker.counts)
    got = layout.decode(plan, [raw])
    if got is None:
        return None
    want = plan.getter(msg)
    for col, array, value in zip(plan.columns, got, want, strict=True):
        if not _same(array.to_pylist()[0], value, col):
            return None
    return layout


def _same(got: Any, value: Any, col: Column) -> bool:
    if col.kind is Kind.BINARY:
        return got == np.asarray(value).view(np.uint8).tobytes()
    if isinstance(value, np.ndarray):
        return np.array_equal(np.asarray(got, dtype=value.dtype), value, equal_nan=value.dtype.kind == "f")
    if isinstance(value, float) and value != value:
        return got != got
    return got == value and type(got) is type(value)


class _Walker:
    """Field offsets of one message, walking its definition the way the serialiser lays it out."""

    def __init__(self, store: Typestore, cdr: bool) -> None:
        self.store = store
        self.cdr = cdr
        self.pos = 0  # relative to the data (after the 4-byte CDR encapsulation header)
        self.base = 4 if cdr else 0
        self.fields: list[tuple[str, Any, int]] = []
        self.checks: dict[str, int] = {}
        self.strings: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def _align(self, size: int) -> None:
        if self.cdr:
            self.pos = (self.pos + size - 1) // size * size

    def _length(self, name: str, value: int) -> None:
        self._align(4)
        self.fields.append((f"#len:{name}", "<u4", self.base + self.pos))
        self.checks[f"#len:{name}"] = value
        self.pos += 4

    def walk(self, msgtype: str, msg: Any, prefix: str) -> None:
        for fname, (node, desc) in self.store.fielddefs[msgtype][1]:
            name, value = f"{prefix}{fname}", getattr(msg, fname)
            if node == Nodetype.NAME:
                self.walk(desc, value, f"{name}.")
            elif node == Nodetype.BASE:
                self._base(name, desc[0], value)
            else:
                (elem_node, elem_desc), length = desc
                if elem_node != Nodetype.BASE or elem_desc[0] not in _SIZES:
                    raise _NoLayout(name)
                count = len(value) if node == Nodetype.SEQUENCE else length
                if node == Nodetype.SEQUENCE:
                    self._length(name, count)
                    self.counts[name] = count
                fmt, size = _SIZES[elem_desc[0]]
                if count:
                    self._align(size)
                    self.fields.append((name, (fmt, (count,)), self.base + self.pos))
                self.pos += size * count

    def _base(self, name: str, base: str, value: Any) -> None:
        if base == "string":
            data = value.encode()
            self._length(name, len(data) + (1 if self.cdr else 0))
            if data:
                self.fields.append((name, f"S{len(data)}", self.base + self.pos))
            self.strings[name] = len(data)
            self.pos += len(data) + (1 if self.cdr else 0)
            return
        if base not in _SIZES:
            raise _NoLayout(name)
        fmt, size = _SIZES[base]
        self._align(size)
        self.fields.append((name, fmt, self.base + self.pos))
        self.pos += size
