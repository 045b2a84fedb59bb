"""The `catalog` step: every drive's published tables in one DuckDB database, updated incrementally.

The database lives at ``<output root>/catalog/catalog.duckdb``. Its `drives` table records, per drive, the
versions of the upstream assets last loaded (`<asset>_version`); a run reloads (`upsert_drive`) only the
drives whose current versions differ, so adding one drive to a catalog of thousands touches one drive's
rows, and drops (`remove_drive`) the drives that are gone: no committed `raw_bags` any more, or, when the
asset passes Dagster's `drives` partitions, a partition that was deleted. Each updated drive's rows are
also exported as Parquet (``catalog/<table>/drive=<drive>/part.parquet``).

On S3 the database cannot be written in place: it is downloaded to a temporary folder, updated there and
uploaded again. The versions live inside the database, so a crash before the upload loses nothing but
the work of that run.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.catalog.db import EXPORT_PREFIX, export_key, remove_drive, upsert_drive
from rosbag_assets.steps.catalog.options import CatalogOptions
from rosbag_assets.steps.catalog.overview import (
    OVERVIEW_DRIVES,
    overview_rows,
    prune_overviews,
    store_overview,
)
from rosbag_assets.steps.catalog.schema import (
    DERIVED_TABLES,
    SOURCE_TABLES,
    CatalogError,
    connect,
    existing_tables,
    table_columns,
)
from rosbag_assets.steps.step import Step, step_runner

DB_KEY = join_key(EXPORT_PREFIX, "catalog.duckdb")
LEGACY_STATE_KEY = join_key(EXPORT_PREFIX, "state.json")  # versions lived here before the drives table
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
SUMMARY_DRIVES = 100  # drives listed in the metadata table (updated and removed first)


def version_column(asset: str) -> str:
    return f"{asset}_version"


def drive_versions(output: Storage, drives: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Drive -> {upstream asset: current version} for every drive with a committed `raw_bags` (only those in
    `drives`, when given)."""
    wanted = None if drives is None else set(drives)
    found: dict[str, dict[str, str]] = {}
    for drive in sorted(output.list_dirs("")):
        if drive == EXPORT_PREFIX or (wanted is not None and drive not in wanted):
            continue
        versions = {}
        for asset in UPSTREAM:
            manifest = publish.current(output, join_key(drive, asset))
            if manifest is not None:
                versions[asset] = manifest["version"]
        if "raw_bags" in versions:
            found[drive] = versions
    return found


def drive_tables(output: Storage, drive: str, versions: dict[str, str]) -> dict[str, pa.Table | None]:
    """The catalog tables of one drive from the given committed versions (None where an upstream is missing,
    so rows from an earlier version go), and its `drives` row naming those versions."""
    tables: dict[str, pa.Table | None] = {}
    for name, (asset, file) in SOURCES.items():
        tables[name] = None
        if asset in versions:
            version = publish.Version(output, join_key(drive, asset), versions[asset])
            tables[name] = pq.read_table(pa.BufferReader(output.read_bytes(version.key(file))))
    row = {version_column(asset): versions.get(asset) for asset in UPSTREAM}
    tables["drives"] = pa.Table.from_pylist([row], schema=pa.schema([(k, pa.string()) for k in row]))
    return tables


def catalog_versions(db_path: Path) -> dict[str, dict[str, str]]:
    """Drive -> {upstream asset: version} as loaded into the catalog (empty for a new catalog)."""
    if not db_path.exists():
        return {}
    con = connect(db_path, read_only=True)
    try:
        if "drives" not in existing_tables(con):
            return {}
        have = [a for a in UPSTREAM if version_column(a) in table_columns(con, "drives")]
        cols = "".join(f', "{version_column(a)}"' for a in have)
        rows = con.execute(f"SELECT drive{cols} FROM drives").fetchall()
    finally:
        con.close()
    return {r[0]: {a: v for a, v in zip(have, r[1:], strict=True) if v is not None} for r in rows}


