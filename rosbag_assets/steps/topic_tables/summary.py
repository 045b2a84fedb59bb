"""What `topic_tables` wrote: per topic table rows, skipped messages and bytes, as Dagster-Pipes metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rosbag_assets.steps import report


@dataclass
class TopicTable:
    """What was written for one topic of one bag."""

    bag: str
    topic: str
    msgtype: str
    path: Path | None  # None when nothing could be written (type without definition)
    messages: int = 0  # messages of the topic in the bag
    rows: int = 0
    bytes: int = 0
    errors: int = 0  # messages skipped because they could not be read or converted
    first_error_index: int | None = None  # index of the first skipped message within the topic
    first_error: str | None = None
    nulled: int = 0  # values over max_binary_bytes written as null (binary="summary"/"drop")
    fast_rows: int = 0  # rows decoded straight from the bytes by their fixed layout (see fastpath)
    bin_ns: int = 0  # width of the time bins below (see `count_times`)
    bins: dict[int, int] = field(default_factory=dict)  # bin (log time // bin_ns) -> rows written
    first_ns: int | None = None  # earliest and latest log time written
    last_ns: int | None = None

    def count_times(self, log_times: np.ndarray) -> None:
        """Count written rows per time bin: a histogram of a row group costs a sort of its times, and
        gives the step's picture of rows over time without reading any table again."""
        if not len(log_times) or self.bin_ns <= 0:
            return
        bins, counts = np.unique(log_times // self.bin_ns, return_counts=True)
        for b, c in zip(bins.tolist(), counts.tolist(), strict=True):
            self.bins[b] = self.bins.get(b, 0) + c
        low, high = int(log_times.min()), int(log_times.max())
        self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
        self.last_ns = high if self.last_ns is None else max(self.last_ns, high)


@dataclass
class TopicTablesSummary:
    """Everything one `write_topic_tables` call did."""

    tables: list[TopicTable] = field(default_factory=list)
    bag_errors: dict[str, str] = field(default_factory=dict)  # bag -> why it could not be read (to its end)
    seconds: float = 0.0

    def rows_per_topic(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tables:
            out[t.topic] = out.get(t.topic, 0) + t.rows
        return out

    def errors_per_topic(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tables:
            out[t.topic] = out.get(t.topic, 0) + t.errors
        return out

    def rate_rows(self) -> list[dict[str, int | str]]:
        """Rows written per topic and time bin, in `vision.timeline`'s rate shape."""
        return [
            {"bag": t.bag, "topic": t.topic, "start_ns": b * t.bin_ns, "bin_ns": t.bin_ns, "count": n}
            for t in self.tables
            for b, n in sorted(t.bins.items())
        ]

    def bag_spans(self) -> list[dict[str, int | str]]:
        """Per bag the first and last log time written (bags with no rows are left out)."""
        spans: dict[str, list[int]] = {}
        for t in self.tables:
            if t.first_ns is None or t.last_ns is None:
                continue
            span = spans.setdefault(t.bag, [t.first_ns, t.last_ns])
            span[0], span[1] = min(span[0], t.first_ns), max(span[1], t.last_ns)
        return [{"bag": b, "start_ns": s, "end_ns": e} for b, (s, e) in spans.items()]

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def metadata(self) -> dict[str, report.MetadataValue]:
        """Dagster-Pipes metadata: totals and a per-table table."""
        records = [
            {
                "bag": t.bag,
                "topic": t.topic,
                "msgtype": t.msgtype,
                "rows": t.rows,
                "errors": t.errors,
                "first_error_index": t.first_error_index,
                "first_error": t.first_error,
                "bytes": t.bytes,
            }
            for t in self.tables
        ]
        columns = [("bag", "string"), ("topic", "string"), ("msgtype", "string"), ("rows", "int")]
        columns += [("errors", "int"), ("first_error_index", "int"), ("first_error", "string")]
        columns += [("bytes", "int")]
        meta = {
            "tables": report.integer(sum(t.path is not None for t in self.tables)),
            "topics": report.integer(len({t.topic for t in self.tables})),
            "rows": report.integer(sum(t.rows for t in self.tables)),
            "skipped_messages": report.integer(sum(t.errors for t in self.tables)),
            "bytes": report.integer(self.bytes),
            "per_table": report.table(records, columns),
        }
        if self.bag_errors:
            meta["bag_errors"] = report.json_value(self.bag_errors)
        return meta
