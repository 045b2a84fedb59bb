"""The `topic_tables` step: a drive's non-image topics as published Parquet tables.

Reads the bags listed by the committed `raw_bags` inventory (from the landing storage it recorded), writes
each topic of each bag to a local work folder (`write_drive_topic_tables`), uploads the files into a draft
``<drive>/topic_tables/versions/<id>/topics/<slug>/<bag>.parquet`` and commits it with ``tables.parquet``
(one row per topic and bag: rows, errors, bytes, key) and a manifest naming each topic's files and type, which
is how downstream steps (`drive_timeline`) find a topic without listing storage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.extracted_frames.index import bags_from_inventory
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.steps.topic_tables.options import TopicTablesOptions
from rosbag_assets.steps.topic_tables.write import topic_slug, write_drive_topic_tables
from rosbag_assets.vision.preview import png_bytes
from rosbag_assets.vision.topic_rows import draw_topic_rows

TABLE_COLUMNS = ["bag", "topic", "msgtype", "rows", "messages", "errors", "first_error", "bytes", "key"]


@step_runner(TopicTablesOptions)
def run_topic_tables(step: Step[TopicTablesOptions], source: Storage) -> report.StepResult:
    """Write every wanted topic of the drive's readable bags and publish ``<drive>/topic_tables``."""
    drive, opts, log = step.drive, step.options, step.log
    raw_version, inventory = step.current("raw_bags")
    bags = bags_from_inventory(inventory)
    staging = step.begin("topic_tables")
    rows: list[dict[str, Any]] = []
    topics: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="topic_tables-") as tmp:
        out_dir = Path(tmp) / "tables"
        summary = write_drive_topic_tables(source, bags, out_dir, opts, log, workdir=Path(tmp))
        for table in summary.tables:
            key = None
            if table.path is not None and table.path.is_file():
                relative = table.path.relative_to(out_dir).as_posix()
                key = f"topics/{relative}"
                staging.write_bytes(key, table.path.read_bytes())
                entry = topics.setdefault(
                    table.topic, {"msgtype": table.msgtype, "slug": topic_slug(table.topic), "files": []}
                )
                entry["files"].append(key)
                entry["rows"] = entry.get("rows", 0) + table.rows
            rows.append(
                {
                    "bag": table.bag,
                    "topic": table.topic,
                    "msgtype": table.msgtype,
                    "rows": table.rows,
                    "messages": table.messages,
                    "errors": table.errors,
                    "first_error": table.first_error,
                    "bytes": table.bytes,
                    "key": key,
                }
            )
    tables_df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    staging.write_parquet("tables.parquet", tables_df)
    spans = summary.bag_spans()
    title = f"{drive}: rows per topic over time, {len(spans)} bag{'s' * (len(spans) != 1)}"
    picture = png_bytes(draw_topic_rows(spans, summary.rate_rows(), title))
    staging.write_bytes("rows.png", picture)
    checks = topic_tables_checks(summary.bag_errors, tables_df)
    rejected = report.blocking_failures(checks)
    uri = staging.commit(
        {
            "drive": drive,
            "raw_bags_version": raw_version.version,
            "topics": topics,
            "bag_errors": summary.bag_errors,
            "options": opts.model_dump(),
        },
        rejected,
    )
    metadata = summary.metadata()
    metadata.update(
        {
            "tables_uri": report.uri_value(staging.uri("tables.parquet")),
            "raw_bags_version": report.text(raw_version.version),
            "rows_over_time": report.picture(
                picture,
                f"{drive} rows per topic over time",
                staging.key("rows.png"),
                "image/png",
                staging.storage,
            ),
            "elapsed_s": step.elapsed(),
        }
    )
    metadata.update(report.publication(uri, rejected))
    return report.StepResult(metadata=metadata, checks=checks)


def topic_tables_checks(bag_errors: dict[str, str], tables: pd.DataFrame) -> list[report.CheckOutcome]:
    """Every bag read to its end (warning: the tables then hold what was read) and no message skipped."""
    skipped = tables[tables["errors"] > 0]
    return [
        report.CheckOutcome(
            "all_bags_read",
            passed=not bag_errors,
            description="every readable bag of the inventory was read to its end",
            severity="WARN",
            metadata={"bag_errors": report.json_value(bag_errors)},
        ),
        report.CheckOutcome(
            "no_skipped_messages",
            passed=skipped.empty,
            description="every message of a written topic became a row",
            severity="WARN",
            metadata={
                "skipped": report.json_value(
                    {f"{r.bag} {r.topic}": int(r.errors) for r in skipped.itertuples()}
                )
            },
        ),
    ]


def read_topic_tables(
    output: Storage, drive: str
) -> tuple[publish.Version, dict[str, Any], dict[str, pa.Table]]:
    """The committed `topic_tables` version, its manifest, and each topic's table (all bags, one table)."""
    version, manifest = publish.require_current(output, join_key(drive, "topic_tables"))
    tables: dict[str, pa.Table] = {}
    for topic, entry in manifest.get("topics", {}).items():
        parts = [pq.read_table(pa.BufferReader(output.read_bytes(version.key(k)))) for k in entry["files"]]
        if parts:
            tables[topic] = pa.concat_tables(parts, promote_options="permissive")
    return version, manifest, tables
