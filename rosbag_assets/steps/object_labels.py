"""`object_labels`: batched YOLO detection over a drive's committed frames."""

from __future__ import annotations

import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import Storage, redact, redact_text
from rosbag_assets.steps import report
from rosbag_assets.steps.asset_weights import is_asset_spec, resolve_asset_weights
from rosbag_assets.steps.object_labels_options import ObjectLabelsOptions
from rosbag_assets.steps.progress import Progress, topic_totals
from rosbag_assets.steps.road_context import PLACEMENT_COLUMNS, load_road
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision import preview
from rosbag_assets.vision.detection import load_detector
from rosbag_assets.vision.drivable import draw_road

LABEL_COLUMNS = [
    *frames.FRAME_REF_COLUMNS,
    "class_id",
    "class_name",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "x1n",
    "y1n",
    "x2n",
    "y2n",
    "model",
    "weights_uri",
    "weights_sha256",
    *PLACEMENT_COLUMNS,
]
PREVIEW_TILES = 12


@step_runner(ObjectLabelsOptions)
def run_object_labels(step: Step[ObjectLabelsOptions], s3_client: Any = None) -> report.StepResult:
    """Detect objects on every colour frame of the drive and publish ``<drive>/object_labels``."""
    drive, output, opts, log = step.drive, step.output, step.options, step.log
    config = opts.detector_config()
    asset_uri = None
    if is_asset_spec(
        config.weights
    ):  # the model trained on our own drives: lineage drives -> model -> labels
        local, asset_uri = resolve_asset_weights(
            output, config.weights, config.cache_dir and Path(config.cache_dir)
        )
        config = replace(config, weights=str(local))
    version, index = frames.committed_frames(output, drive)
    chosen = frames.select_frames(index, opts.topics, opts.max_frames)
    detector = load_detector(config, s3_client=s3_client, log=lambda msg: log.warning(redact_text(msg)))
    if asset_uri is not None:
        detector.weights_uri = asset_uri
    if detector.fallback_reason:
        log.warning(
            f"object_labels for {drive} use {detector.model_name}: {redact_text(detector.fallback_reason)}"
        )
    log.info(f"detecting with {detector.model_name} on {len(chosen)} frames of {drive}")
    road = load_road(output, drive, version.version, log)

    rows: list[dict[str, Any]] = []
    sample: list[tuple[dict[str, Any], Any]] = []
    rng = random.Random(0)
    t_detect = time.perf_counter()
    seen = 0
    progress = Progress(log, f"object_labels {drive}", topic_totals(chosen))
    for batch in frames.iter_batches(output, version, chosen, config.batch_size, opts.workers):
        results = detector.detect_batch([img for _, img in batch])
        for (row, img), dets in zip(batch, results, strict=True):
            progress.update(row["topic"])
            h, w = img.shape[:2]
            frame_rows = [_label_row(drive, row, w, h, d, detector) for d in dets]
            if road is not None:
                boxes = [(d.x1, d.y1, d.x2, d.y2) for d in dets]
                for label, place in zip(frame_rows, road.place(row["frame_key"], boxes, (w, h)), strict=True):
                    label.update(place)
            rows.extend(frame_rows)
            seen += 1
            # reservoir-sample preview tiles, preferring frames that have detections
            if frame_rows and (len(sample) < PREVIEW_TILES or rng.random() < PREVIEW_TILES / seen):
                tile = img
                if road is not None:
                    tile = draw_road(img, road.lanes.get(row["frame_key"], []), road.mask(row["frame_key"]))
                tile = preview.draw_boxes(tile, frame_rows)
                if len(sample) < PREVIEW_TILES:
                    sample.append((row, tile))
                else:
                    sample[rng.randrange(PREVIEW_TILES)] = (row, tile)
    progress.close()
    detect_s = time.perf_counter() - t_detect

    labels = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    staging = step.begin("object_labels")
    staging.write_parquet("labels.parquet", labels)
    sheet = preview.jpeg_bytes(
        preview.contact_sheet([preview.caption(img, row["topic"]) for row, img in sample])
    )
    staging.write_bytes("preview.jpg", sheet)
    model = {
        "model": detector.model_name,
        "weights_uri": redact(detector.weights_uri),
        "weights_sha256": detector.weights_sha256,
        "fallback_reason": redact_text(detector.fallback_reason or "") or None,
    }
    checks = label_checks(output, version, index, labels)
    rejected = report.blocking_failures(checks)
    staging.commit(
        {
            "drive": drive,
            "frames_version": version.version,
            "labels": len(labels),
            **model,
            "config": asdict(config) | {"weights": redact(config.weights)},
        },
        rejected,
    )

    counts = labels.groupby("class_name").size().sort_values(ascending=False) if len(labels) else pd.Series()
    metadata = {
        "frames": report.integer(len(chosen)),
        "labels": report.integer(len(labels)),
        "frames_with_labels": report.integer(labels["frame_key"].nunique() if len(labels) else 0),
        "labels_per_class": report.table(
            [{"class": k, "count": int(v)} for k, v in counts.items()],
            [("class", "string"), ("count", "int")],
        ),
        "model": report.text(detector.model_name),
        "weights": report.text(redact(detector.weights_uri)),
        "weights_sha256": report.text(detector.weights_sha256 or ""),
        "device": report.text(getattr(detector, "device", "cpu")),
        "runtime": report.text(getattr(detector, "runtime", "opencv")),
        "model_file_run": report.text(getattr(detector, "ran", detector.weights_uri)),
        "frames_per_s": report.number(len(chosen) / detect_s if detect_s else 0.0, digits=1),
        "elapsed_s": step.elapsed(),
        "labels_uri": report.uri_value(staging.uri("labels.parquet")),
        "preview_uri": report.uri_value(staging.uri("preview.jpg")),
        "preview": report.picture(
            sheet, f"{drive} object labels", staging.key("preview.jpg"), storage=staging.storage
        ),
        "frames_version": report.text(version.version),
        "placed_on_road": report.text(
            f"by {road.model}: {int(labels['in_ego_lane'].eq(True).sum())} boxes in the ego lane"
            if road is not None
            else "no lane_labels for these frames"
        ),
    }
    if detector.fallback_reason:
        metadata["fallback_reason"] = report.md(
            f"**Configured weights unavailable.** {redact_text(detector.fallback_reason)}"
        )
    metadata.update(report.publication(staging.uri(), rejected))
    return report.StepResult(
        metadata=metadata, checks=checks, data_version=_labels_version(labels, detector.model_name)
    )


