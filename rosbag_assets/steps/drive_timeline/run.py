"""The `drive_timeline` step: published topic tables, labels and frames in, ``timeline.parquet`` out.

Reads the committed `topic_tables` (speed, IMU, GPS topics), `object_labels`, `lane_labels` and the
`extracted_frames` index of a drive, builds the grid (`build_timeline`) and publishes
``<drive>/drive_timeline/versions/<id>/timeline.parquet`` with a picture of its signals. Two checks gate
publication: a grid that is not one regular step, and a speed source whose samples lie in another time range
than the camera frames (two clocks) would make every scene and search over the drive wrong. Speed that is
merely missing wherever there are frames (a source that died) only warns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rosbag_assets.steps import report
from rosbag_assets.steps.drive_timeline.grid import build_timeline
from rosbag_assets.steps.drive_timeline.options import IMU_COLUMNS, SIGNALS, DriveTimelineOptions
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.steps.topic_tables.run import read_topic_tables
from rosbag_assets.vision import preview
from rosbag_assets.vision.signal_plot import INLINE, draw_signals


@step_runner(DriveTimelineOptions)
def run_drive_timeline(step: Step[DriveTimelineOptions]) -> report.StepResult:
    """Put the drive's signals and per-frame label summaries on one grid; publish ``timeline.parquet``."""
    drive, output, opts, log = step.drive, step.output, step.options, step.log
    tt_version, tt_manifest, topics = read_topic_tables(output, drive)
    labels_version, _ = step.current("object_labels")
    lanes_version, _ = step.current("lane_labels")
    frames_version, _ = step.current("extracted_frames")
    types = {t: e["msgtype"] for t, e in tt_manifest.get("topics", {}).items()}
    log.info(f"drive_timeline {drive}: {len(topics)} topic tables, grid {opts.grid_ms} ms")
    result = build_timeline(
        drive,
        topics,
        topic_types=types,
        labels=labels_version.read_parquet("labels.parquet"),
        lanes=lanes_version.read_parquet("lanes.parquet"),
        frames=frames_version.read_parquet("index.parquet"),
        options=opts,
    )
    table = result.table
    staging = step.begin("drive_timeline")
    staging.write_parquet("timeline.parquet", table)
    picture = preview.png_bytes(draw_signals(table, title=f"{drive}: {_describe(table, result.sources)}"))
    staging.write_bytes("timeline.png", picture)
    checks = timeline_checks(table, result.sources, round(opts.grid_ms * 1e6))
    rejected = report.blocking_failures(checks)
    uri = staging.commit(
        {
            "drive": drive,
            "grid_ms": opts.grid_ms,
            "rows": len(table),
            "sources": result.sources,
            "rules": {name: opts.rule(name).model_dump() for name in SIGNALS},
            "upstream": {
                "topic_tables": tt_version.version,
                "object_labels": labels_version.version,
                "lane_labels": lanes_version.version,
                "extracted_frames": frames_version.version,
            },
        },
        rejected,
    )
    filled = {c: int(table[c].notna().sum()) for c in ("speed_mps", "yaw_rate", "lat", "frame_key")}
    metadata = {
        "rows": report.integer(len(table)),
        "duration_s": report.number(float(table["t_s"].iloc[-1]) if len(table) else 0.0, digits=2),
        "sources": report.json_value({k: v for k, v in result.sources.items()}),
        "filled_rows": report.json_value(filled),
        "timeline_uri": report.uri_value(staging.uri("timeline.parquet")),
        "picture": report.picture(
            picture,
            f"{drive} timeline signals",
            staging.key("timeline.png"),
            mime="image/png",
            storage=staging.storage,
            inline=preview.png_bytes(draw_signals(table, title=f"{drive}: signals", layout=INLINE)),
        ),
        "elapsed_s": step.elapsed(),
    }
    metadata.update(report.publication(uri, rejected))
    return report.StepResult(metadata=metadata, checks=checks)


def _describe(table: pd.DataFrame, sources: dict[str, str | None]) -> str:
    seconds = float(table["t_s"].iloc[-1]) if len(table) else 0.0
    return f"{seconds:.1f} s; speed from {sources.get('speed') or 'no speed topic'}"


def timeline_checks(
    table: pd.DataFrame, sources: dict[str, str | None], grid_ns: int
) -> list[report.CheckOutcome]:
    """`grid_is_regular`: one row per grid step, in time order; `speed_meets_frames`: a chosen speed source
    has values on the grid where camera frames are (or the drive explicitly has no speed source); it blocks
    when speed and frames lie in separate time ranges, and warns when they overlap but never coincide."""
    t = table["t_ns"].to_numpy(np.int64)
    steps = np.diff(t)
    bad_steps = int((steps != grid_ns).sum())
    speed_source = sources.get("speed")
    speed = table["speed_mps"].notna().to_numpy()
    frames = table["frame_key"].notna().to_numpy()
    both = int((speed & frames).sum())
    severity = "ERROR"
    if speed_source is None:
        passed, why = True, "the drive has no odometry, twist or GPS topic: speed is NULL throughout"
    elif not speed.any():
        passed, why = False, f"speed source {speed_source} gave no value on the grid"
    elif frames.any() and both == 0:
        passed = False
        s_idx, f_idx = np.flatnonzero(speed), np.flatnonzero(frames)
        lo, hi = sorted([(s_idx[0], s_idx[-1]), (f_idx[0], f_idx[-1])])
        between = table.iloc[lo[1] + 1 : hi[0]]
        recorded = between[["speed_mps", *IMU_COLUMNS, "lat", "frame_key"]].notna().to_numpy().any()
        if lo[1] < hi[0] and not recorded:  # two clocks: nothing at all between them; scenes would be wrong
            why = (
                f"speed from {speed_source} and the camera frames lie in separate time ranges with nothing "
                "recorded between them: their clocks do not match (try time_base: log)"
            )
        else:  # the same clock, but speed is missing wherever there are frames (a dead source): warn
            severity = "WARN"
            why = f"speed from {speed_source} is missing at every camera frame (gaps longer than its rule)"
    else:
        passed, why = True, f"speed from {speed_source} on {int(speed.sum())} of {len(table)} steps"
    return [
        report.CheckOutcome(
            "grid_is_regular",
            passed=bad_steps == 0,
            description="the timeline has one row per grid step, in time order",
            metadata={
                "irregular_steps": report.integer(bad_steps),
                "grid_ns": report.integer(grid_ns),
                "rows": report.integer(len(table)),
            },
        ),
        report.CheckOutcome(
            "speed_meets_frames",
            passed=passed,
            description=why,
            severity=severity,
            metadata={
                "speed_source": report.text(speed_source or "absent"),
                "steps_with_speed": report.integer(int(speed.sum())),
                "steps_with_speed_and_frame": report.integer(both),
            },
        ),
    ]
