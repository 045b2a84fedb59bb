"""`lane_labels`: lane polylines per frame from a pluggable backend (offline classical detector by default)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from rosbag_assets.io import frames
from rosbag_assets.steps import report
from rosbag_assets.steps.lane_labels_options import LaneLabelsOptions
from rosbag_assets.steps.progress import Progress, topic_totals
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision import preview
from rosbag_assets.vision.drivable import draw_road, encode_mask
from rosbag_assets.vision.lanes import get_lane_backend

LANE_COLUMNS = [
    *frames.FRAME_REF_COLUMNS,
    "lane_id",
    "side",
    "score",
    "points",
    "model",
]
ROAD_COLUMNS = [*frames.FRAME_REF_COLUMNS, "drivable_fraction", "drivable_png"]
PREVIEW_TILES = 12


@step_runner(LaneLabelsOptions)
def run_lane_labels(step: Step[LaneLabelsOptions]) -> report.StepResult:
    """Find lanes on every colour frame of the drive and publish ``<drive>/lane_labels``.

    A backend with ``detect_batch`` (the learned model) runs whole batches and also yields the drivable area,
    stored losslessly per frame in ``road.parquet`` (1-bit PNG + drivable fraction) for `object_labels`.
    """
    drive, output, opts, log = step.drive, step.output, step.options, step.log
    backend = get_lane_backend(opts.backend, **opts.backend_options)
    version, index = frames.committed_frames(output, drive)
    chosen = frames.select_frames(index, opts.topics, opts.max_frames)
    log.info(f"finding lanes with {backend.name} on {len(chosen)} frames of {drive}")

    rows: list[dict[str, Any]] = []
    road_rows: list[dict[str, Any]] = []
    tiles = []
    tile_every = max(1, len(chosen) // PREVIEW_TILES)
    t_detect = time.perf_counter()
    frames_with_lanes = 0
    n = 0
    progress = Progress(log, f"lane_labels {drive}", topic_totals(chosen))
    for batch in frames.iter_batches(output, version, chosen, opts.batch_size, opts.workers):
        images = [img for _, img in batch]
        if hasattr(backend, "detect_batch"):
            results = [(r.lanes, r.drivable, r.drivable_fraction) for r in backend.detect_batch(images)]
        else:
            results = [(backend.detect(img), None, None) for img in images]
        for (row, img), (lanes, drivable, fraction) in zip(batch, results, strict=True):
            progress.update(row["topic"])
            h, w = img.shape[:2]
            ref = frames.frame_ref(drive, row, w, h)
            frames_with_lanes += bool(lanes)
            rows.extend(
                {
                    **ref,
                    "lane_id": lane.lane_id,
                    "side": lane.side,
                    "score": float(lane.score),
                    "points": [[float(x), float(y)] for x, y in lane.points],
                    "model": backend.name,
                }
                for lane in lanes
            )
            if drivable is not None:
                road_rows.append(
                    {**ref, "drivable_fraction": float(fraction), "drivable_png": encode_mask(drivable)}
                )
            if n % tile_every == 0 and len(tiles) < PREVIEW_TILES:
                annotated = draw_road(img, lanes, drivable)
                caption = f"{row['topic']} lanes={len(lanes)}"
                if fraction is not None:
                    caption += f" drivable={fraction:.0%}"
                tiles.append(preview.caption(annotated, caption))
            n += 1
    progress.close()
    detect_s = time.perf_counter() - t_detect

    lanes_df = pd.DataFrame(rows, columns=LANE_COLUMNS)
    staging = step.begin("lane_labels")
    staging.write_parquet("lanes.parquet", lanes_df)
    if road_rows:
        staging.write_parquet("road.parquet", pd.DataFrame(road_rows, columns=ROAD_COLUMNS))
    sheet = preview.jpeg_bytes(preview.contact_sheet(tiles))
    staging.write_bytes("preview.jpg", sheet)
    checks = lane_checks(index, lanes_df)
    rejected = report.blocking_failures(checks)
    staging.commit(
        {"drive": drive, "frames_version": version.version, "lanes": len(lanes_df), "model": backend.name},
        rejected,
    )

    sides = lanes_df.groupby("side").size() if len(lanes_df) else pd.Series(dtype=int)
    metadata = {
        "frames": report.integer(len(chosen)),
        "lanes": report.integer(len(lanes_df)),
        "frames_with_lanes": report.integer(frames_with_lanes),
        "lanes_per_side": report.table(
            [{"side": k, "count": int(v)} for k, v in sides.items()], [("side", "string"), ("count", "int")]
        ),
        "mean_score": report.number(float(lanes_df["score"].mean()) if len(lanes_df) else 0.0, digits=3),
        "model": report.text(backend.name),
        "frames_per_s": report.number(len(chosen) / detect_s if detect_s else 0.0, digits=1),
        "elapsed_s": step.elapsed(),
        "lanes_uri": report.uri_value(staging.uri("lanes.parquet")),
        "mean_drivable_fraction": report.number(
            float(sum(r["drivable_fraction"] for r in road_rows) / len(road_rows)) if road_rows else 0.0
        ),
        "preview_uri": report.uri_value(staging.uri("preview.jpg")),
        "preview": report.picture(
            sheet, f"{drive} lanes and drivable area", staging.key("preview.jpg"), storage=staging.storage
        ),
        "frames_version": report.text(version.version),
    }
    metadata.update(report.publication(staging.uri(), rejected))
    return report.StepResult(metadata=metadata, checks=checks)


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
