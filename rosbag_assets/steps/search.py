"""`rosbag-assets search`: find frames across all drives of the catalog with a SQL WHERE expression.

The expression runs over `hits` (one row per object label, with its frame's location, the drive
timeline at that moment and the scenes it falls in: class_name, confidence, in_ego_lane, speed_mps, drive,
topic, stamp_ns, path, offset, bytes, scene_rules, ...), or `--scene NAME` picks the frames of that scene
rule (`scene_frames`). Both tables are derived when a drive is loaded, so a search is one filtered scan of
one table. Only a WHERE expression is accepted (no `;`, no subqueries), checked by DuckDB's parser, and run
on a read-only connection that cannot touch files.

It imports only DuckDB (pandas, OpenCV and the frame readers load when a contact sheet or a DataFrame is
asked for): on the command line, starting Python is most of the time a search takes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from rosbag_assets.steps.catalog.schema import HITS, SCENE_FRAMES, connect, existing_tables, table_columns
from rosbag_assets.steps.sql import column_refs

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DB = os.environ.get("ROSBAG_ASSETS_CATALOG", "var/catalog/catalog.duckdb")
TILE_WIDTH = 320
DEFAULT_LIMIT = 50  # hits printed; the total is counted in full


class SearchError(ValueError):
    """A query that is not a single WHERE expression over the catalog's columns."""


