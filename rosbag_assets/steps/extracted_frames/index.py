"""Per-bag index parts, merged into the drive's ``index.parquet``, checked and committed."""

from __future__ import annotations

import io
import json
import os
import time
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from rosbag_assets.io import publish
from rosbag_assets.io.bags import BagReadError
from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.storage import FileInfo
from rosbag_assets.steps import report
from rosbag_assets.steps.extracted_frames.bag import BagExtraction, topic_slug
from rosbag_assets.steps.extracted_frames.options import INDEX_COLUMNS, ExtractedFramesOptions

PREVIEW_TILES = 6


class IncompleteDriveError(BagReadError):
    """Bags of the drive that cannot be read, or only in part, and `allow_partial` is not set: names every
    one; nothing is published."""


def _part_key(bag: BagRef) -> str:
    return f"index/part-{bag.slug}.parquet"


def write_part(staging: publish.Draft, bag: BagRef, extraction: BagExtraction) -> None:
    """Store a bag's index rows and report inside the (uncommitted) version."""
    frame = pd.DataFrame(extraction.rows, columns=[c for c in INDEX_COLUMNS if c != "path"])
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    staging.write_bytes(_part_key(bag), buf.getvalue())
    bag_report = {
        "bag": extraction.bag,
        "skipped_rate": extraction.skipped_rate,
        "skipped_window": extraction.skipped_window,
        "errors": extraction.errors,
        "topics_seen": extraction.topics_seen,
        "seconds": extraction.seconds,
        "read_mode": extraction.read_mode,
        "complete": extraction.complete,
        "read_error": extraction.read_error,
        "undecodable": extraction.undecodable,
        "first_undecodable": extraction.first_undecodable,
        "zero_stamps": extraction.zero_stamps,
    }

    staging.write_bytes(f"index/part-{bag.slug}.json", json.dumps(bag_report).encode())


def bags_from_inventory(manifest: dict[str, Any]) -> list[BagRef]:
    """The readable bags recorded by the committed `raw_bags` version."""
    return [
        BagRef(b["name"], b["format"], [FileInfo(k, 0, "") for k in b["keys"]], b.get("has_metadata", False))
        for b in manifest["bags"]
        if b["ok"]
    ]


