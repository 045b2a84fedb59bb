"""`catalog`: one DuckDB database across all drives, updated one drive at a time.

Every table carries a `drive` column. `upsert_drive` replaces only the given drive's rows of the given
tables, in one transaction, so a catalog of thousands of drives is never rebuilt to add one. Writers are
serialised with a lock file beside the database (DuckDB allows one writing process per file; a second one
fails rather than waits). Readers open the file read-only and wait while a writer holds it.

Besides the source tables it keeps `hits`, derived per drive inside the same transaction: one row per
object label with the frame's location (`path`, `offset`, `bytes`) and the drive timeline's values at the
label's time, so a search is one filtered scan instead of a join over every drive.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from rosbag_assets.io.drives import validate_drive_name
from rosbag_assets.io.storage import Storage, join_key, storage_from_uri

SOURCE_TABLES = ("bags", "topics", "frames", "labels", "lanes", "scenes", "timeline")
TABLES = ("drives", *SOURCE_TABLES)
DERIVED_TABLE = "hits"
# Frame columns copied into `hits` (the label already names drive, bag, topic, stamp and frame key).
FRAME_COLUMNS_IN_HITS = ("path", "offset", "bytes", "data_key", "format", "log_time_ns")
# Timeline columns that would clash with label columns or mean nothing per label.
TIMELINE_COLUMNS_NOT_IN_HITS = ("drive", "frame_key", "frame_stamp_ns", "camera_topic")
Table = str | Path | pd.DataFrame | pa.Table


class CatalogError(ValueError):
    """A table cannot go into the catalog as given (names the drive, table and column)."""


@dataclass
class UpsertReport:
    drive: str
    rows: dict[str, int] = field(default_factory=dict)  # rows now held for the drive, per table
    exported: list[str] = field(default_factory=list)  # URIs of the Parquet exports written
    seconds: float = 0.0
    lock_wait_s: float = 0.0


def read_table(table: Table, *, endpoint_url: str | None = None) -> pa.Table:
    """A DataFrame, an Arrow table, or a Parquet file (local path or ``s3://``) -> Arrow table."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    uri = str(table)
    folder, _, name = uri.rpartition("/")
    if not uri.startswith("s3://"):
        return pq.read_table(uri)
    return pq.read_table(io.BytesIO(storage_from_uri(folder, endpoint_url=endpoint_url).read_bytes(name)))


def connect(
    db_path: str | Path, *, read_only: bool = False, timeout_s: float = 60.0
) -> duckdb.DuckDBPyConnection:
    """Open the catalog, waiting up to `timeout_s` while another process holds DuckDB's file lock.

    Read-only connections cannot read files or load extensions (`enable_external_access` off), so a
    query string from a user can only see the catalog.
    """
    config = {"enable_external_access": False} if read_only else {}
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


@contextmanager
def writer(
    db_path: str | Path, *, timeout_s: float = 600.0
) -> Iterator[tuple[duckdb.DuckDBPyConnection, float]]:
    """A read-write connection held under the catalog's lock file; yields (connection, seconds waited)."""
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with FileLock(str(db_path) + ".lock", timeout=timeout_s):
        con = connect(db_path, timeout_s=max(1.0, timeout_s - (time.monotonic() - t0)))
        try:
            yield con, time.monotonic() - t0
        finally:
            con.close()


def upsert_drive(
    db_path: str | Path,
    drive: str,
    tables: Mapping[str, Table],
    *,
    export_root: str | Storage | None = None,
    endpoint_url: str | None = None,
    timeout_s: float = 600.0,
) -> UpsertReport:
    """Replace `drive`'s rows of each table in `tables` (other drives and other tables stay as they are).

    `tables` maps a name of `TABLES` to a DataFrame, Arrow table or Parquet path. A `drive` column is
    added when missing; a table holding rows of another drive is refused. New columns are added to the
    catalog table; a column whose type changes incompatibly is refused (`CatalogError`). The `drives` row
    (rows per table, update time) and the drive's `hits` are rebuilt in the same transaction. With
    `export_root`, each of the drive's tables is also written to
    ``<export_root>/catalog/<table>/drive=<drive>/part.parquet`` (hive layout, readable from S3 by DuckDB,
    Athena or Spark).
    """
    validate_drive_name(drive)  # it becomes a path segment of the export and a literal in SQL
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise CatalogError(f"drive {drive}: unknown catalog tables {sorted(unknown)}; known: {list(TABLES)}")
    t0 = time.perf_counter()
    incoming = {
        name: _with_drive(read_table(t, endpoint_url=endpoint_url), drive, name) for name, t in tables.items()
    }
    report = UpsertReport(drive)
    with writer(db_path, timeout_s=timeout_s) as (con, waited):
        report.lock_wait_s = waited
        con.execute("BEGIN TRANSACTION")
        try:
            for name in SOURCE_TABLES:
                if name in incoming:
                    _replace_rows(con, name, drive, incoming[name])
            _rebuild_hits(con, drive)
            report.rows = _refresh_drive_row(con, drive, incoming.get("drives"))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if export_root is not None:
            names = ["drives", *[n for n in SOURCE_TABLES if n in incoming]]
            report.exported = export_drive(con, drive, export_root, names, endpoint_url=endpoint_url)
    report.seconds = time.perf_counter() - t0
    return report


def export_drive(
    con: duckdb.DuckDBPyConnection,
    drive: str,
    export_root: str | Storage,
    names: list[str] | None = None,
    *,
    endpoint_url: str | None = None,
) -> list[str]:
    """Write the drive's rows of each table to ``catalog/<table>/drive=<drive>/part.parquet``; their URIs."""
    storage = (
        export_root
        if not isinstance(export_root, str)
        else storage_from_uri(export_root, endpoint_url=endpoint_url)
    )
    uris = []
    for name in names or existing_tables(con):
        if name not in existing_tables(con):
            continue
        data = con.sql(f'SELECT * FROM "{name}" WHERE drive = ?', params=[drive]).to_arrow_table()
        buf = io.BytesIO()
        pq.write_table(data, buf, compression="zstd")
        key = join_key("catalog", name, f"drive={drive}", "part.parquet")
        storage.write_bytes(key, buf.getvalue())
        uris.append(storage.uri(key))
    return uris


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
    }