@dataclass
class SearchResult:
    records: list[dict[str, Any]]  # hits (label rows) or scene frames, at most `limit`, by drive and time
    columns: list[str]
    total: int  # matches before the limit
    seconds: float

    @property
    def rows(self) -> pd.DataFrame:
        """The records as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=self.columns)


def check_where(con: duckdb.DuckDBPyConnection, where: str) -> None:
    """Raise `SearchError` unless `where` is one expression over `hits` columns, without subqueries."""
    if ";" in where:
        raise SearchError("';' is not allowed: give only a WHERE expression")
    tree = json.loads(
        con.execute("SELECT json_serialize_sql(?)", [f"SELECT * FROM {HITS} WHERE ({where})"]).fetchall()[0][
            0
        ]
    )
    if tree.get("error"):
        raise SearchError(f"not a WHERE expression: {tree.get('error_message')}")
    (statement,) = tree["statements"]
    node = statement["node"]
    if node.get("type") != "SELECT_NODE" or node.get("where_clause") is None or node.get("modifiers"):
        raise SearchError("not a WHERE expression: it ends the WHERE clause early")
    if '"SUBQUERY"' in json.dumps(node["where_clause"]):
        raise SearchError("subqueries are not allowed in a search")
    columns = table_columns(con, HITS)
    unknown = sorted(column_refs(node["where_clause"]) - set(columns))
    if unknown:
        raise SearchError(f"unknown column {unknown[0]!r}; searchable columns: {sorted(columns)}")


def search(
    db_path: str | Path, where: str | None = None, *, scene: str | None = None, limit: int = DEFAULT_LIMIT
) -> SearchResult:
    """Label hits matching `where` (in frames of a `scene` rule, when given); or with only `scene`, its frames.

    `total` counts every match; `rows` holds the first `limit` in drive and time order.
    """
    if not where and not scene:
        raise SearchError("give a WHERE expression, --scene, or both")
    con = connect(db_path, read_only=True)
    try:
        tables = existing_tables(con)
        if HITS not in tables:
            raise SearchError(f"{db_path} holds no labels yet (no {HITS} table)")
        t0 = time.perf_counter()
        params: dict[str, str] = {}
        if where:
            check_where(con, where)
            table, columns, filters = HITS, "*", [f"({where})"]
            if scene:
                if "scene_rules" not in table_columns(con, HITS):
                    raise SearchError(f"{db_path} holds no scenes yet")
                columns = "*, scene_ids[list_position(scene_rules, $scene)] AS scene_id"
                filters.append("list_contains(scene_rules, $scene)")
                params["scene"] = scene
        else:
            if SCENE_FRAMES not in tables:
                raise SearchError(f"{db_path} holds no scenes or no frames yet")
            table, columns, filters, params = SCENE_FRAMES, "*", ["rule = $scene"], {"scene": scene}
        condition = " AND ".join(filters)
        # two scans: the count reads only the filter columns; the top-N, in the table's own drive and time
        # order, stops early (DuckDB skips row groups that cannot beat the rows already found)
        (total,) = con.execute(f"SELECT count(*) FROM {table} WHERE {condition}", params).fetchall()[0]
        cursor = con.execute(
            f"SELECT {columns} FROM {table} WHERE {condition} ORDER BY drive, stamp_ns LIMIT {int(limit)}",
            params,
        )
        names = [d[0] for d in cursor.description]
        records = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        seconds = time.perf_counter() - t0
    except duckdb.Error as exc:  # a bad cast, a wrong function, a type mismatch: the user's query
        raise SearchError(str(exc).splitlines()[0]) from exc
    finally:
        con.close()
    return SearchResult(records, names, int(total), seconds)


def write_sheet(
    db_path: str | Path,
    rows: pd.DataFrame,
    out: str | Path,
    *,
    max_frames: int = 16,
    endpoint_url: str | None = None,
) -> int:
    """A contact sheet of the hit frames with their boxes (the matching ones; all of a scene frame's)."""
    import cv2

    from rosbag_assets.io.frames import decode_frame, read_indexed_bytes
    from rosbag_assets.vision import preview

    frames = rows.drop_duplicates(["drive", "frame_key"]).head(max_frames)
    boxes = rows if "class_name" in rows else _frame_labels(db_path, frames)
    tiles = []
    for row in frames.to_dict("records"):
        img = decode_frame(read_indexed_bytes(row, endpoint_url=endpoint_url))
        mine = boxes[(boxes["drive"] == row["drive"]) & (boxes["frame_key"] == row["frame_key"])]
        boxed = preview.draw_boxes(img, mine.to_dict("records"))
        small = cv2.resize(boxed, (TILE_WIDTH, max(1, round(img.shape[0] * TILE_WIDTH / img.shape[1]))))
        tiles.append(preview.caption(small, _describe(row)))  # after resizing, so the caption stays legible
    Path(out).write_bytes(preview.jpeg_bytes(preview.contact_sheet(tiles, tile_width=TILE_WIDTH)))
    return len(tiles)


def _frame_labels(db_path: str | Path, frames: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    con = connect(db_path, read_only=True)
    try:
        if "labels" not in existing_tables(con) or frames.empty:
            return pd.DataFrame(columns=["drive", "frame_key"])
        con.register("_wanted", frames[["drive", "frame_key"]])
        return con.execute("SELECT l.* FROM labels l JOIN _wanted USING (drive, frame_key)").df()
    finally:
        con.close()


def _describe(row: dict) -> str:
    ns = int(row["stamp_ns"])
    when = f"{datetime.fromtimestamp(ns // 10**9, UTC):%Y-%m-%dT%H:%M:%S}.{ns // 10**6 % 1000:03d}Z"
    return f"{row['drive']} {when} {row['topic']}"


def format_row(row: dict) -> str:
    where = f"{row['path']}@{row['offset']}+{row['bytes']}" if row.get("path") else row.get("frame_key", "")
    what = f"  {row['class_name']} {row['confidence']:.2f}" if row.get("class_name") else ""
    scene = f"  [{row['scene_id']}]" if row.get("scene_id") else ""
    return f"{_describe(row)}  {where}{what}{scene}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The search options, for a top-level CLI that adds `search` as a sub-command."""
    parser.add_argument(
        "where", nargs="?", help="SQL WHERE expression over hits, e.g. \"class_name = 'person'\""
    )
    parser.add_argument("--db", default=DEFAULT_DB, help=f"catalog database (default {DEFAULT_DB})")
    parser.add_argument("--scene", help="only frames inside scenes of this rule (e.g. person_in_ego_lane)")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"rows to print (default {DEFAULT_LIMIT}); all are counted",
    )
    parser.add_argument("--sheet", help="write a contact sheet JPEG of the hit frames here")
    parser.add_argument("--sheet-frames", type=int, default=16, help="frames on the sheet (default 16)")
    parser.add_argument("--endpoint-url", default=os.environ.get("ROSBAG_ASSETS_S3_ENDPOINT"))


def run(args: argparse.Namespace) -> int:
    try:
        result = search(args.db, args.where, scene=args.scene, limit=args.limit)
    except SearchError as exc:
        print(f"search: {exc}", file=sys.stderr)
        return 2
    for row in result.records:
        print(format_row(row))
    print(
        f"{result.total} matches, {len(result.records)} shown, {result.seconds * 1000:.0f} ms",
        file=sys.stderr,
    )
    if args.sheet and result.records:
        n = write_sheet(
            args.db, result.rows, args.sheet, max_frames=args.sheet_frames, endpoint_url=args.endpoint_url
        )
        print(f"contact sheet of {n} frames: {args.sheet}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rosbag-assets search", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
