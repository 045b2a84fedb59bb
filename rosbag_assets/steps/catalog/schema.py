"""The catalog's tables, how to open it, and how its columns grow: a new column is added, a numeric one
widened, a clash refused naming the drive, table and column. Only DuckDB: `rosbag-assets search` imports
this and must start fast."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

SOURCE_TABLES = ("bags", "topics", "frames", "labels", "lanes", "scenes", "timeline")
TABLES = ("drives", *SOURCE_TABLES)
# Derived per drive at upsert time, so a search is one filtered scan: `hits` (one row per label, with its
# frame's location, the timeline at its time and the scenes it falls in), `scene_frames` (one row per
# frame of each scene, with the frame's location).
HITS = "hits"
SCENE_FRAMES = "scene_frames"
DERIVED_TABLES = (HITS, SCENE_FRAMES)

_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOAT = ("FLOAT", "DOUBLE")


class CatalogError(ValueError):
    """A table cannot go into the catalog as given (names the drive, table and column)."""


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


def evolve(con: duckdb.DuckDBPyConnection, name: str, drive: str, select: str) -> None:
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


def quote(value: str) -> str:
    """A SQL string literal's body (drive names are validated before they get here; this is belt and braces)."""
    return value.replace("'", "''")
