"""Rows of one topic held until a row group is full, then turned into one Arrow record batch.

Rows are the extractor's tuples; columns are built once per batch (``zip(*rows)``, numpy concatenation for
arrays), so the per-message cost stays a C-level attribute walk. Values over the binary limit are
summarised and released as they arrive, so a held row group never carries the blobs it will not write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from rosbags.typesys.store import Typestore

from rosbag_assets.steps.topic_tables import fastpath
from rosbag_assets.steps.topic_tables.columns import Kind, to_arrow
from rosbag_assets.steps.topic_tables.options import TopicTablesOptions
from rosbag_assets.steps.topic_tables.plan import POINTCLOUD2, TablePlan

FAST_MIN_ROWS = 64
_PC2_FLOATS = {7: "f4", 8: "f8"}  # sensor_msgs/PointField FLOAT32, FLOAT64


class TopicBuffer:
    """The not yet written rows of one topic table."""

    def __init__(
        self,
        plan: TablePlan,
        options: TopicTablesOptions,
        schema: pa.Schema,
        deserialize: Callable[[bytes], Any] | None = None,
        fast: tuple[Typestore, bool] | None = None,
    ) -> None:
        """`deserialize` and `fast` (the typestore, whether the bag is CDR) enable holding raw messages and
        decoding whole row groups by their fixed layout (see `fastpath`)."""
        self.plan = plan
        self.schema = schema
        self.getter = plan.getter
        self.limit = options.max_binary_bytes
        self.max_rows = options.row_group_rows
        self.max_bytes = options.row_group_bytes
        self.police = bool(plan.bulk_idx) and options.binary != "keep"
        self.summary = options.binary == "summary" and bool(plan.summary_fields)
        self.pointcloud = self.summary and plan.msgtype == POINTCLOUD2
        self.nulled = 0  # values over the limit written as null, over the whole topic
        self.deserialize = deserialize
        self.fast = fast
        # raw mode: hold serialised messages, decode at flush (by layout, else one by one)
        self.raw_mode = bool(fast and deserialize and not self.police and fastpath.eligible(plan))
        self.layout: fastpath.Layout | None = None
        self.fast_rows = 0  # rows decoded by layout, over the whole topic
        self._reset()

    def _reset(self) -> None:
        self.items: list[tuple[int, int, tuple]] = []  # (message index, log time, row)
        self.summaries: list[list] = []
        self.nbytes = 0
        self.full = False  # a row group's worth is held

    def __len__(self) -> int:
        return len(self.items)

    def add_raw(self, index: int, log_time: int, raw: bytes) -> int:
        """Hold one serialised message (raw mode); returns its size."""
        items = self.items
        items.append((index, log_time, raw))
        size = len(raw)
        self.nbytes += size
        self.full = len(items) >= self.max_rows or self.nbytes >= self.max_bytes
        return size

    def add(self, index: int, log_time: int, msg: Any, raw_size: int) -> int:
        """Take one deserialised message; returns the bytes now held for it.

        Raises, holding nothing of the message, when it cannot be taken.
        """
        row = self.getter(msg)
        held = raw_size
        if self.police:
            row, summary, freed = self._police(row, msg)
            held = max(held - freed, 0)
            if self.summary:
                self.summaries.append(summary)
        items = self.items
        items.append((index, log_time, row))
        self.nbytes += held
        self.full = len(items) >= self.max_rows or self.nbytes >= self.max_bytes
        return held

    def _police(self, row: tuple, msg: Any) -> tuple[tuple, list, int]:
        values = list(row)
        summary: list = []
        freed = 0
        for i in self.plan.bulk_idx:
            value = values[i]
            if self.summary:
                summary.append(len(value))
                if self.plan.columns[i].kind is not Kind.BINARY:
                    summary += _finite_min_max(value)
            if value.nbytes > self.limit:
                values[i] = None
                freed += value.nbytes
                self.nulled += 1
        if freed:
            # kept arrays are views into the raw message; copies let the raw bytes go
            values = [v.copy() if isinstance(v, np.ndarray) and v.base is not None else v for v in values]
        if self.pointcloud:
            summary += pointcloud_summary(msg)
        return tuple(values), summary, freed

    def take(self) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
        """The held rows as a record batch, and (message index, reason) of messages that were skipped.

        A row that Arrow rejects (a value out of its column's range, say) costs only that row: the batch is
        rebuilt row by row to find it. In raw mode a message rosbags cannot deserialise costs only itself.
        """
        items, summaries = self.items, self.summaries
        self._reset()
        if self.raw_mode:
            return self._take_raw(items)
        indexes, times, rows = zip(*items, strict=True) if items else ((), (), ())
        return self._convert(indexes, times, rows, summaries)

    def _take_raw(self, items: list[tuple[int, int, Any]]) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
        assert self.deserialize is not None and self.fast is not None
        _, times, raws = zip(*items, strict=True) if items else ((), (), ())
        arrays = self.layout.decode(self.plan, raws) if self.layout is not None and raws else None
        # lay out anew for the first batch, or one whose strings changed length; a handful of messages
        # (a rosout burst, a short bag) is cheaper through rosbags than through a new layout
        if arrays is None and len(raws) >= FAST_MIN_ROWS:
            try:
                store, cdr = self.fast
                self.layout = fastpath.build_layout(store, self.plan, raws[0], self.deserialize(raws[0]), cdr)
            except Exception:
                self.layout = None
            arrays = self.layout.decode(self.plan, raws) if self.layout is not None else None
        if arrays is not None:
            self.fast_rows += len(raws)
            return self._record_batch(times, arrays, []), []
        kept_indexes, kept_times, rows, failures = [], [], [], []
        for index, log_time, raw in items:
            try:
                rows.append(self.getter(self.deserialize(raw)))
            except Exception as exc:  # any message that cannot be read costs itself only
                failures.append((index, f"{type(exc).__name__}: {exc}"))
                continue
            kept_indexes.append(index)
            kept_times.append(log_time)
        batch, more = self._convert(kept_indexes, kept_times, rows, [])
        return batch, failures + more

    def _convert(
        self, indexes: Sequence[int], times: Sequence[int], rows: Sequence[tuple], summaries: Sequence[list]
    ) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
        try:
            return self._batch(times, rows, summaries), []
        except (pa.ArrowException, ValueError, TypeError, OverflowError):
            pass
        good: list[int] = []
        failures: list[tuple[int, str]] = []
        for k in range(len(rows)):
            try:
                self._batch(times[k : k + 1], rows[k : k + 1], summaries[k : k + 1])
                good.append(k)
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
                failures.append((indexes[k], f"{type(exc).__name__}: {exc}"))
        pick = [times[k] for k in good], [rows[k] for k in good], [summaries[k] for k in good if summaries]
        return self._batch(*pick), failures

    def _batch(
        self, times: Sequence[int], rows: Sequence[tuple], summaries: Sequence[list]
    ) -> pa.RecordBatch:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.plan.columns]
        arrays = [to_arrow(col, columns[i]) for i, col in enumerate(self.plan.columns)]
        return self._record_batch(times, arrays, summaries)

    def _record_batch(
        self, times: Sequence[int], arrays: list[pa.Array], summaries: Sequence[list]
    ) -> pa.RecordBatch:
        """log_time_ns, header_stamp_ns, the plan's columns, the summary columns."""
        plan = self.plan
        out = [pa.array(times, pa.int64())]
        if plan.header_idx is not None:
            sec, nsec = (arrays[i].to_numpy(zero_copy_only=False).astype(np.int64) for i in plan.header_idx)
            out.append(pa.array(sec * 1_000_000_000 + nsec, pa.int64()))
        out += arrays
        if plan.summary_fields:
            if self.summary:
                stats = list(zip(*summaries, strict=True)) if summaries else [() for _ in plan.summary_fields]
            else:
                stats = [(None,) * len(times) for _ in plan.summary_fields]
            out += [pa.array(v, f.type) for v, f in zip(stats, plan.summary_fields, strict=True)]
        return pa.RecordBatch.from_arrays(out, schema=self.schema)


def _finite_min_max(value: np.ndarray) -> list[float | None]:
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return [None, None]
    return [float(arr.min()), float(arr.max())]


def pointcloud_summary(msg: Any) -> list:
    """[points, x_min, x_max, y_min, y_max, z_min, z_max] of a sensor_msgs/PointCloud2 (finite values only).

    Axes missing from `fields` or not stored as float32/float64 are null, as is everything of a cloud whose
    layout does not fit its data.
    """
    points = int(msg.width) * int(msg.height)
    out: list = [points]
    try:
        step, row_step = int(msg.point_step), int(msg.row_step)
        data = np.asarray(msg.data).view(np.uint8).reshape(-1)
        if row_step != msg.width * step and msg.height > 1:
            data = data[: msg.height * row_step].reshape(msg.height, row_step)[:, : msg.width * step]
            data = np.ascontiguousarray(data).reshape(-1)
        count = min(points, data.size // step) if step else 0
        order = ">" if msg.is_bigendian else "<"
        fields = {f.name: f for f in msg.fields}
        for axis in "xyz":
            f = fields.get(axis)
            if count == 0 or f is None or f.datatype not in _PC2_FLOATS:
                out += [None, None]
                continue
            fmt = order + _PC2_FLOATS[f.datatype]
            dt = np.dtype({"names": [axis], "formats": [fmt], "offsets": [int(f.offset)], "itemsize": step})
            out += _finite_min_max(np.frombuffer(data, dtype=dt, count=count)[axis])
    except (ValueError, TypeError):
        out += [None] * (7 - len(out))
    return out