@step_runner(CatalogOptions)
def run_catalog(
    step: Step[CatalogOptions], endpoint_url: str | None = None, drives: list[str] | None = None
) -> report.StepResult:
    """Bring ``<output>/catalog/catalog.duckdb`` up to date with every drive's current versions.

    `drives`: the drives that exist (Dagster's `drives` partitions); a drive with outputs but not listed is
    removed from the catalog. None: every drive with a committed `raw_bags` belongs in it.
    """
    output, opts, log = step.output, step.options, step.log
    local_db = output.local_path(DB_KEY)
    export = output if opts.export_parquet else None
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="catalog-") as tmp:
        db_path = local_db if local_db is not None else Path(tmp) / "catalog.duckdb"
        if local_db is None and output.exists(DB_KEY):  # object storage: work on a downloaded copy
            output.download_file(DB_KEY, db_path)
        loaded = catalog_versions(db_path)
        current = drive_versions(output, drives)
        changed = [d for d, v in current.items() if opts.rebuild or loaded.get(d) != v]
        gone = sorted(set(loaded) - set(current))
        log.info(f"catalog: {len(changed)} of {len(current)} drives changed, {len(gone)} gone")
        for drive in gone:
            removed = remove_drive(db_path, drive, export_root=export, endpoint_url=endpoint_url)
            log.info(f"catalog: {drive} removed ({removed} rows)")
        for drive in changed:
            try:
                rep = upsert_drive(
                    db_path,
                    drive,
                    drive_tables(output, drive, current[drive]),
                    export_root=export,
                    endpoint_url=endpoint_url,
                )
            except CatalogError as exc:  # one drive's bad table must not hold back every other drive
                failed[drive] = str(exc)
                log.warning(f"catalog: {drive} not loaded: {exc}")
                continue
            log.info(f"catalog: {drive} loaded in {rep.seconds:.2f} s: {rep.rows}")
        if not db_path.exists():
            db_path.parent.mkdir(parents=True, exist_ok=True)
            connect(db_path).close()  # an empty catalog rather than none
        if local_db is None and (changed or gone or not output.exists(DB_KEY)):
            output.upload_file(db_path, DB_KEY)
        if output.exists(LEGACY_STATE_KEY):
            output.delete(LEGACY_STATE_KEY)
        summary = drive_summary(db_path)
        checks = catalog_checks(summary, current, failed)
        shown = overview_rows(db_path, OVERVIEW_DRIVES)
    overview, overview_key = store_overview(output, shown, len(summary))
    rows = {name: int(sum(r.get(f"{name}_rows") or 0 for r in summary.values())) for name in _COUNTED}
    metadata = {
        "drives_updated": report.integer(len(changed) - len(failed)),
        "drives_removed": report.integer(len(gone)),
        "drives_total": report.integer(len(summary)),
        "updated": report.json_value([d for d in changed if d not in failed]),
        "removed": report.json_value(gone),
        "rows_per_table": report.table(
            [{"table": k, "rows": v} for k, v in rows.items()], [("table", "string"), ("rows", "int")]
        ),
        "drives": drives_table(output, summary, [*changed, *gone], exported=export is not None),
        "db": report.uri_value(output.uri(DB_KEY)),
        "search_example": report.md(f"```\n{search_command(output, local_db)}\n```"),
        "overview": report.picture(overview, "drives in the catalog", overview_key, "image/png", output),
        "elapsed_s": step.elapsed(),
    }
    prune_overviews(output)
    if failed:
        metadata["not_loaded"] = report.json_value(failed)
    return report.StepResult(metadata=metadata, checks=checks)


_COUNTED = ("drives", *SOURCE_TABLES, *DERIVED_TABLES)


def drive_summary(db_path: Path) -> dict[str, dict[str, Any]]:
    """Each drive's `drives` row (rows per table, versions, update time)."""
    con = connect(db_path, read_only=True)
    try:
        if "drives" not in existing_tables(con):
            return {}
        records = con.sql("SELECT * FROM drives ORDER BY drive").to_arrow_table().to_pylist()
    finally:
        con.close()
    return {r["drive"]: {**r, "drives_rows": 1} for r in records}


def catalog_checks(
    summary: dict[str, dict[str, Any]], current: dict[str, dict[str, str]], failed: dict[str, str]
) -> list[report.CheckOutcome]:
    """`catalog_has_current_versions`: the catalog holds exactly the drives that exist, each from its
    current upstream versions; `every_label_searchable_once`: each drive has one `hits` row per label (a
    frame key that occurs twice in a frame index would multiply them)."""
    stale = sorted(
        d
        for d, versions in current.items()
        if d in summary
        and {a: summary[d].get(version_column(a)) for a in UPSTREAM} != {a: versions.get(a) for a in UPSTREAM}
    )
    missing = sorted(set(current) - set(summary))
    extra = sorted(set(summary) - set(current))
    uneven = sorted(d for d, r in summary.items() if (r.get("hits_rows") or 0) != (r.get("labels_rows") or 0))
    return [
        report.CheckOutcome(
            "catalog_has_current_versions",
            passed=not (stale or missing or extra),
            description="every drive is in the catalog from its current upstream versions, and no other",
            metadata={
                "stale": report.json_value(stale[:20]),
                "missing": report.json_value(missing[:20]),
                "not_a_drive_any_more": report.json_value(extra[:20]),
                "not_loaded_because": report.json_value({d: failed[d] for d in list(failed)[:20]}),
            },
        ),
        report.CheckOutcome(
            "every_label_searchable_once",
            passed=not uneven,
            description="each drive's hits (what search reads) have exactly one row per label",
            metadata={
                "drives": report.json_value(
                    {d: [summary[d].get("labels_rows"), summary[d].get("hits_rows")] for d in uneven[:20]}
                )
            },
        ),
    ]


def drives_table(
    output: Storage, summary: dict[str, dict[str, Any]], first: list[str], *, exported: bool
) -> report.MetadataValue:
    """Per drive: rows of frames, labels, scenes, timeline steps, and where its label rows are exported."""
    order = [d for d in dict.fromkeys(first) if d in summary]
    order += [d for d in summary if d not in set(order)]
    records = [
        {
            "drive": d,
            "frames": summary[d].get("frames_rows"),
            "labels": summary[d].get("labels_rows"),
            "scenes": summary[d].get("scenes_rows"),
            "timeline_steps": summary[d].get("timeline_rows"),
            "updated_at": str(summary[d].get("updated_at"))[:19],
            "labels_parquet": output.uri(export_key("labels", d)) if exported else "",
        }
        for d in order[:SUMMARY_DRIVES]
    ]
    columns = [
        ("drive", "string"),
        ("frames", "int"),
        ("labels", "int"),
        ("scenes", "int"),
        ("timeline_steps", "int"),
        ("updated_at", "string"),
        ("labels_parquet", "string"),
    ]
    return report.table(records, columns)


def search_command(output: Storage, local_db: Path | None) -> str:
    """A command a person can paste to search this catalog."""
    cmd = f"rosbag-assets search {shlex.quote(EXAMPLE_WHERE)} --db "
    if local_db is not None:
        return cmd + shlex.quote(str(local_db))
    # DuckDB opens a database file locally: fetch it first
    return f"aws s3 cp {shlex.quote(output.uri(DB_KEY))} catalog.duckdb && {cmd}catalog.duckdb"
