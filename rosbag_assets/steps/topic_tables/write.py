"""`topic_tables`: every non-image topic of a drive's bags as Parquet, in one streaming pass per bag.

Layout: ``<out_dir>/<topic slug>/<bag name>.parquet`` -- one file per topic and bag. The folder of a topic is
the drive's table for it (``pd.read_parquet(out_dir / "imu.data")`` reads all bags as one table), while each
file stays one bag's: bags are written independently (one download, one pass, one bag's memory at a time),
a bag whose copy of a message type differs (a driver update between recordings) still gets a valid file,
and a re-run of one bag replaces just its files. Each file's schema metadata names its topic, message type,
bag and message definition.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rosbags.highlevel import AnyReader
from rosbags.typesys.store import Typestore

from rosbag_assets.io.bag_index import bin_width_ns
from rosbag_assets.io.bags import (
    DEFAULT_TYPESTORE,
    EMPTY_START,
    BagReadError,
    bag_uri,
    describe_error,
    open_bag,
)
from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.storage import Storage
from rosbag_assets.steps import report
from rosbag_assets.steps.topic_tables.batch import TopicBuffer
from rosbag_assets.steps.topic_tables.options import TopicTablesOptions
from rosbag_assets.steps.topic_tables.plan import TablePlan, UnsupportedFieldError, build_plan
from rosbag_assets.steps.topic_tables.summary import TopicTable, TopicTablesSummary
from rosbag_assets.steps.topic_tables.typestore import complete_typestore

BagInput = Path | str | AnyReader | tuple[str, Path | str | AnyReader]


def topic_slug(topic: str) -> str:
    """A folder name for a topic: ``/imu/data`` -> ``imu.data`` (ROS names hold no dots, so it reads back)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", topic.strip("/").replace("/", "."))
    return slug or "_"


def write_topic_tables(
    bags: Iterable[BagInput],
    out_dir: Path,
    options: TopicTablesOptions | None = None,
    log: report.StepLog | None = None,
) -> TopicTablesSummary:
    """Write every wanted topic of each bag to ``out_dir/<topic slug>/<bag name>.parquet``.

    A bag is a local path (opened here), an open AnyReader (left open), or ``(name, path_or_reader)``. A bag
    that cannot be opened is recorded in `bag_errors`; the others are still written.
    """
    options = options or TopicTablesOptions()
    log = log or report.default_log()
    summary = TopicTablesSummary()
    started = time.perf_counter()
    names: set[str] = set()
    for item in bags:
        name, source = item if isinstance(item, tuple) else (_bag_name(item), item)
        name = _unique(name, names)
        try:
            with _reader(source) as reader:
                tables, stopped = write_bag_tables(reader, name, Path(out_dir), options, log)
            summary.tables += tables
            if stopped:
                summary.bag_errors[name] = stopped
        except BagReadError as exc:
            summary.bag_errors[name] = str(exc)
            log.warning(f"topic_tables: {exc}")
    summary.seconds = time.perf_counter() - started
    return summary


def write_drive_topic_tables(
    storage: Storage,
    bags: Sequence[BagRef],
    out_dir: Path,
    options: TopicTablesOptions | None = None,
    log: report.StepLog | None = None,
    workdir: Path | None = None,
) -> TopicTablesSummary:
    """`write_topic_tables` for a drive's bags in `storage`, downloading one bag at a time (named by slug)."""
    options = options or TopicTablesOptions()
    log = log or report.default_log()
    summary = TopicTablesSummary()
    started = time.perf_counter()
    for bag in bags:
        try:
            with open_bag(storage, bag, workdir) as reader:
                tables, stopped = write_bag_tables(reader, bag.slug, Path(out_dir), options, log)
            summary.tables += tables
            if stopped:
                summary.bag_errors[bag.slug] = f"{bag_uri(storage, bag)}: {stopped}"
        except BagReadError as exc:
            summary.bag_errors[bag.slug] = str(exc)
            log.warning(f"topic_tables: {exc}")
        except OSError as exc:
            summary.bag_errors[bag.slug] = f"{bag_uri(storage, bag)}: {describe_error(exc)}"
            log.warning(f"topic_tables: {summary.bag_errors[bag.slug]}")
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class _Topic:
    """One topic table of the bag being written."""

    table: TopicTable
    plan: TablePlan | None = None
    buffer: TopicBuffer | None = None
    writer: pq.ParquetWriter | None = None
    tmp: Path | None = None
    seen: int = 0  # messages of the topic read so far: the index of the next one

    def fail(self, index: int, reason: str) -> None:
        self.table.errors += 1
        if self.table.first_error_index is None or index < self.table.first_error_index:
            self.table.first_error_index, self.table.first_error = index, reason


