"""The catalog database: connections, the writer lock, and replacing or removing one drive's rows.

Every table carries a `drive` column. `upsert_drive` replaces only the given drive's rows of the given
tables, in one transaction, so a catalog of thousands of drives is never rebuilt to add one; `remove_drive`
drops a drive that is gone. Writers are serialised with a lock file beside the database (DuckDB allows one
writing process per file; a second one fails rather than waits). Readers open the file read-only and wait
while a writer holds it.
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
from rosbag_assets.io.tables import Table, read_table
from rosbag_assets.steps.catalog.hits import rebuild_derived
from rosbag_assets.steps.catalog.schema import (
    DERIVED_TABLES,
    SOURCE_TABLES,
    TABLES,
    CatalogError,
    connect,
    evolve,
    existing_tables,
)

EXPORT_PREFIX = "catalog"


@dataclass
class UpsertReport:
    drive: str
    rows: dict[str, int] = field(default_factory=dict)  # rows now held for the drive, per table
    exported: list[str] = field(default_factory=list)  # URIs of the Parquet exports written
    seconds: float = 0.0
    lock_wait_s: float = 0.0


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

    `tables` maps a name of `TABLES` to a DataFrame, Arrow table or Parquet path, or to None when the drive
    has no such table (any rows it had are dropped). A `drive` column is
    added when missing; a table holding rows of another drive is refused. New columns are added to the
    catalog table; a column whose type changes incompatibly is refused (`CatalogError`). The `drives` row
    (rows per table, update time) and the drive's derived tables (`hits`, `scene_frames`) are rebuilt in the
    same transaction. With
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
        name: None if t is None else _with_drive(read_table(t, endpoint_url=endpoint_url), drive, name)
        for name, t in tables.items()
    }
    report = UpsertReport(drive)
    with writer(db_path, timeout_s=timeout_s) as (con, waited):
        report.lock_wait_s = waited
        con.execute("BEGIN TRANSACTION")
        try:
            for name in SOURCE_TABLES:
                if name in incoming:
                    _replace_rows(con, name, drive, incoming[name])
            rebuild_derived(con, drive)
            report.rows = _refresh_drive_row(con, drive, incoming.get("drives"))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if export_root is not None:
            names = ["drives", *[n for n in SOURCE_TABLES if incoming.get(n) is not None]]
            report.exported = export_drive(con, drive, export_root, names, endpoint_url=endpoint_url)
            gone = [n for n in SOURCE_TABLES if n in incoming and incoming[n] is None]
            _delete_exports(export_root, drive, gone, endpoint_url)
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
    storage = _storage(export_root, endpoint_url)
    uris = []
    for name in names or existing_tables(con):
        if name not in existing_tables(con):
            continue
        data = con.sql(f'SELECT * FROM "{name}" WHERE drive = ?', params=[drive]).to_arrow_table()
        buf = io.BytesIO()
        pq.write_table(data, buf, compression="zstd")
        key = export_key(name, drive)
        storage.write_bytes(key, buf.getvalue())
        uris.append(storage.uri(key))
    return uris


def export_key(name: str, drive: str) -> str:
    """Where a drive's rows of one table are exported, relative to the export root (hive layout)."""
    return join_key(EXPORT_PREFIX, name, f"drive={drive}", "part.parquet")


def remove_drive(
    db_path: str | Path,
    drive: str,
    *,
    export_root: str | Storage | None = None,
    endpoint_url: str | None = None,
    timeout_s: float = 600.0,
) -> int:
    """Drop every row of `drive` from every table (one transaction) and its Parquet exports; rows removed."""
    validate_drive_name(drive)
    removed = 0
    with writer(db_path, timeout_s=timeout_s) as (con, _):
        names = [n for n in (*TABLES, *DERIVED_TABLES) if n in existing_tables(con)]
        con.execute("BEGIN TRANSACTION")
        try:
            for name in names:
                (n,) = con.execute(f'DELETE FROM "{name}" WHERE drive = ?', [drive]).fetchall()[0]
                removed += n
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    if export_root is not None:
        _delete_exports(export_root, drive, list(TABLES), endpoint_url)
    return removed


def _storage(root: str | Storage, endpoint_url: str | None) -> Storage:
    return root if not isinstance(root, str) else storage_from_uri(root, endpoint_url=endpoint_url)


def _delete_exports(root: str | Storage, drive: str, names: list[str], endpoint_url: str | None) -> None:
    storage = _storage(root, endpoint_url)
    for name in names:  # the whole `drive=<d>` folder: an empty one would still be a (empty) partition
        storage.delete_prefix(join_key(EXPORT_PREFIX, name, f"drive={drive}"))


def _with_drive(data: pa.Table, drive: str, name: str) -> pa.Table:
    if "drive" not in data.column_names:
        return data.append_column("drive", pa.array([drive] * data.num_rows, pa.string()))
    others = set(data.column("drive").to_pylist()) - {drive}
    if others:
        raise CatalogError(f"table {name} for drive {drive} holds rows of other drives: {sorted(others)[:5]}")
    return data


def _replace_rows(con: duckdb.DuckDBPyConnection, name: str, drive: str, data: pa.Table | None) -> None:
    if data is None:  # the drive has no such table (any more)
        if name in existing_tables(con):
            con.execute(f'DELETE FROM "{name}" WHERE drive = ?', [drive])
        return
    con.register("_incoming", data)
    try:
        evolve(con, name, drive, "SELECT * FROM _incoming")
        con.execute(f'DELETE FROM "{name}" WHERE drive = ?', [drive])
        if data.num_rows:
            con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _incoming')
    finally:
        con.unregister("_incoming")


def _refresh_drive_row(con: duckdb.DuckDBPyConnection, drive: str, given: pa.Table | None) -> dict[str, int]:
    """Rows per table for the drive, written to its `drives` row (with any columns the caller gave; those
    it did not give keep their earlier values)."""
    tables = existing_tables(con)
    counts = {}
    for name in (*SOURCE_TABLES, *DERIVED_TABLES):
        counts[name] = (
            con.execute(f'SELECT count(*) FROM "{name}" WHERE drive = ?', [drive]).fetchall()[0][0]
            if name in tables
            else 0
        )
    row: dict[str, Any] = {}
    if "drives" in tables:
        before = con.sql("SELECT * FROM drives WHERE drive = ?", params=[drive]).to_arrow_table().to_pylist()
        row.update({k: v for k, v in (before[0] if before else {}).items() if v is not None})
    row.update({"drive": drive, "updated_at": pd.Timestamp.now(tz="UTC")})
    if given is not None and given.num_rows:
        row.update(given.to_pylist()[0])
    row.update({f"{name}_rows": n for name, n in counts.items()})
    _replace_rows(con, "drives", drive, pa.Table.from_pylist([row]))
    return counts
