"""The `drive_timeline` and `scenes` steps: published data in, published data out.

`drive_timeline` reads the committed `topic_tables` (speed, IMU, GPS topics), `object_labels`, `lane_labels`
and `extracted_frames` index of a drive and publishes ``<drive>/drive_timeline/.../timeline.parquet``
(`build_timeline`). `scenes` reads that timeline and publishes ``<drive>/scenes/.../scenes.parquet``
(`find_scenes`: rule, start/end, frame_keys) with the shipped rules plus an optional YAML file.

Their options are flat, Dagster-config-friendly models (`DriveTimelineOptions.rules`, a mapping of
models, is not: the per-signal rule overrides stay with the plain-Python API).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.drive_timeline import DriveTimelineOptions, build_timeline
from rosbag_assets.steps.scenes import find_scenes as _find_scenes
from rosbag_assets.steps.scenes import load_rules
from rosbag_assets.steps.topic_tables.run import read_topic_tables


class DriveTimelineStepOptions(BaseModel):
    """How `drive_timeline` builds the grid (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")
    grid_ms: float = Field(100.0, gt=0, description="grid step in milliseconds")
    time_base: Literal["header", "log"] = Field(
        "header", description="header stamps (log time where a stamp is 0) or bag log time"
    )
    speed_topic: str | None = Field(None, description="speed source topic; default: chosen by message type")
    imu_topic: str | None = Field(None, description="IMU topic; default: chosen by message type")
    gps_topic: str | None = Field(None, description="GPS topic; default: chosen by message type")
    camera_topic: str | None = Field(
        None, description="camera whose labels are summarised; default: a 'front' one, else the busiest"
    )
    person_classes: list[str] = Field(["person"], description="label classes counted as persons")
    vehicle_classes: list[str] = Field(
        ["car", "truck", "bus", "motorcycle", "bicycle", "train"],
        description="label classes counted as vehicles",
    )
    min_confidence: float = Field(0.0, ge=0, le=1, description="ignore labels below this confidence")


class ScenesOptions(BaseModel):
    """Which scene rules `scenes` runs (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")
    rules_file: str | None = Field(
        None,
        description="YAML file of extra scene rules (same shape as steps/scene_rules.yaml); same name wins",
    )
    defaults: bool = Field(True, description="also run the shipped default rules")


def run_drive_timeline(
    *,
    drive: str,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.StepLog | None = None,
) -> report.StepResult:
    """Put the drive's signals and per-frame label summaries on one grid; publish ``timeline.parquet``."""
    log = log or report.default_log()
    opts = DriveTimelineStepOptions.model_validate(dict(options or {}))
    t0 = time.perf_counter()
    tt_version, tt_manifest, topics = read_topic_tables(output, drive)
    labels_version, _ = publish.require_current(output, join_key(drive, "object_labels"))
    lanes_version, _ = publish.require_current(output, join_key(drive, "lane_labels"))
    frames_version, _ = publish.require_current(output, join_key(drive, "extracted_frames"))
    types = {t: e["msgtype"] for t, e in tt_manifest.get("topics", {}).items()}
    log.info(f"drive_timeline {drive}: {len(topics)} topic tables, grid {opts.grid_ms} ms")
    result = build_timeline(
        drive,
        topics,
        topic_types=types,
        labels=labels_version.read_parquet("labels.parquet"),
        lanes=lanes_version.read_parquet("lanes.parquet"),
        frames=frames_version.read_parquet("index.parquet"),
        options=DriveTimelineOptions(**opts.model_dump()),
    )
    table = result.table
    staging = publish.begin(output, join_key(drive, "drive_timeline"), run_id)
    staging.write_parquet("timeline.parquet", table)
    uri = staging.commit(
        {
            "drive": drive,
            "grid_ms": opts.grid_ms,
            "rows": len(table),
            "sources": result.sources,
            "upstream": {
                "topic_tables": tt_version.version,
                "object_labels": labels_version.version,
                "lane_labels": lanes_version.version,
                "extracted_frames": frames_version.version,
            },
        }
    )
    filled = {c: int(table[c].notna().sum()) for c in ("speed_mps", "yaw_rate", "lat", "frame_key")}
    metadata = {
        "rows": report.integer(len(table)),
        "duration_s": report.number(float(table["t_s"].iloc[-1]) if len(table) else 0.0, digits=2),
        "sources": report.json_value({k: v for k, v in result.sources.items()}),
        "filled_rows": report.json_value(filled),
        "timeline_uri": report.uri_value(staging.uri("timeline.parquet")),
        "elapsed_s": report.number(time.perf_counter() - t0, digits=2),
    }
    metadata.update(report.publication(uri, []))
    return report.StepResult(metadata=metadata)


def run_scenes(
    *,
    drive: str,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.StepLog | None = None,
) -> report.StepResult:
    """Find the ranges where each scene rule holds over the drive timeline; publish ``scenes.parquet``."""
    log = log or report.default_log()
    opts = ScenesOptions.model_validate(dict(options or {}))
    t0 = time.perf_counter()
    tl_version, tl_manifest = publish.require_current(output, join_key(drive, "drive_timeline"))
    timeline = tl_version.read_parquet("timeline.parquet")
    rules = load_rules(*([opts.rules_file] if opts.rules_file else []), defaults=opts.defaults)
    grid_ns = round(float(tl_manifest.get("grid_ms", 100.0)) * 1e6)
    scenes = _find_scenes(timeline, rules, grid_ns=grid_ns)
    staging = publish.begin(output, join_key(drive, "scenes"), run_id)
    staging.write_parquet("scenes.parquet", scenes)
    uri = staging.commit(
        {
            "drive": drive,
            "drive_timeline_version": tl_version.version,
            "rules": {name: rule.model_dump() for name, rule in rules.items()},
            "rules_file": opts.rules_file,
            "scenes": len(scenes),
        }
    )
    per_rule = scenes.groupby("rule").agg(scenes=("scene_id", "size"), seconds=("duration_s", "sum"))
    records = [
        {
            "rule": name,
            "scenes": int(per_rule.loc[name, "scenes"]) if name in per_rule.index else 0,
            "seconds": float(per_rule.loc[name, "seconds"]) if name in per_rule.index else 0.0,
        }
        for name in rules
    ]
    log.info(f"scenes {drive}: {len(scenes)} scenes over {len(rules)} rules")
    metadata = {
        "scenes": report.integer(len(scenes)),
        "rules": report.integer(len(rules)),
        "per_rule": report.table(records, [("rule", "string"), ("scenes", "int"), ("seconds", "float")]),
        "scenes_uri": report.uri_value(staging.uri("scenes.parquet")),
        "drive_timeline_version": report.text(tl_version.version),
        "elapsed_s": report.number(time.perf_counter() - t0, digits=2),
    }
    metadata.update(report.publication(uri, []))
    return report.StepResult(metadata=metadata)
