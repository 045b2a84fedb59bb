"""`raw_bags`: an inventory of every bag in a drive (format, size, time span, topics, problems)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rosbag_assets.io.bag_index import bin_width_ns, message_times, rate_rows
from rosbag_assets.io.bags import (
    EMPTY_START,
    BagReadError,
    RecoveredBag,
    bag_uri,
    describe_error,
    not_the_bags_fault,
    open_bag,
)
from rosbag_assets.io.drives import BagRef, drive_fingerprint, find_bags
from rosbag_assets.io.storage import Storage, redact
from rosbag_assets.steps import report
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision.preview import png_bytes
from rosbag_assets.vision.timeline import INLINE, draw_timeline

IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}


@dataclass
class BagReport:
    bag: BagRef
    uri: str
    topics: dict[str, tuple[str, int]] = field(default_factory=dict)  # topic -> (msgtype, count)
    start_ns: int | None = None
    end_ns: int | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    rates: list[dict[str, Any]] = field(default_factory=list)  # binned message counts per topic
    read_mode: str = "normal"  # or how io.recovery read it: reindexed, sequential, mcap-ros1
    complete: bool = True  # False: recovery could not read all of it (see stop_offset / recovery)
    stop_offset: int | None = None  # byte where reading stops early
    recovery: str | None = None  # one line: what recovery read and where and why it stopped

    @property
    def message_count(self) -> int:
        return sum(count for _, count in self.topics.values())


def inspect_bag(storage: Storage, bag: BagRef) -> BagReport:
    """Read a bag's index (not its messages) and report what it holds, or why it cannot be read.

    A damaged bag that `io.recovery` can read is reported with its recovered topics and counts, its read
    mode and, when something is left unread, where reading stops.
    """
    bag_report = BagReport(bag, bag_uri(storage, bag))
    try:
        with open_bag(storage, bag) as reader:
            if isinstance(reader, RecoveredBag):
                rec = reader.recovery
                bag_report.read_mode, bag_report.complete = rec.mode, rec.complete
                bag_report.stop_offset, bag_report.recovery = rec.stop_offset, rec.summary()
                bag_report.warnings.append(
                    f"recovered {'whole' if rec.complete else 'in part'}: {rec.summary()}"
                )
            per_topic: dict[str, list[Any]] = defaultdict(lambda: [None, 0])
            for conn in reader.connections:
                entry = per_topic[conn.topic]
                entry[0] = entry[0] or conn.msgtype
                entry[1] += int(conn.msgcount or 0)
            bag_report.topics = {t: (v[0], v[1]) for t, v in sorted(per_topic.items())}
            if reader.message_count and reader.start_time != EMPTY_START:
                bag_report.start_ns, bag_report.end_ns = int(reader.start_time), int(reader.end_time)
                bag_report.rates = _rates(reader, bag_report)
    except BagReadError as exc:
        bag_report.error = str(exc)
        return bag_report
    except Exception as exc:  # a reader bug or corrupt index: still name the bag
        if not_the_bags_fault(exc):  # the network or this machine failed, not the bag: fail the step
            raise
        bag_report.error = f"{bag_report.uri}: {describe_error(exc)}"
        return bag_report
    if not bag_report.message_count:
        bag_report.warnings.append(f"{bag_report.uri}: the bag holds no messages")
    for topic, (msgtype, count) in bag_report.topics.items():
        if count == 0:
            bag_report.warnings.append(f"{bag_report.uri}: topic {topic} ({msgtype}) has no messages")
    return bag_report


def _rates(reader: Any, rep: BagReport) -> list[dict[str, Any]]:
    """Message counts over time per topic, from the bag's index; a bag whose index cannot give them is
    still inventoried (with a warning), only missing from the timeline."""
    try:
        times = message_times(reader)
        return rate_rows(rep.bag.name, times, bin_width_ns(rep.start_ns or 0, rep.end_ns or 0))
    except Exception as exc:
        rep.warnings.append(
            f"{rep.uri}: message times unreadable, not in the timeline ({describe_error(exc)})"
        )
        return []


def bag_rows(drive: str, reports: list[BagReport]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per bag, one row per bag x topic) for the Parquet inventory."""
    bags, topics = [], []
    for rep in reports:
        duration = (rep.end_ns - rep.start_ns) / 1e9 if rep.start_ns is not None else None
        image_topics = sorted(t for t, (ty, _) in rep.topics.items() if ty in IMAGE_TYPES)
        bags.append(
            {
                "drive": drive,
                "bag": rep.bag.name,
                "uri": rep.uri,
                "format": rep.bag.format,
                "bytes": rep.bag.bytes,
                "has_metadata_yaml": rep.bag.has_metadata,
                "start_ns": rep.start_ns,
                "end_ns": rep.end_ns,
                "duration_s": duration,
                "messages": rep.message_count,
                "topics": len(rep.topics),
                "image_topics": ",".join(image_topics),
                "fingerprint": rep.bag.fingerprint(),
                "ok": rep.error is None,
                "error": rep.error,
                "read_mode": rep.read_mode if rep.error is None else None,
                "complete": rep.complete and rep.error is None,
                "stop_offset": rep.stop_offset,
                "recovery": rep.recovery,
            }
        )
        for topic, (msgtype, count) in rep.topics.items():
            topics.append(
                {"drive": drive, "bag": rep.bag.name, "topic": topic, "msgtype": msgtype, "count": count}
            )
    return bags, topics


