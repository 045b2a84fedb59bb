"""The `catalog` step: every drive's published tables in one DuckDB database, updated incrementally.

The database lives at ``<output root>/catalog/catalog.duckdb``. Beside it, ``state.json`` records, per drive,
the versions of the upstream assets last loaded; a build reloads (`upsert_drive`) only the drives whose
current versions differ, so adding one drive to a catalog of thousands touches one drive's rows. Each
updated drive's rows are also exported as Parquet (``catalog/<table>/drive=<drive>/part.parquet``).

On S3 the database cannot be written in place: it is downloaded to a temporary folder, updated there and
uploaded again (database first, then state, so a crash between the two only causes a redundant reload).
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.catalog import SOURCE_TABLES, connect, existing_tables, upsert_drive

CATALOG_PREFIX = "catalog"
DB_KEY = join_key(CATALOG_PREFIX, "catalog.duckdb")
STATE_KEY = join_key(CATALOG_PREFIX, "state.json")
# catalog table <- (upstream asset, file in its committed version)
SOURCES: dict[str, tuple[str, str]] = {
    "bags": ("raw_bags", "bags.parquet"),
    "topics": ("raw_bags", "topics.parquet"),
    "frames": ("extracted_frames", "index.parquet"),
    "labels": ("object_labels", "labels.parquet"),
    "lanes": ("lane_labels", "lanes.parquet"),
    "timeline": ("drive_timeline", "timeline.parquet"),
    "scenes": ("scenes", "scenes.parquet"),
}
UPSTREAM = tuple(dict.fromkeys(asset for asset, _ in SOURCES.values()))
EXAMPLE_WHERE = "class_name = 'person' AND speed_mps > 5"


class CatalogOptions(BaseModel):
    """How `catalog` updates (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")
    rebuild: bool = Field(False, description="reload every drive, even those whose versions did not change")
    export_parquet: bool = Field(True, description="also export each updated drive's rows as hive Parquet")


def drive_versions(output: Storage) -> dict[str, dict[str, str]]:
    """Drive -> {upstream asset: current version} for every drive with a committed `raw_bags`."""
    found: dict[str, dict[str, str]] = {}
    for drive in sorted(output.list_dirs("")):
        if drive == CATALOG_PREFIX:
            continue
        versions = {}
        for asset in UPSTREAM:
            manifest = publish.current(output, join_key(drive, asset))
            if manifest is not None:
                versions[asset] = manifest["version"]
        if "raw_bags" in versions:
            found[drive] = versions
    return found


def drive_tables(output: Storage, drive: str, versions: dict[str, str]) -> dict[str, pa.Table]:
    """The catalog tables of one drive from the given committed versions (missing upstreams left out)."""
    tables = {}
    for name, (asset, file) in SOURCES.items():
        if asset in versions:
            version = publish.Version(output, join_key(drive, asset), versions[asset])
            tables[name] = pq.read_table(pa.BufferReader(output.read_bytes(version.key(file))))
    return tables


def run_catalog(
    *,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.StepLog | None = None,
    endpoint_url: str | None = None,
) -> report.StepResult:
    """Bring ``<output>/catalog/catalog.duckdb`` up to date with every drive's current versions."""
    log = log or report.default_log()
    opts = CatalogOptions.model_validate(dict(options or {}))
    t0 = time.perf_counter()
    local_db = output.local_path(DB_KEY)
    with tempfile.TemporaryDirectory(prefix="catalog-") as tmp:
        if local_db is None:  # object storage: work on a downloaded copy
            db_path = Path(tmp) / "catalog.duckdb"
            if output.exists(DB_KEY):
                output.download_file(DB_KEY, db_path)
        else:
            db_path = local_db
        state = (
            json.loads(output.read_bytes(STATE_KEY))
            if output.exists(STATE_KEY) and db_path.exists() and not opts.rebuild
            else {}
        )
        current = drive_versions(output)
        changed = [d for d, v in current.items() if state.get(d) != v]
        log.info(f"catalog: {len(changed)} of {len(current)} drives changed")
        for drive in changed:
            tables = drive_tables(output, drive, current[drive])
            rep = upsert_drive(
                db_path,
                drive,
                tables,
                export_root=output if opts.export_parquet else None,
                endpoint_url=endpoint_url,
            )
            log.info(f"catalog: {drive} loaded in {rep.seconds:.2f} s: {rep.rows}")
            state[drive] = current[drive]
        if local_db is None and (changed or not output.exists(DB_KEY)):
            if not db_path.exists():
                connect(db_path).close()  # an empty catalog rather than none
            output.upload_file(db_path, DB_KEY)
        elif not db_path.exists():
            db_path.parent.mkdir(parents=True, exist_ok=True)
            connect(db_path).close()
        output.write_bytes(STATE_KEY, json.dumps(state, indent=2, sort_keys=True).encode())
        rows = table_rows(db_path)
    db_uri = output.uri(DB_KEY)
    search_cmd = f"rosbag-assets search {shlex.quote(EXAMPLE_WHERE)} --db "
    if local_db is not None:
        search_cmd += shlex.quote(str(local_db))
    else:  # DuckDB opens a database file locally: fetch it first
        search_cmd = f"aws s3 cp {shlex.quote(db_uri)} catalog.duckdb && {search_cmd}catalog.duckdb"
    metadata = {
        "drives_updated": report.integer(len(changed)),
        "drives_total": report.integer(len(current)),
        "updated": report.json_value(changed),
        "rows_per_table": report.table(
            [{"table": k, "rows": v} for k, v in rows.items()], [("table", "string"), ("rows", "int")]
        ),
        "db": report.uri_value(db_uri),
        "search_example": report.md(f"```\n{search_cmd}\n```"),
        "elapsed_s": report.number(time.perf_counter() - t0, digits=2),
    }
    return report.StepResult(metadata=metadata)


def table_rows(db_path: Path) -> dict[str, int]:
    """Rows per catalog table (all drives)."""
    con = connect(db_path, read_only=True)
    try:
        names = existing_tables(con)
        return {
            name: con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
            for name in ("drives", *SOURCE_TABLES, "hits")
            if name in names
        }
    finally:
        con.close()
