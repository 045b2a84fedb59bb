"""The catalog's derived tables, rebuilt per drive inside the upsert's transaction.

`hits`: one row per object label with its frame's location (`path`, `offset`, `bytes`), the drive
timeline's values at the label's time (ASOF join) and the scenes the label's time falls in
(`scene_rules`, `scene_ids`: lists in the same order). `scene_frames`: one row per frame of each scene with
the frame's location. Both are written in drive and time order, so DuckDB's per-block min/max skip other
drives when a search names one, and a search is one filtered scan: the joins (a range join for scenes)
are paid once per drive update, not per query.
"""

from __future__ import annotations

import duckdb

from rosbag_assets.steps.catalog.schema import (
    DERIVED_TABLES,
    HITS,
    SCENE_FRAMES,
    evolve,
    existing_tables,
    quote,
    table_columns,
)

# Frame columns copied into `hits` (the label already names drive, bag, topic, stamp and frame key).
FRAME_COLUMNS_IN_HITS = ("path", "offset", "bytes", "data_key", "format", "log_time_ns")
# Timeline columns that would clash with label columns or mean nothing per label.
TIMELINE_COLUMNS_NOT_IN_HITS = ("drive", "frame_key", "frame_stamp_ns", "camera_topic")
SCENE_COLUMNS_IN_HITS = ("scene_rules", "scene_ids")


def rebuild_derived(con: duckdb.DuckDBPyConnection, drive: str | None) -> None:
    """Recompute `hits` and `scene_frames` for one drive (None: all drives, for bulk loads)."""
    tables = existing_tables(con)
    for name in DERIVED_TABLES:
        if name in tables:
            if drive is None:
                con.execute(f"DELETE FROM {name}")
            else:
                con.execute(f"DELETE FROM {name} WHERE drive = ?", [drive])
    for name, select in ((HITS, hits_select(con, drive)), (SCENE_FRAMES, scene_frames_select(con, drive))):
        if select is not None:
            evolve(con, name, drive or "*", select)
            con.execute(f"INSERT INTO {name} BY NAME {select}")


def _where(drive: str | None) -> str:
    return "" if drive is None else f" WHERE drive = '{quote(drive)}'"


def hits_select(con: duckdb.DuckDBPyConnection, drive: str | None) -> str | None:
    """SQL joining labels with their frame's location, the timeline at the label's time and its scenes."""
    tables = existing_tables(con)
    if "labels" not in tables:
        return None
    where = _where(drive)
    label_cols = set(table_columns(con, "labels"))
    parts = ["l.*"]
    joins = [f"(SELECT * FROM labels{where}) l"]
    if "frames" in tables:
        have = table_columns(con, "frames")
        parts += [f'f."{c}"' for c in FRAME_COLUMNS_IN_HITS if c in have and c not in label_cols]
        joins.append(
            f"LEFT JOIN (SELECT * FROM frames{where}) f ON f.drive = l.drive AND f.frame_key = l.frame_key"
        )
    if "timeline" in tables:
        cols = [
            c
            for c in table_columns(con, "timeline")
            if c not in TIMELINE_COLUMNS_NOT_IN_HITS and c not in label_cols
        ]
        parts += [f't."{c}"' for c in cols]
        joins.append(
            f"ASOF LEFT JOIN (SELECT * FROM timeline{where}) t ON t.drive = l.drive AND l.stamp_ns >= t.t_ns"
        )
    if "scenes" in tables:
        # per distinct label time, the scenes whose [start, end) holds it: a small range join per drive
        parts += [f"m.{c}" for c in SCENE_COLUMNS_IN_HITS]
        joins.append(
            "LEFT JOIN (SELECT st.drive, st.stamp_ns, list(s.rule ORDER BY s.rule) AS scene_rules, "
            "list(s.scene_id ORDER BY s.rule) AS scene_ids "
            f"FROM (SELECT DISTINCT drive, stamp_ns FROM labels{where}) st "
            f"JOIN (SELECT * FROM scenes{where}) s ON s.drive = st.drive "
            "AND st.stamp_ns >= s.start_ns AND st.stamp_ns < s.end_ns "
            "GROUP BY st.drive, st.stamp_ns) m ON m.drive = l.drive AND m.stamp_ns = l.stamp_ns"
        )
    return f"SELECT {', '.join(parts)} FROM {' '.join(joins)} ORDER BY l.drive, l.stamp_ns"


def scene_frames_select(con: duckdb.DuckDBPyConnection, drive: str | None) -> str | None:
    """SQL listing each scene's frames (`frame_keys`) with the frame index row, in drive and time order."""
    if not {"scenes", "frames"} <= existing_tables(con):
        return None
    if not table_columns(con, "scenes").get("frame_keys", "").endswith("[]"):
        return None  # only drives without scenes so far: the column has no list type yet
    where = _where(drive)
    return (
        "SELECT s.scene_id, s.rule, f.* FROM (SELECT drive, scene_id, rule, unnest(frame_keys) AS frame_key "
        f"FROM scenes{where}) s JOIN (SELECT * FROM frames{where}) f "
        "ON f.drive = s.drive AND f.frame_key = s.frame_key ORDER BY f.drive, f.stamp_ns"
    )