def write_bag_tables(
    reader: AnyReader, bag: str, out_dir: Path, options: TopicTablesOptions, log: report.StepLog
) -> tuple[list[TopicTable], str | None]:
    """One pass over an open bag: every wanted topic to ``out_dir/<slug>/<bag>.parquet``.

    Returns the tables and, when the bag could not be read to its end, why (the tables then hold the
    messages read before).
    """
    started = time.perf_counter()
    wanted = [c for c in reader.connections if options.wants(c.topic, c.msgtype)]
    store = complete_typestore(reader, {c.msgtype for c in wanted}, options)
    topics: dict[tuple[str, str], _Topic] = {}
    by_conn: dict[int, _Topic] = {}
    bin_ns = _bin_ns(reader)
    for conn in wanted:
        key = (conn.topic, conn.msgtype)
        if key not in topics:
            topics[key] = _open_topic(conn, bag, out_dir, store, reader.is2, options, topics)
            topics[key].table.bin_ns = bin_ns
        topics[key].table.messages += conn.msgcount
        by_conn[conn.id] = topics[key]
    if len(by_conn) != len(wanted):
        raise BagReadError(f"{bag}: connection ids are not unique; open each bag in its own reader")
    stopped: str | None = None
    try:
        with _gc_paused():
            stopped = _stream(reader, wanted, by_conn, store, options)
        for topic in topics.values():
            _finish(topic, options)
    finally:
        for topic in topics.values():
            _abandon(topic)
    tables = [t.table for t in topics.values()]
    for t in tables:
        if t.errors:
            log.warning(
                f"topic_tables: {bag} {t.topic} ({t.msgtype}): skipped {t.errors} of {t.messages} messages; "
                f"first at message {t.first_error_index}: {t.first_error}"
            )
    log.info(
        f"topic_tables: {bag}: {len(tables)} topics, {sum(t.rows for t in tables)} rows "
        f"in {time.perf_counter() - started:.1f} s"
    )
    if stopped:
        log.warning(f"topic_tables: {bag}: {stopped}")
    return tables, stopped


def _stream(
    reader: AnyReader,
    wanted: list[Any],
    by_conn: dict[int, _Topic],
    store: Typestore,
    options: TopicTablesOptions,
) -> str | None:
    """The one pass over the bag: deserialise, hold, write row groups as they fill.

    Returns why reading stopped early (a damaged chunk), or None; what was read before is still written.
    """
    deserialize = store.deserialize_cdr if reader.is2 else store.deserialize_ros1
    topics = list(by_conn.values())
    held = 0  # bytes held by all topics' buffers
    messages = iter(reader.messages(connections=wanted) if wanted else ())
    done = 0
    while True:
        try:
            conn, log_time, raw = next(messages)
        except StopIteration:
            return None
        except Exception as exc:  # the reader itself failed: a damaged chunk or index
            return f"reading stopped after {done} messages: {describe_error(exc)}"
        done += 1
        topic = by_conn[conn.id]
        index = topic.seen
        topic.seen = index + 1
        buffer = topic.buffer
        if buffer is None:
            continue  # no plan: counted as one topic-wide error at the end
        if buffer.raw_mode:
            held += buffer.add_raw(index, log_time, raw)
        else:
            try:
                held += buffer.add(index, log_time, deserialize(raw, conn.msgtype), len(raw))
            except Exception as exc:  # any message that cannot be read costs itself only
                topic.fail(index, f"{type(exc).__name__}: {exc}")
                continue
        if buffer.full:
            held -= _flush(topic, options)
        elif held >= options.buffer_bytes:
            held -= _flush(max(topics, key=lambda t: t.buffer.nbytes if t.buffer else -1), options)


def _bin_ns(reader: Any) -> int:
    """Time bins for counting rows: about `bin_width_ns`'s 600 over the bag's span, 1 s when the bag does
    not know its span (a recovered one read from the start)."""
    start, end = getattr(reader, "start_time", EMPTY_START), getattr(reader, "end_time", 0)
    if start == EMPTY_START or end <= start:
        return 1_000_000_000
    return bin_width_ns(int(start), int(end))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during the pass.

    Held rows are tens of thousands of tracked objects (message parts) that every collection would walk
    again; deserialised messages form no cycles, so pausing costs no memory and saves about a quarter of
    the step's CPU time (measured on the bench's Imu/Odometry bag).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _open_topic(
    conn: Any,
    bag: str,
    out_dir: Path,
    store: Typestore,
    cdr: bool,
    options: TopicTablesOptions,
    topics: dict[tuple[str, str], _Topic],
) -> _Topic:
    slug = topic_slug(conn.topic)
    if any(name == conn.topic for name, _ in topics):
        slug += "@" + topic_slug(conn.msgtype)  # a second message type on one topic gets its own table
    taken = {t.table.path.parent.name for t in topics.values() if t.table.path is not None}
    base, n = slug, 1
    while slug in taken:  # "/foo" and a relative "foo" in one bag
        n += 1
        slug = f"{base}@{n}"
    path = out_dir / slug / f"{bag}.parquet"
    topic = _Topic(TopicTable(bag, conn.topic, conn.msgtype, path))
    try:
        topic.plan = build_plan(store, conn.msgtype, options.max_binary_bytes, options.binary == "summary")
    except UnsupportedFieldError as exc:
        topic.table.path = None
        topic.table.first_error = f"{exc}; give its definition in options.msgdefs"
        return topic
    metadata = {
        "rosbag_assets.topic": conn.topic,
        "rosbag_assets.msgtype": conn.msgtype,
        "rosbag_assets.bag": bag,
        "rosbag_assets.binary": options.binary,
        "rosbag_assets.msgdef": conn.msgdef.data or "",
    }
    deserialize = store.deserialize_cdr if cdr else store.deserialize_ros1
    topic.buffer = TopicBuffer(
        topic.plan,
        options,
        topic.plan.schema(metadata),
        deserialize=lambda raw, msgtype=conn.msgtype: deserialize(raw, msgtype),
        fast=(store, cdr) if options.fast_path else None,
    )
    return topic


