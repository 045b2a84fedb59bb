"""Columns of a topic table and how a batch of extracted values becomes one Arrow array.

Everything here is columnar: values of one column for a whole row group go to Arrow at once (numpy
concatenation for arrays, ``zip`` over ``attrgetter`` tuples for messages inside arrays), never one dict per
message, which is what keeps the step near the speed of merely reading the bag.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

# Arrow element type -> numpy dtype (pyarrow's to_pandas_dtype would import pandas: seconds on a busy host)
_NUMPY = {
    pa.bool_(): np.dtype(np.bool_),
    pa.int8(): np.dtype(np.int8),
    pa.uint8(): np.dtype(np.uint8),
    pa.int16(): np.dtype(np.int16),
    pa.uint16(): np.dtype(np.uint16),
    pa.int32(): np.dtype(np.int32),
    pa.uint32(): np.dtype(np.uint32),
    pa.int64(): np.dtype(np.int64),
    pa.uint64(): np.dtype(np.uint64),
    pa.float32(): np.dtype(np.float32),
    pa.float64(): np.dtype(np.float64),
}


class Kind(Enum):
    SCALAR = "scalar"
    BINARY = "binary"  # uint8/byte/char arrays
    LIST = "list"  # numeric/bool sequences
    FIXED_LIST = "fixed_list"  # numeric/bool fixed-size arrays
    STRINGS = "strings"  # string arrays
    STRUCT = "struct"  # a message inside an array element
    STRUCTS = "structs"  # arrays of messages


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    type: pa.DataType
    elem: pa.DataType | None = None  # element type of list kinds; the struct type of STRUCTS
    size: int = 0  # fixed array length
    bulk: bool = False  # may exceed max_binary_bytes: the binary policy applies
    children: tuple[Column, ...] = ()  # fields of STRUCT / element fields of STRUCTS

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.kind is Kind.BINARY:
            return np.dtype(np.uint8)
        assert self.elem is not None
        return _NUMPY[self.elem]

    def getter(self) -> Callable[[Any], tuple]:
        return tuple_getter([c.name for c in self.children])


def tuple_getter(paths: Sequence[str]) -> Callable[[Any], tuple]:
    """``msg -> (value of each dotted path)`` as one C-level call."""
    if not paths:
        return _no_fields
    if len(paths) == 1:
        one = operator.attrgetter(paths[0])
        return lambda msg: (one(msg),)
    return operator.attrgetter(*paths)


def _no_fields(msg: Any) -> tuple:
    return ()


def to_arrow(col: Column, values: Sequence[Any]) -> pa.Array:
    """One column of a batch: `values` as the extractor gave them (None where the binary policy nulled)."""
    kind = col.kind
    if kind in (Kind.SCALAR, Kind.STRINGS):
        return pa.array(values, type=col.type)
    if kind is Kind.STRUCT:
        return _structs(col, values)
    n = len(values)
    dtype = None if kind is Kind.STRUCTS else col.numpy_dtype
    nulls = [i for i, v in enumerate(values) if v is None]
    mask = None
    if nulls:
        valid = np.ones(n, dtype=bool)
        valid[nulls] = False
        mask = pa.array(~valid)
        filler = () if dtype is None else np.zeros(col.size if kind is Kind.FIXED_LIST else 0, dtype=dtype)
        values = [filler if v is None else v for v in values]
    if kind is Kind.STRUCTS:
        assert col.elem is not None
        offsets = _offsets(values, np.int32)
        elements = _structs(Column(col.name, Kind.STRUCT, col.elem, children=col.children), _chain(values))
        return pa.ListArray.from_arrays(pa.array(offsets), elements, type=col.type, mask=mask)
    # plain concatenate: its dtype/casting arguments cost 3x on thousands of small arrays
    flat = np.concatenate(values) if n else np.zeros(0, dtype=dtype)
    if flat.dtype != dtype:
        same_size = kind is Kind.BINARY and flat.dtype.itemsize == 1  # byte (int8) blobs are reinterpreted
        flat = flat.view(dtype) if same_size else flat.astype(dtype, casting="same_kind")
    if kind is Kind.FIXED_LIST:
        if flat.size != n * col.size:
            raise ValueError(f"{col.name}: expected {col.size} values per row, got {flat.size} in {n} rows")
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=col.elem), type=col.type, mask=mask)
    if kind is Kind.BINARY:
        offsets = _offsets(values, np.int64)
        bitmap = None if mask is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
        buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(flat)]
        return pa.Array.from_buffers(pa.large_binary(), n, buffers, null_count=len(nulls))
    offsets = _offsets(values, np.int32)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(flat, type=col.elem), type=col.type, mask=mask
    )


def _offsets(values: Sequence[Any], dtype: type) -> np.ndarray:
    offsets = np.zeros(len(values) + 1, dtype=dtype)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=len(values)), out=offsets[1:])
    return offsets


def _chain(values: Sequence[Any]) -> list[Any]:
    return list(chain.from_iterable(values))


def _structs(col: Column, messages: Sequence[Any]) -> pa.StructArray:
    """Messages (never None) as a struct array: every leaf of the nested structs in one attrgetter pass."""
    paths, leaves = _leaves(col)
    getter = tuple_getter(paths)
    columns = list(zip(*map(getter, messages), strict=True)) if messages else [() for _ in leaves]
    arrays = iter([to_arrow(leaf, column) for leaf, column in zip(leaves, columns, strict=True)])
    return _assemble(col, arrays)


@lru_cache(maxsize=4096)
def _leaves(col: Column) -> tuple[list[str], list[Column]]:
    """Dotted paths and columns of the non-struct fields under a STRUCT column, depth first."""
    paths: list[str] = []
    leaves: list[Column] = []
    for child in col.children:
        if child.kind is Kind.STRUCT:
            sub_paths, sub_leaves = _leaves(child)
            paths += [f"{child.name}.{p}" for p in sub_paths]
            leaves += sub_leaves
        else:
            paths.append(child.name)
            leaves.append(child)
    return paths, leaves


def _assemble(col: Column, arrays: Iterator[pa.Array]) -> pa.StructArray:
    children = [_assemble(c, arrays) if c.kind is Kind.STRUCT else next(arrays) for c in col.children]
    return pa.StructArray.from_arrays(children, fields=[pa.field(c.name, c.type) for c in col.children])