def label_checks(
    storage: Storage,
    version: publish.Version,
    index: pd.DataFrame,
    labels: pd.DataFrame,
    sample_files: int = 200,
) -> list[report.CheckOutcome]:
    """Every label points at a frame of the committed index that exists; every box lies inside its image.

    Existence is probed on the stored objects that hold the labelled frames (their shards, or the frame
    files of the ``files`` layout), at most `sample_files` of them.
    """
    known = set(index["frame_key"])
    dangling = sorted(set(labels["frame_key"]) - known)
    holders = index.set_index("frame_key")["data_key"] if "data_key" in index else None
    distinct = sorted({holders[k] if holders is not None else k for k in set(labels["frame_key"]) & known})
    probe = distinct if len(distinct) <= sample_files else random.Random(0).sample(distinct, sample_files)
    missing = [k for k in probe if not storage.exists(version.key(k))]
    eps = 0.5
    outside = labels[
        (labels["x1"] < -eps)
        | (labels["y1"] < -eps)
        | (labels["x2"] > labels["image_width"] + eps)
        | (labels["y2"] > labels["image_height"] + eps)
        | (labels["x2"] < labels["x1"])
        | (labels["y2"] < labels["y1"])
    ]
    return [
        report.CheckOutcome(
            "labels_point_at_frames",
            passed=not dangling and not missing,
            description="every label row names a frame of the committed extraction whose file exists",
            metadata={
                "dangling": report.json_value(dangling[:20]),
                "missing_files": report.json_value(missing[:20]),
                "files_probed": report.integer(len(probe)),
            },
        ),
        report.CheckOutcome(
            "boxes_inside_image",
            passed=outside.empty,
            description="every box lies inside its image",
            metadata={"outside": report.integer(len(outside))},
        ),
    ]


def _label_row(drive: str, row: dict[str, Any], w: int, h: int, det: Any, detector: Any) -> dict[str, Any]:
    return {
        **frames.frame_ref(drive, row, w, h),
        "class_id": int(det.class_id),
        "class_name": det.class_name,
        "confidence": float(det.confidence),
        "x1": float(det.x1),
        "y1": float(det.y1),
        "x2": float(det.x2),
        "y2": float(det.y2),
        "x1n": det.x1 / w,
        "y1n": det.y1 / h,
        "x2n": det.x2 / w,
        "y2n": det.y2 / h,
        "model": detector.model_name,
        "weights_uri": redact(detector.weights_uri),
        "weights_sha256": detector.weights_sha256,
    }


def _labels_version(labels: pd.DataFrame, model: str) -> str:
    import hashlib

    h = hashlib.sha256(model.encode())
    cols = ["frame_key", "class_id", "x1", "y1", "x2", "y2"]
    h.update(pd.util.hash_pandas_object(labels[cols].round(1), index=False).values.tobytes())
    return h.hexdigest()[:16]