def inventory_problems(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """``{"bag", "problem"}`` for each bag the committed `raw_bags` version found unreadable or readable only
    in part (a damaged bag that recovery could read up to some point)."""
    problems = []
    for b in manifest["bags"]:
        if not b["ok"]:
            problems.append({"bag": b["name"], "problem": b.get("error") or "unreadable"})
        elif not b.get("complete", True):
            problems.append({"bag": b["name"], "problem": f"recovered in part: {b.get('recovery') or ''}"})
    return problems


def incomplete_error(drive: str, problems: list[dict[str, str]], when: str) -> IncompleteDriveError:
    lines = "\n".join(f"  - {p['bag']}: {p['problem']}" for p in problems)
    return IncompleteDriveError(
        f"drive {drive}: {len(problems)} bag(s) cannot be read whole ({when}); nothing was published. "
        f"Set allow_partial to publish what can be read, with the all_bags_extracted check failed:\n{lines}"
    )


def commit_extracted_frames(
    *,
    drive: str,
    staging: publish.Draft,
    bags: list[BagRef],
    opts: ExtractedFramesOptions,
    log: report.StepLog,
    elapsed_s: float | None = None,
    unreadable: list[dict[str, str]] | None = None,
) -> report.StepResult:
    """Merge per-bag parts into ``index.parquet``, evaluate checks and commit the version.

    `unreadable`: bags of the drive that were not extracted because they cannot be opened. When any bag is
    missing or was read only in part, this raises IncompleteDriveError before committing, unless
    `opts.allow_partial`: then the version is committed (and made current) with `all_bags_extracted` failed.
    """

    frames, reports = [], []
    for bag in bags:
        try:
            frames.append(
                pd.read_parquet(io.BytesIO(staging.storage.read_bytes(staging.key(_part_key(bag)))))
            )
            reports.append(json.loads(staging.storage.read_bytes(staging.key(f"index/part-{bag.slug}.json"))))
        except FileNotFoundError as exc:
            raise RuntimeError(
                f"bag {bag.name}: its extraction part is missing from {staging.uri()}"
            ) from exc
    index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=INDEX_COLUMNS)
    root = staging.uri().rstrip("/")
    index["path"] = [f"{root}/{k}" for k in index["data_key"]]
    index = index[INDEX_COLUMNS].sort_values(["bag", "topic", "stamp_ns", "frame_key"], ignore_index=True)
    buf = io.BytesIO()
    index.to_parquet(buf, index=False)
    staging.write_bytes("index.parquet", buf.getvalue())

    topics_seen: dict[str, int] = defaultdict(int)
    for rep in reports:
        for topic, count in rep["topics_seen"].items():
            topics_seen[topic] += count
    per_topic = index.groupby("topic").agg(
        frames=("frame_key", "size"), bytes=("bytes", "sum"), width=("width", "max"), height=("height", "max")
    )
    per_topic_rows = [
        {
            "topic": t,
            "messages": topics_seen.get(t, 0),
            "frames": int(per_topic.loc[t, "frames"]) if t in per_topic.index else 0,
            "bytes": int(per_topic.loc[t, "bytes"]) if t in per_topic.index else 0,
            "size": f"{int(per_topic.loc[t, 'width'])}x{int(per_topic.loc[t, 'height'])}"
            if t in per_topic.index
            else "",
        }
        for t in sorted(set(topics_seen) | set(per_topic.index))
    ]
    incomplete = list(unreadable or []) + [
        {"bag": rep["bag"], "problem": rep.get("read_error") or "read in part"}
        for rep in reports
        if not rep.get("complete", True) or rep.get("read_error")
    ]
    if incomplete and not opts.allow_partial:
        raise incomplete_error(drive, incomplete, "found while extracting")
    undecodable: dict[str, int] = defaultdict(int)
    first_undecodable: dict[str, str] = {}
    zero_stamps: dict[str, int] = defaultdict(int)
    for rep in reports:
        for topic, count in rep.get("undecodable", {}).items():
            undecodable[topic] += count
            first_undecodable.setdefault(topic, rep["first_undecodable"][topic])
        for topic, count in rep.get("zero_stamps", {}).items():
            zero_stamps[topic] += count
    for row in per_topic_rows:
        row["undecodable"] = undecodable.get(row["topic"], 0)
        row["zero_stamps"] = zero_stamps.get(row["topic"], 0)
    skipped = {t: {"count": n, "first": first_undecodable[t]} for t, n in sorted(undecodable.items())}
    errors = [e for rep in reports for e in rep["errors"]]
    errors += [f"{p['bag']}: not extracted: {p['problem']}" for p in unreadable or []]
    silent = [t["topic"] for t in per_topic_rows if t["messages"] > 0 and t["frames"] == 0]
    empty = [t["topic"] for t in per_topic_rows if t["messages"] == 0]
    if opts.topics:
        missing = sorted(set(opts.topics) - set(topics_seen))
        for topic in missing:
            log.warning(f"drive {drive}: requested topic {topic} is in none of the bags")
        silent += missing
    for topic in empty:
        log.warning(f"drive {drive}: image topic {topic} has no messages")

    checks = [
        report.CheckOutcome(
            "every_image_topic_has_frames",
            passed=not silent,
            description="every image topic with messages produced at least one frame",
            metadata={
                "topics_without_frames": report.json_value(sorted(set(silent))),
                "empty_topics": report.json_value(empty),
            },
        ),
        report.CheckOutcome(
            "all_bags_extracted",
            passed=not incomplete,
            description=(
                "every bag of the drive was read to its end"
                if not incomplete
                else f"{len(incomplete)} bag(s) not read whole: {', '.join(p['bag'] for p in incomplete)}; "
                "allow_partial is set, so this version was still made current"
            ),
            metadata={"incomplete_bags": report.json_value(incomplete)},
        ),
        report.CheckOutcome(
            "no_extraction_errors",
            passed=not errors,
            severity="WARN",
            description="no bag failed to read and no message failed to decode"
            + (f"; {sum(undecodable.values())} undecodable message(s) skipped" if undecodable else ""),
            metadata={"errors": report.json_value(errors), "skipped_messages": report.json_value(skipped)},
        ),
    ]
    previews = topic_previews(staging, index, drive, log)
    manifest = {
        "drive": drive,
        "frames": len(index),
        "options": opts.model_dump(),
        "errors": errors,
        "incomplete_bags": incomplete,
        "skipped_messages": skipped,
    }
    # with allow_partial, an incomplete drive is published on purpose: that failure alone does not gate it
    rejected = [
        name
        for name in report.blocking_failures(checks)
        if not (opts.allow_partial and name == "all_bags_extracted")
    ]
    uri = staging.commit(manifest, rejected)
    log.info(f"{'committed' if not rejected else 'kept (not published)'} {len(index)} frames at {uri}")
    total_bytes = int(index["bytes"].sum()) if len(index) else 0
    metadata = {
        "frames": report.integer(len(index)),
        "bytes": report.integer(total_bytes),
        "topics": report.integer(len(per_topic_rows)),
        "bags": report.integer(len(bags)),
        "frames_per_topic": report.table(
            per_topic_rows,
            [
                ("topic", "string"),
                ("messages", "int"),
                ("frames", "int"),
                ("bytes", "int"),
                ("size", "string"),
                ("undecodable", "int"),
                ("zero_stamps", "int"),
            ],
        ),
        "undecodable_messages": report.integer(sum(undecodable.values())),
        "skipped_messages": report.json_value(skipped),
        "frames_without_stamp": report.json_value(dict(sorted(zero_stamps.items()))),
        "incomplete_bags": report.integer(len(incomplete)),
        "skipped_by_rate": report.integer(sum(rep["skipped_rate"] for rep in reports)),
        "skipped_by_window": report.integer(sum(rep["skipped_window"] for rep in reports)),
        "index": report.uri_value(staging.uri("index.parquet")),
        "frames_root": report.uri_value(uri),
        "layout": report.text(opts.layout),
        "stored_objects": report.integer(int(index["data_key"].nunique()) if len(index) else 0),
        "options": report.json_value(opts.model_dump()),
    }
    if elapsed_s is not None:
        metadata["elapsed_s"] = report.number(elapsed_s, digits=2)
        metadata["frames_per_s"] = report.number(len(index) / elapsed_s if elapsed_s else 0.0, digits=1)
    metadata.update(previews)
    if errors:
        metadata["problems"] = report.md("\n".join(f"- {e}" for e in errors))
    metadata.update(report.publication(uri, rejected))
    return report.StepResult(metadata=metadata, checks=checks, data_version=_index_version(index))