def _flush(topic: _Topic, options: TopicTablesOptions) -> int:
    """Write the topic's held rows as one row group; returns the bytes it held."""
    buffer = topic.buffer
    if buffer is None or not len(buffer):
        return 0
    held = buffer.nbytes
    batch, failures = buffer.take()
    for index, reason in failures:
        topic.fail(index, reason)
    if topic.writer is None:
        assert topic.table.path is not None
        topic.table.path.parent.mkdir(parents=True, exist_ok=True)
        topic.tmp = topic.table.path.with_name(topic.table.path.name + ".tmp")
        topic.writer = _parquet_writer(topic.tmp, buffer.schema, options)
    topic.writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))
    topic.table.rows += batch.num_rows
    topic.table.count_times(batch.column(0).to_numpy())
    return held


def _finish(topic: _Topic, options: TopicTablesOptions) -> None:
    table = topic.table
    if topic.buffer is None:
        # every message of a topic without a usable type is skipped
        table.errors, table.first_error_index = topic.seen, 0 if topic.seen else None
        return
    _flush(topic, options)
    table.nulled = topic.buffer.nulled
    table.fast_rows = topic.buffer.fast_rows
    if topic.writer is None:  # no messages: the empty table still tells the topic and its columns
        _flush_empty(topic, options)
    assert topic.writer is not None and topic.tmp is not None and table.path is not None
    topic.writer.close()
    topic.writer = None
    topic.tmp.replace(table.path)
    table.bytes = table.path.stat().st_size


def _flush_empty(topic: _Topic, options: TopicTablesOptions) -> None:
    assert topic.buffer is not None and topic.table.path is not None
    topic.table.path.parent.mkdir(parents=True, exist_ok=True)
    topic.tmp = topic.table.path.with_name(topic.table.path.name + ".tmp")
    topic.writer = _parquet_writer(topic.tmp, topic.buffer.schema, options)
    topic.writer.write_table(topic.buffer.schema.empty_table())


def _parquet_writer(path: Path, schema: pa.Schema, options: TopicTablesOptions) -> pq.ParquetWriter:
    """Dictionary encoding for text and blobs only: tried on sensor floats it just falls back, at twice the
    write cost and a larger file (measured on the bench's Imu/Odometry bag)."""
    compression = None if options.compression == "none" else options.compression
    return pq.ParquetWriter(path, schema, compression=compression, use_dictionary=_text_columns(schema))


def _text_columns(schema: pa.Schema) -> list[str]:
    """Parquet column paths (as pyarrow spells them) of the string and binary leaves of `schema`."""

    def walk(path: str, typ: pa.DataType) -> list[str]:
        if pa.types.is_struct(typ):
            return [p for f in typ for p in walk(f"{path}.{f.name}", f.type)]
        if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
            return walk(f"{path}.list.element", typ.value_type)
        text = pa.types.is_string(typ) or pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
        return [path] if text else []

    return [p for f in schema for p in walk(f.name, f.type)]


def _abandon(topic: _Topic) -> None:
    """After a failure part-way: close and remove the unfinished file."""
    if topic.writer is not None:
        topic.writer.close()
        topic.writer = None
        if topic.tmp is not None:
            topic.tmp.unlink(missing_ok=True)


@contextmanager
def _reader(source: Path | str | AnyReader) -> Iterator[AnyReader]:
    if isinstance(source, AnyReader):
        yield source
        return
    path = Path(source)
    reader = AnyReader([path], default_typestore=DEFAULT_TYPESTORE)
    try:
        reader.open()
    except Exception as exc:
        raise BagReadError(f"{path}: cannot open bag ({describe_error(exc)})") from exc
    try:
        yield reader
    finally:
        reader.close()


def _bag_name(source: Path | str | AnyReader) -> str:
    path = Path(source.paths[0]) if isinstance(source, AnyReader) else Path(source)
    name = path.name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "bag"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate
