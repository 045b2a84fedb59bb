"""The catalog's picture: its latest recorded drives, each a bar of boxes per class (`vision.catalog_chart`).

The catalog database is updated in place, but its pictures are not: each update stores its own under a name
of its own (time and content), so every catalog materialization in the UI keeps showing the catalog as it was
then, and a browser never shows a cached earlier picture under a reused address. The latest OVERVIEWS_KEPT
are kept.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps.catalog.db import EXPORT_PREFIX
from rosbag_assets.steps.catalog.schema import connect, existing_tables, table_columns

OVERVIEW_DRIVES = 15  # drives drawn in the overview picture (the latest recorded)
OVERVIEW_DIR = join_key(EXPORT_PREFIX, "overviews")
OVERVIEWS_KEPT = 50


def overview_rows(db_path: Path, limit: int) -> list[dict[str, Any]]:
    """The `limit` latest recorded drives (by their first bag's start), each with its recorded seconds and
    boxes per class, for `draw_catalog_overview`: two grouped scans whatever the catalog's size."""
    con = connect(db_path, read_only=True)
    try:
        have = existing_tables(con)
        if "bags" not in have:
            return []
        rows = con.execute(
            "SELECT drive, sum(end_ns - start_ns) / 1e9 FROM bags GROUP BY drive "
            "ORDER BY min(start_ns) DESC NULLS LAST, drive LIMIT ?",
            [limit],
        ).fetchall()
        drives = {d: {"drive": d, "duration_s": seconds, "classes": {}} for d, seconds in rows}
        if drives and "labels" in have and {"class_id", "class_name"} <= set(table_columns(con, "labels")):
            counts = con.execute(
                "SELECT drive, class_name, min(class_id), count(*) FROM labels "
                f"WHERE drive IN ({', '.join('?' * len(drives))}) AND class_name IS NOT NULL GROUP BY ALL",
                list(drives),
            ).fetchall()
            for drive, name, class_id, n in counts:
                drives[drive]["classes"][str(name)] = (int(class_id or 0), int(n))
    finally:
        con.close()
    return list(drives.values())


def store_overview(output: Storage, shown: list[dict[str, Any]], total: int) -> tuple[bytes, str]:
    """Draw the overview of `shown` (of `total` drives) and store it; (PNG bytes, its key)."""
    from rosbag_assets.vision.catalog_chart import draw_catalog_overview
    from rosbag_assets.vision.preview import png_bytes

    png = png_bytes(draw_catalog_overview(shown, total))
    now = time.time_ns()  # to the microsecond: names sort in the order the updates stored them
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now / 1e9)) + f"{now // 1000 % 1_000_000:06d}"
    key = join_key(OVERVIEW_DIR, f"{stamp}-{hashlib.sha256(png).hexdigest()[:10]}.png")
    output.write_bytes(key, png)
    return png, key


def prune_overviews(output: Storage, keep: int = OVERVIEWS_KEPT) -> list[str]:
    """Delete all but the `keep` latest overviews (each with its inline copy); the deleted keys."""
    by_name: dict[str, list[str]] = {}
    for info in output.list_files(OVERVIEW_DIR):
        by_name.setdefault(info.key.rsplit("/", 1)[-1].split(".", 1)[0], []).append(info.key)
    old = sorted(by_name)[:-keep] if keep > 0 else sorted(by_name)
    deleted = [key for name in old for key in by_name[name]]
    for key in deleted:
        output.delete(key)
    return deleted
