"""The `foxglove` step: a drive as one MCAP that Foxglove opens as it is (`io.foxglove_mcap`).

Reads the committed frames, object and lane labels, scenes and timeline of a drive and publishes
``<drive>/foxglove/versions/<id>/drive.mcap``, with ``frame.jpg``: the frame with the most annotations as
Foxglove shows it (kept while writing, not read again). The MCAP is written to a local temporary file first (the writer
needs a seekable file) and then uploaded, so it works the same for local and S3 outputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.foxglove_mcap import write_foxglove_mcap
from rosbag_assets.io.storage import join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.foxglove_options import FoxgloveOptions
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision import preview
from rosbag_assets.vision.foxglove_frame import draw_foxglove_frame


@step_runner(FoxgloveOptions)
def run_foxglove(step: Step[FoxgloveOptions]) -> report.StepResult:
    """Write and publish the drive's ``drive.mcap`` (frames, boxes, lanes, scenes, timeline)."""
    drive, output, opts, log = step.drive, step.output, step.options, step.log
    frames_version, index = frames.committed_frames(output, drive)
    versions = {"extracted_frames": frames_version.version}
    upstream = {}
    for asset, file in (
        ("object_labels", "labels.parquet"),
        ("lane_labels", "lanes.parquet"),
        ("scenes", "scenes.parquet"),
        ("drive_timeline", "timeline.parquet"),
    ):
        version, _ = publish.require_current(output, join_key(drive, asset))
        upstream[asset] = version.read_parquet(file)
        versions[asset] = version.version
    if opts.topics:
        index = index[index["topic"].isin(opts.topics)]
    timeline = upstream["drive_timeline"].rename(columns={"t_ns": "time_ns"})
    # the Plot panel takes numbers: drive, camera topic and frame key are in the frames' own messages
    timeline = timeline[[c for c in timeline.columns if pd.api.types.is_numeric_dtype(timeline[c])]]
    compression = None if opts.compression in (None, "none") else opts.compression
    staging = step.begin("foxglove")
    with tempfile.TemporaryDirectory(prefix="foxglove-") as tmp:
        path = Path(tmp) / "drive.mcap"
        export = write_foxglove_mcap(
            path,
            index,
            lambda row: frames.read_frame_bytes(output, frames_version, row),
            objects=upstream["object_labels"],
            lanes=upstream["lane_labels"],
            scenes=upstream["scenes"],
            timeline=timeline,
            metadata={"drive": drive, **{f"{k}_version": v for k, v in versions.items()}},
            compression=compression,
        )
        staging.renew_lease()
        output.upload_file(path, staging.key("drive.mcap"))
    sample = export.sample
    picture = None
    if sample is not None:  # the frame with the most annotations, as Foxglove's Image panel shows it
        frame = draw_foxglove_frame(sample.data, sample.topic, sample.stamp_ns, sample.boxes, sample.lanes)
        picture = preview.jpeg_bytes(frame, quality=85)
        staging.write_bytes("frame.jpg", picture)
    log.info(f"foxglove {drive}: {export.bytes} bytes, {sum(export.messages.values())} messages")
    uri = staging.commit(
        {"drive": drive, "upstream": versions, "bytes": export.bytes, "messages": export.messages}
    )
    mcap_uri = staging.uri("drive.mcap")
    link = report.output_url(staging.key("drive.mcap"))
    metadata = {
        "mcap": report.uri_value(mcap_uri),
        "bytes": report.integer(export.bytes),
        "messages": report.table(
            [{"channel": k, "messages": v} for k, v in sorted(export.messages.items())],
            [("channel", "string"), ("messages", "int")],
        ),
        "boxes": report.integer(export.boxes),
        "lanes": report.integer(export.lanes),
        "skipped_frames": report.integer(export.skipped_frames),
        "unmatched_labels": report.integer(export.unmatched_labels),
        "elapsed_s": step.elapsed(),
    }
    if picture is not None and sample is not None:
        metadata["frame"] = report.picture(
            picture, f"{drive} {sample.topic} in Foxglove", staging.key("frame.jpg"), storage=staging.storage
        )
    if link:
        metadata["open_in_foxglove"] = report.url(
            f"https://app.foxglove.dev/view?ds=remote-file&ds.url={quote(link, safe='')}"
        )
    metadata.update(report.publication(uri, []))
    return report.StepResult(metadata=metadata)