BAG_COLUMNS = [
    "drive",
    "bag",
    "uri",
    "format",
    "bytes",
    "has_metadata_yaml",
    "start_ns",
    "end_ns",
    "duration_s",
    "messages",
    "topics",
    "image_topics",
    "fingerprint",
    "ok",
    "error",
    "read_mode",
    "complete",
    "stop_offset",
    "recovery",
]
TOPIC_COLUMNS = ["drive", "bag", "topic", "msgtype", "count"]
RATE_COLUMNS = ["bag", "topic", "start_ns", "bin_ns", "count"]


@step_runner()
def run_raw_bags(step: Step, source: Storage) -> report.StepResult:
    """Inventory every bag under `source` and publish ``<drive>/raw_bags`` to the output root."""
    drive, log = step.drive, step.log
    bags, skipped = find_bags(source.list_files(""))
    skipped = list(getattr(source, "refused", [])) + skipped  # links leading outside the drive
    for name, reason in skipped:  # named by the root (a hostile key may not pass `uri`)
        log.warning(f"{source.root_uri}/{name}: skipped, {reason}")
    if not bags:
        raise BagReadError(
            f"{source.root_uri}: no bags found in drive {drive!r} (looked for .bag, .db3, .mcap)"
        )
    reports = []
    for bag in bags:
        rep = inspect_bag(source, bag)
        if rep.error:
            log.warning(f"unreadable bag: {rep.error}")
        for warning in rep.warnings:
            log.warning(warning)
        reports.append(rep)
        log.info(f"{rep.uri}: {rep.bag.format}, {rep.bag.bytes} bytes, {rep.message_count} messages")

    bag_table, topic_table = bag_rows(drive, reports)
    staging = step.begin("raw_bags")
    staging.write_parquet("bags.parquet", pd.DataFrame(bag_table, columns=BAG_COLUMNS))
    staging.write_parquet("topics.parquet", pd.DataFrame(topic_table, columns=TOPIC_COLUMNS))
    rates = [row for rep in reports for row in rep.rates]
    staging.write_parquet("rates.parquet", pd.DataFrame(rates, columns=RATE_COLUMNS))
    timeline = png_bytes(draw_timeline(bag_table, rates))
    staging.write_bytes("timeline.png", timeline)
    fingerprint = drive_fingerprint(bags)
    readable = [rep for rep in reports if rep.error is None]
    manifest = {
        "drive": drive,
        "source": redact(source.root_uri),
        "fingerprint": fingerprint,
        "bags": [
            {
                "name": rep.bag.name,
                "format": rep.bag.format,
                "ok": rep.error is None,
                "error": rep.error,
                "read_mode": rep.read_mode,
                "complete": rep.complete and rep.error is None,
                "stop_offset": rep.stop_offset,
                "recovery": rep.recovery,
                "keys": [f.key for f in rep.bag.files],
                "bytes": rep.bag.bytes,
                "has_metadata": rep.bag.has_metadata,
            }
            for rep in reports
        ],
        "skipped": [{"file": n, "reason": why} for n, why in skipped],
    }
    uri = staging.commit(manifest)

    topics_summary: dict[str, list[Any]] = defaultdict(lambda: ["", 0])
    for row in topic_table:
        topics_summary[row["topic"]][0] = row["msgtype"]
        topics_summary[row["topic"]][1] += row["count"]
    metadata = {
        "bags": report.integer(len(reports)),
        "unreadable_bags": report.integer(len(reports) - len(readable)),
        "recovered_bags": report.integer(sum(1 for rep in readable if rep.read_mode != "normal")),
        "partly_readable_bags": report.integer(sum(1 for rep in readable if not rep.complete)),
        "skipped_files": report.integer(len(skipped)),
        "bytes": report.integer(sum(rep.bag.bytes for rep in reports)),
        "messages": report.integer(sum(rep.message_count for rep in reports)),
        "duration_s": report.number(sum((row["duration_s"] or 0.0) for row in bag_table), digits=2),
        "source": report.uri_value(redact(source.root_uri)),
        "inventory": report.uri_value(uri),
        "drive_fingerprint": report.text(fingerprint),
        "timeline": report.picture(
            timeline,
            f"{drive} topics over time",
            staging.key("timeline.png"),
            "image/png",
            staging.storage,
            inline=png_bytes(draw_timeline(bag_table, rates, INLINE)),
        ),
        "bag_table": report.table(
            bag_table,
            [
                ("bag", "string"),
                ("format", "string"),
                ("bytes", "int"),
                ("duration_s", "float"),
                ("messages", "int"),
                ("image_topics", "string"),
                ("ok", "bool"),
                ("read_mode", "string"),
                ("complete", "bool"),
                ("error", "string"),
            ],
        ),
        "topic_table": report.table(
            [{"topic": t, "msgtype": v[0], "count": v[1]} for t, v in sorted(topics_summary.items())],
            [("topic", "string"), ("msgtype", "string"), ("count", "int")],
        ),
        "elapsed_s": step.elapsed(),
    }
    recovered = [rep.recovery or rep.uri for rep in readable if rep.read_mode != "normal"]
    problems = [rep.error for rep in reports if rep.error] + recovered + [f"{n}: {why}" for n, why in skipped]
    if problems:
        metadata["problems"] = report.md("\n".join(f"- {p}" for p in problems))
    checks = [
        report.CheckOutcome(
            "all_bags_readable",
            passed=not any(rep.error for rep in reports) and not recovered,
            description="every bag in the drive opens and its index reads (a recovered bag counts as a failure)",
            severity="WARN",
            metadata={
                "unreadable": report.json_value([rep.error for rep in reports if rep.error]),
                "recovered": report.json_value(recovered),
            },
        )
    ]
    return report.StepResult(metadata=metadata, checks=checks, data_version=fingerprint)