def table_columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, str]:
    """Column name -> DuckDB type of a catalog table (empty when the table does not exist)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
        "ORDER BY column_index",
        [name],
    ).fetchall()
    return dict(rows)


def _with_drive(data: pa.Table, drive: str, name: str) -> pa.Table:
    if "drive" not in data.column_names:
        return data.append_column("drive", pa.array([drive] * data.num_rows, pa.string()))
    others = set(data.column("drive").to_pylist()) - {drive}
    if others:
        raise CatalogError(f"table {name} for drive {drive} holds rows of other drives: {sorted(others)[:5]}")
    return data


def _replace_rows(con: duckdb.DuckDBPyConnection, name: str, drive: str, data: pa.Table) -> None:
    con.register("_incoming", data)
    try:
        _evolve(con, name, drive, "SELECT * FROM _incoming")
        con.execute(f'DELETE FROM "{name}" WHERE drive = ?', [drive])
        if data.num_rows:
            con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _incoming')
    finally:
        con.unregister("_incoming")


def _evolve(con: duckdb.DuckDBPyConnection, name: str, drive: str, select: str) -> None:
    """Create table `name` shaped like `select`, or add its new columns and widen changed numeric ones."""
    incoming = {r[0]: r[1] for r in con.execute(f"DESCRIBE {select}").fetchall()}
    have = table_columns(con, name)
    if not have:
        cols = ", ".join(f'"{c}" {_storable(t)}' for c, t in incoming.items())
        con.execute(f'CREATE TABLE "{name}" ({cols})')
        return
    for col, typ in incoming.items():
        old = have.get(col)
        if old is None:
            con.execute(f'ALTER TABLE "{name}" ADD COLUMN "{col}" {_storable(typ)}')
        elif typ != old and typ != '"NULL"':
            wider = _widen(old, typ, con, name, col)
            if wider is None:
                raise CatalogError(
                    f"drive {drive}, table {name}, column {col}: the catalog holds {old}, this drive brings {typ}"
                )
            if wider != old:
                con.execute(f'ALTER TABLE "{name}" ALTER COLUMN "{col}" SET DATA TYPE {wider}')


_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOAT = ("FLOAT", "DOUBLE")


def _storable(typ: str) -> str:
    # A column that is NULL in every incoming row has no type yet; VARCHAR until real values arrive.
    return "VARCHAR" if typ == '"NULL"' else typ


def _widen(old: str, new: str, con: duckdb.DuckDBPyConnection, name: str, col: str) -> str | None:
    """The type holding both `old` and `new` values, or None when they do not mix."""
    if old in _INTEGER and new in _INTEGER:
        return "BIGINT" if "BIGINT" in (old, new) or old != new else old
    if old in _INTEGER + _FLOAT and new in _INTEGER + _FLOAT:
        return "DOUBLE"
    (non_null,) = con.execute(f'SELECT count("{col}") FROM "{name}"').fetchall()[0]
    return new if non_null == 0 else None  # a column only ever NULL so far takes the first real type


def _rebuild_hits(con: duckdb.DuckDBPyConnection, drive: str | None) -> None:
    """Recompute `hits` for one drive (None: all drives, for bulk loads)."""
    tables = existing_tables(con)
    if DERIVED_TABLE in tables:
        if drive is None:
            con.execute(f"DELETE FROM {DERIVED_TABLE}")
        else:
            con.execute(f"DELETE FROM {DERIVED_TABLE} WHERE drive = ?", [drive])
    if "labels" not in tables:
        return
    select = hits_select(con, drive)
    _evolve(con, DERIVED_TABLE, drive or "*", select)
    con.execute(f"INSERT INTO {DERIVED_TABLE} BY NAME {select}")


def hits_select(con: duckdb.DuckDBPyConnection, drive: str | None) -> str:
    """SQL joining labels with their frame's location and the timeline's values at the label's time."""
    tables = existing_tables(con)
    where = "" if drive is None else f" WHERE drive = '{_quote(drive)}'"
    parts = ["l.*"]
    joins = [f"(SELECT * FROM labels{where}) l"]
    if "frames" in tables:
        have = table_columns(con, "frames")
        parts += [
            f'f."{c}"' for c in FRAME_COLUMNS_IN_HITS if c in have and c not in table_columns(con, "labels")
        ]
        joins.append(
            f"LEFT JOIN (SELECT * FROM frames{where}) f ON f.drive = l.drive AND f.frame_key = l.frame_key"
        )
    if "timeline" in tables:
        label_cols = set(table_columns(con, "labels"))
        cols = [
            c
            for c in table_columns(con, "timeline")
            if c not in TIMELINE_COLUMNS_NOT_IN_HITS and c not in label_cols
        ]
        parts += [f't."{c}"' for c in cols]
        joins.append(
            f"ASOF LEFT JOIN (SELECT * FROM timeline{where}) t ON t.drive = l.drive AND l.stamp_ns >= t.t_ns"
        )
    # in drive and time order, so DuckDB's per-block min/max skip other drives when a search names one
    return f"SELECT {', '.join(parts)} FROM {' '.join(joins)} ORDER BY l.drive, l.stamp_ns"


def _refresh_drive_row(con: duckdb.DuckDBPyConnection, drive: str, given: pa.Table | None) -> dict[str, int]:
    """Rows per table for the drive, written to its `drives` row (with any columns the caller gave)."""
    tables = existing_tables(con)
    counts = {}
    for name in (*SOURCE_TABLES, DERIVED_TABLE):
        counts[name] = (
            con.execute(f'SELECT count(*) FROM "{name}" WHERE drive = ?', [drive]).fetchall()[0][0]
            if name in tables
            else 0
        )
    row: dict[str, Any] = {"drive": drive, "updated_at": pd.Timestamp.now(tz="UTC")}
    if given is not None and given.num_rows:
        row.update({k: v for k, v in given.to_pylist()[0].items() if v is not None})
    row.update({f"{name}_rows": n for name, n in counts.items()})
    _replace_rows(con, "drives", drive, pa.Table.from_pylist([row]))
    return counts


def _quote(value: str) -> str:
    return value.replace("'", "''")
