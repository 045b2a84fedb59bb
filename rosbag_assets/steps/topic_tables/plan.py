"""From a message definition to a flat Arrow schema and a fast per-message extractor.

Nested messages become ``a.b.c`` columns, arrays of primitives list columns (``uint8``/``byte``/``char``
arrays binary columns), arrays of messages ``list<struct>`` columns. The extractor is one
``operator.attrgetter`` over every column path, so taking a row from a deserialised message runs in C.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

from rosbag_assets.steps.topic_tables.columns import Column, Kind, tuple_getter

HEADER = "std_msgs/msg/Header"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
LOG_TIME = "log_time_ns"
HEADER_STAMP = "header_stamp_ns"

_SCALARS: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "byte": pa.int8(),  # rosbags reads ROS byte as signed, char as unsigned
    "char": pa.uint8(),
    "int8": pa.int8(),
    "uint8": pa.uint8(),
    "int16": pa.int16(),
    "uint16": pa.uint16(),
    "int32": pa.int32(),
    "uint32": pa.uint32(),
    "int64": pa.int64(),
    "uint64": pa.uint64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "float128": pa.float64(),
    "string": pa.string(),
    "wstring": pa.string(),
    "wchar": pa.string(),
}
_EMPTY_PLACEHOLDER = "structure_needs_at_least_one_member"
_BLOB_ELEMENTS = {"uint8", "byte", "char"}
_STRINGS = {"string", "wstring", "wchar"}


class UnsupportedFieldError(TypeError):
    """A message type without definition, or a field with no table form; names the type and field."""


@dataclass
class TablePlan:
    """How one message type becomes rows: columns, the extractor, and summary columns for bulk values."""

    msgtype: str
    columns: list[Column]
    getter: Callable[[Any], tuple]
    header_idx: tuple[int, int] | None  # indexes of header.stamp.sec / .nanosec in columns
    bulk_idx: list[int] = field(default_factory=list)
    summary_fields: list[pa.Field] = field(default_factory=list)

    def schema(self, metadata: dict[str, str] | None = None) -> pa.Schema:
        fields = [pa.field(LOG_TIME, pa.int64(), nullable=False)]
        if self.header_idx is not None:
            fields.append(pa.field(HEADER_STAMP, pa.int64()))
        fields += [pa.field(c.name, c.type) for c in self.columns]
        fields += self.summary_fields
        return pa.schema(fields, metadata=metadata)


def build_plan(store: Typestore, msgtype: str, max_binary_bytes: int, summary: bool) -> TablePlan:
    """The table plan of `msgtype` (which must be registered in `store`)."""
    columns = [_mark_bulk(c, max_binary_bytes) for c in _flatten(store, msgtype, "")]
    names = {c.name: i for i, c in enumerate(columns)}
    header_idx = None
    if _field_type(store, msgtype, "header") == HEADER:
        header_idx = (names["header.stamp.sec"], names["header.stamp.nanosec"])
    getter = tuple_getter([c.name for c in columns])
    plan = TablePlan(msgtype, columns, getter, header_idx, [i for i, c in enumerate(columns) if c.bulk])
    if summary:
        for i in plan.bulk_idx:
            col = columns[i]
            plan.summary_fields.append(pa.field(f"{col.name}:len", pa.int64()))
            if col.kind is not Kind.BINARY:
                plan.summary_fields += [pa.field(f"{col.name}:{s}", pa.float64()) for s in ("min", "max")]
        if msgtype == POINTCLOUD2:
            plan.summary_fields.append(pa.field("data:points", pa.int64()))
            plan.summary_fields += [
                pa.field(f"data:{axis}_{s}", pa.float64()) for axis in "xyz" for s in ("min", "max")
            ]
    return plan


def _mark_bulk(col: Column, max_binary_bytes: int) -> Column:
    if col.kind in (Kind.BINARY, Kind.LIST) or (
        col.kind is Kind.FIXED_LIST and col.size * col.numpy_dtype.itemsize > max_binary_bytes
    ):
        return replace(col, bulk=True)
    return col


def _fields(store: Typestore, msgtype: str) -> list[tuple[str, tuple]]:
    try:
        return store.fielddefs[msgtype][1]
    except KeyError:
        raise UnsupportedFieldError(f"message type {msgtype} is not defined") from None


def _data_fields(store: Typestore, msgtype: str) -> list[tuple[str, tuple]]:
    """The fields that carry data: not the placeholder IDL gives an empty message (std_msgs/Empty)."""
    return [f for f in _fields(store, msgtype) if f[0] != _EMPTY_PLACEHOLDER]


def _field_type(store: Typestore, msgtype: str, name: str) -> str | None:
    for fname, (node, desc) in _fields(store, msgtype):
        if fname == name and node == Nodetype.NAME:
            return desc
    return None


def _flatten(store: Typestore, msgtype: str, prefix: str) -> list[Column]:
    """Top-level columns: nested messages flattened into dotted names."""
    out: list[Column] = []
    for fname, (node, desc) in _data_fields(store, msgtype):
        if node == Nodetype.NAME:
            out += _flatten(store, desc, f"{prefix}{fname}.")
        else:
            col = _column(store, msgtype, f"{prefix}{fname}", node, desc)
            if col is not None:
                out.append(col)
    return out


def _column(store: Typestore, msgtype: str, name: str, node: Any, desc: Any) -> Column | None:
    """The column of one field; None for a field that holds no data (a message without fields)."""
    if node == Nodetype.BASE:
        return Column(name, Kind.SCALAR, _scalar(desc[0], msgtype, name))
    if node == Nodetype.NAME:
        children = _children(store, desc)
        return (
            Column(name, Kind.STRUCT, pa.struct(_arrow_fields(children)), children=children)
            if children
            else None
        )
    if node not in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        raise UnsupportedFieldError(f"{msgtype}: field {name} has unknown node type {node}")
    (elem_node, elem_desc), size = desc
    fixed = node == Nodetype.ARRAY
    if elem_node == Nodetype.NAME:
        children = _children(store, elem_desc)
        if not children:
            return None
        struct = pa.struct(_arrow_fields(children))
        return Column(name, Kind.STRUCTS, pa.list_(struct), struct, size, children=children)
    base = elem_desc[0]
    if base in _BLOB_ELEMENTS:
        return Column(name, Kind.BINARY, pa.large_binary(), pa.uint8(), size if fixed else 0)
    if base in _STRINGS:
        return Column(name, Kind.STRINGS, pa.list_(pa.string()), pa.string(), size)
    elem = _scalar(base, msgtype, name)
    if fixed:
        return Column(name, Kind.FIXED_LIST, pa.list_(elem, size), elem, size)
    return Column(name, Kind.LIST, pa.list_(elem), elem)


def _children(store: Typestore, msgtype: str) -> tuple[Column, ...]:
    """Columns of the fields of a message nested inside an array (kept as a struct, not flattened)."""
    fields = _data_fields(store, msgtype)
    cols = (_column(store, msgtype, fname, node, desc) for fname, (node, desc) in fields)
    return tuple(c for c in cols if c is not None)


def _arrow_fields(children: tuple[Column, ...]) -> list[pa.Field]:
    return [pa.field(c.name, c.type) for c in children]


def _scalar(base: str, msgtype: str, name: str) -> pa.DataType:
    try:
        return _SCALARS[base]
    except KeyError:
        raise UnsupportedFieldError(f"{msgtype}: field {name} has unsupported type {base}") from None