def topic_previews(
    staging: publish.Draft,
    index: pd.DataFrame,
    drive: str,
    log: report.StepLog,
    per_topic: int = PREVIEW_TILES,
) -> dict[str, report.MetadataValue]:
    """A contact sheet per camera topic (frames spread evenly over the drive), stored as
    ``previews/<topic>.jpg`` and returned as metadata pictures ``preview <topic>``. A frame that cannot be
    decoded is left out of its sheet with a warning; it never fails the step. Tiles are decoded on a thread
    pool (OpenCV releases the GIL): on a small drive the sheets are a fixed cost worth hiding."""
    from concurrent.futures import ThreadPoolExecutor

    from rosbag_assets.vision import preview

    picked = []
    for topic, rows in index.groupby("topic", sort=True):
        picks = np.unique(np.linspace(0, len(rows) - 1, min(per_topic, len(rows))).round().astype(int))
        picked.append((str(topic), rows.iloc[picks].to_dict("records")))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        tiles = [
            (topic, list(pool.map(lambda row: _preview_tile(staging, row), rows))) for topic, rows in picked
        ]
    out = {}
    for topic, results in tiles:
        for problem in (r for r in results if isinstance(r, str)):
            log.warning(f"preview of {topic}: {problem}")
        sheet = preview.jpeg_bytes(preview.contact_sheet([r for r in results if not isinstance(r, str)]))
        key = staging.write_bytes(f"previews/{topic_slug(topic)}.jpg", sheet)
        out[f"preview {topic}"] = report.picture(sheet, f"{drive} {topic}", key, storage=staging.storage)
    return out


def _preview_tile(staging: publish.Draft, row: dict[str, Any]) -> np.ndarray | str:
    """One captioned contact-sheet tile, or why the frame is not shown."""
    from rosbag_assets.io.frames import read_frame_bytes
    from rosbag_assets.vision import preview

    try:
        data = read_frame_bytes(staging.storage, staging, row)
        img = preview.thumbnail(data, int(row["width"]), preview.TILE_WIDTH)
    except Exception as exc:
        return f"frame {row['frame_key']} not shown ({exc})"
    stamp = time.strftime("%H:%M:%S", time.gmtime(row["stamp_ns"] / 1e9))
    return preview.caption(img, f"{stamp} {row['width']}x{row['height']} {row['encoding']}")


def _index_version(index: pd.DataFrame) -> str:
    import hashlib

    h = hashlib.sha256()
    for key, size in zip(index["frame_key"], index["bytes"], strict=True):
        h.update(f"{key}\0{size}\n".encode())
    return h.hexdigest()[:16]
