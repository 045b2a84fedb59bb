"""`lane_labels`: lane polylines per frame from a pluggable backend (offline classical detector by default)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.vision import preview
from rosbag_assets.vision.lanes import draw_lanes, get_lane_backend

LANE_COLUMNS = [
    *frames.FRAME_REF_COLUMNS,
    "lane_id",
    "side",
    "score",
    "points",
    "model",
]
PREVIEW_TILES = 12


def run_lanes(
    *,
    drive: str,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.JobLog | None = None,
) -> report.JobResult:
    """Find lanes on every colour frame of the drive and publish ``<drive>/lane_labels``.

    Options: ``backend`` (default "opencv-hough"), ``backend_options`` (dict), ``topics``, ``max_frames``,
    ``batch_size`` (prefetch granularity), ``workers``.
    """
    log = log or report.default_log()
    options = dict(options or {})
    known = {"backend", "backend_options", "topics", "max_frames", "batch_size", "workers"}
    if set(options) - known:
        raise ValueError(f"unknown lane_labels options: {sorted(set(options) - known)}")
    t0 = time.perf_counter()
    backend = get_lane_backend(options.get("backend", "opencv-hough"), **options.get("backend_options", {}))
    version, index = frames.committed_frames(output, drive)
    chosen = frames.select_frames(index, options.get("topics"), options.get("max_frames"))
    boxes = _object_labels(output, drive, version.version, log)
    log.info(f"finding lanes with {backend.name} on {len(chosen)} frames of {drive}")

    rows: list[dict[str, Any]] = []
    tiles = []
    tile_every = max(1, len(chosen) // PREVIEW_TILES)
    t_detect = time.perf_counter()
    frames_with_lanes = 0
    for n, (row, img) in enumerate(
        item
        for batch in frames.iter_batches(
            output, version, chosen, options.get("batch_size", 16), options.get("workers", 0)
        )
        for item in batch
    ):
        h, w = img.shape[:2]
        lanes = backend.detect(img)
        frames_with_lanes += bool(lanes)
        for lane in lanes:
            rows.append(
                {
                    "drive": drive,
                    "bag": row["bag"],
                    "topic": row["topic"],
                    "stamp_ns": int(row["stamp_ns"]),
                    "frame_key": row["frame_key"],
                    "image_width": w,
                    "image_height": h,
                    "lane_id": lane.lane_id,
                    "side": lane.side,
                    "score": float(lane.score),
                    "points": [[float(x), float(y)] for x, y in lane.points],
                    "model": backend.name,
                }
            )
        if n % tile_every == 0 and len(tiles) < PREVIEW_TILES:
            annotated = draw_lanes(preview.draw_boxes(img, boxes.get(row["frame_key"], [])), lanes)
            tiles.append(preview.caption(annotated, f"{row['topic']} lanes={len(lanes)}"))
    detect_s = time.perf_counter() - t_detect

    lanes_df = pd.DataFrame(rows, columns=LANE_COLUMNS)
    staging = publish.begin(output, join_key(drive, "lane_labels"), run_id)
    staging.write_parquet("lanes.parquet", lanes_df)
    sheet = preview.jpeg_bytes(preview.contact_sheet(tiles))
    staging.write_bytes("preview.jpg", sheet)
    staging.commit(
        {"drive": drive, "frames_version": version.version, "lanes": len(lanes_df), "model": backend.name}
    )

    sides = lanes_df.groupby("side").size() if len(lanes_df) else pd.Series(dtype=int)
    metadata = {
        "frames": report.integer(len(chosen)),
        "lanes": report.integer(len(lanes_df)),
        "frames_with_lanes": report.integer(frames_with_lanes),
        "lanes_per_side": report.table(
            [{"side": k, "count": int(v)} for k, v in sides.items()], [("side", "string"), ("count", "int")]
        ),
        "mean_score": report.number(float(lanes_df["score"].mean()) if len(lanes_df) else 0.0),
        "model": report.text(backend.name),
        "frames_per_s": report.number(len(chosen) / detect_s if detect_s else 0.0),
        "elapsed_s": report.number(time.perf_counter() - t0),
        "lanes_uri": report.uri_value(staging.uri("lanes.parquet")),
        "preview_uri": report.uri_value(staging.uri("preview.jpg")),
        "preview": report.md(preview.markdown_image(sheet, f"{drive} lanes and objects")),
        "frames_version": report.text(version.version),
    }
    checks = lane_checks(index, lanes_df)
    return report.JobResult(metadata=metadata, checks=checks)


def _object_labels(
    storage: Storage, drive: str, frames_version: str, log: report.JobLog
) -> dict[str, list[dict]]:
    """Boxes of the committed object labels (when they belong to the same frames), keyed by frame."""
    manifest = publish.current(storage, join_key(drive, "object_labels"))
    if manifest is None or manifest.get("frames_version") != frames_version:
        log.info("no object labels for these frames; the preview shows lanes only")
        return {}
    version = publish.Staging(storage, join_key(drive, "object_labels"), manifest["version"])
    labels = version.read_parquet("labels.parquet")
    return {k: g.to_dict("records") for k, g in labels.groupby("frame_key")}


def lane_checks(index: pd.DataFrame, lanes: pd.DataFrame) -> list[report.CheckOutcome]:
    """Every lane row names a committed frame and every lane point lies inside its image."""
    dangling = sorted(set(lanes["frame_key"]) - set(index["frame_key"]))
    outside = 0
    for points, w, h in zip(lanes["points"], lanes["image_width"], lanes["image_height"], strict=True):
        outside += any(not (-0.5 <= x <= w + 0.5 and -0.5 <= y <= h + 0.5) for x, y in points)
    return [
        report.CheckOutcome(
            "lanes_point_at_frames",
            passed=not dangling,
            description="every lane row names a frame of the committed extraction",
            metadata={"dangling": report.json_value(dangling[:20])},
        ),
        report.CheckOutcome(
            "lane_points_inside_image",
            passed=outside == 0,
            description="every lane point lies inside its image",
            metadata={"lanes_outside": report.integer(outside)},
        ),
    ]
