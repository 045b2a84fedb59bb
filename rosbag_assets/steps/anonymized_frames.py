"""`anonymized_frames`: a drive's colour frames with faces and licence plates blurred, ready to share.

Reads the committed `extracted_frames` index and the drive's `object_labels` (vehicle boxes tell the plate
detector where to look), runs each (bag, topic) sequence in stamp order through one anonymizer sequence so
regions are carried over frames where a detector blinked, and writes the results as tar shards plus an index
in the very layout `extracted_frames` uses (same ``frame_key``s, so labels join unchanged). Frames that
cannot be processed are never published silently: the blocking check `every_frame_anonymized` fails and
the version is kept for inspection only.

A sequence is one topic of one bag, not one topic of the drive: bags of one drive may overlap in time (the
sample drive holds the same scene twice), and carrying a region into another bag's frames would be wrong.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import os
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from itertools import islice
from typing import Any, BinaryIO

import cv2
import numpy as np
import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.shards import TarShards
from rosbag_assets.io.storage import Storage
from rosbag_assets.steps import report
from rosbag_assets.steps.anonymized_frames_options import AnonymizedFramesOptions
from rosbag_assets.steps.extracted_frames.bag import topic_slug
from rosbag_assets.steps.extracted_frames.options import INDEX_COLUMNS
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision import preview
from rosbag_assets.vision.anonymize import Anonymizer, Region, model_info

ASSET = "anonymized_frames"
ANON_COLUMNS = [*INDEX_COLUMNS, "regions", "faces", "plates", "models"]
REGION_COLUMNS = ["frame_key", "kind", "source", "detected_by", "score", "x1", "y1", "x2", "y2"]
PREVIEW_TILES = 8
PROGRESS_EVERY_S = 5.0


@step_runner(AnonymizedFramesOptions)
def run_anonymized_frames(step: Step[AnonymizedFramesOptions]) -> report.StepResult:
    """Anonymize the drive's committed colour frames and publish ``<drive>/anonymized_frames``."""
    drive, output, opts, log = step.drive, step.output, step.options, step.log
    version, index = frames.committed_frames(output, drive)
    labels_version, labels_manifest = step.current("object_labels")
    if labels_manifest.get("frames_version") not in (None, version.version):
        log.warning(
            f"{drive}: object_labels were made on frames {labels_manifest.get('frames_version')}, "
            f"not the current {version.version}; plates are looked for in boxes of matching frame keys only"
        )
    vehicles = vehicle_boxes_by_frame(labels_version.read_parquet("labels.parquet"), opts.vehicle_classes)
    chosen = choose_frames(index, opts.topics, opts.max_frames)
    anonymizer = Anonymizer(opts.anonymize_options())
    log.info(f"anonymizing {len(chosen)} frames of {drive} ({len(vehicles)} frames have vehicle boxes)")

    staging = step.begin(ASSET)
    sink = _shard_sink(staging, opts.shard_mb)
    rows: list[dict[str, Any]] = []
    regions: list[dict[str, Any]] = []
    errors: list[str] = []
    best: list[tuple[int, int, np.ndarray]] = []  # (regions, order, tile): the frames with most regions
    sequences: dict[tuple[str, str], Any] = {}
    t_work, last_log = time.perf_counter(), time.perf_counter()
    try:
        for done, (row, img, error) in enumerate(_load(output, version, chosen, opts.workers), 1):
            if error is None:
                try:
                    seq = sequences.setdefault((row["bag"], row["topic"]), anonymizer.sequence())
                    out, found = seq.push(img, vehicles.get(row["frame_key"], ()))
                    data = encode(out, row["format"], opts.jpeg_quality)
                except Exception as exc:  # named below; the check fails and nothing is published
                    error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                errors.append(f"frame {row['frame_key']} (bag {row['bag']}, topic {row['topic']}): {error}")
                continue
            stream = f"frames/{topic_slug(row['bag'])}/{topic_slug(row['topic'])}"
            data_key, offset = sink.append(stream, row["frame_key"], data, int(row["stamp_ns"]) // 10**9)
            rows.append(_index_row(row, out, data_key, offset, len(data), found))
            regions += [{"frame_key": row["frame_key"], **_region_row(r)} for r in found]
            if found and (len(best) < PREVIEW_TILES or len(found) > best[0][0]):
                tile = _preview_tile(img if opts.preview_originals else None, out, found, row["topic"])
                (heapq.heappush if len(best) < PREVIEW_TILES else heapq.heapreplace)(
                    best, (len(found), done, tile)
                )
            if time.perf_counter() - last_log >= PROGRESS_EVERY_S:
                last_log = time.perf_counter()
                log.info(f"anonymized {done}/{len(chosen)} frames of {drive}")
                staging.renew_lease()
        sink.close()
    except BaseException:
        sink.abort()
        raise
    work_s = time.perf_counter() - t_work

    root = staging.uri().rstrip("/")
    table = pd.DataFrame(rows, columns=ANON_COLUMNS)
    table["path"] = [f"{root}/{k}" for k in table["data_key"]]
    table = table.sort_values(["bag", "topic", "stamp_ns", "frame_key"], ignore_index=True)
    region_table = pd.DataFrame(regions, columns=REGION_COLUMNS)
    staging.write_parquet("index.parquet", table)
    staging.write_parquet("regions.parquet", region_table)
    tiles = [t for _, _, t in sorted(best, key=lambda b: (-b[0], b[1]))]
    sheet = preview.jpeg_bytes(preview.contact_sheet(tiles, columns=2 if opts.preview_originals else 4))
    staging.write_bytes("preview.jpg", sheet)

    checks = [
        report.CheckOutcome(
            "every_frame_anonymized",
            passed=not errors,
            description="every chosen frame was read, anonymized and stored",
            metadata={
                "failed_frames": report.integer(len(errors)),
                "first_error": report.text(errors[0] if errors else ""),
            },
        )
    ]
    rejected = report.blocking_failures(checks)
    models = model_info()
    uri = staging.commit(
        {
            "drive": drive,
            "frames_version": version.version,
            "object_labels_version": labels_version.version,
            "frames": len(table),
            "regions": len(region_table),
            "models": models,
            "options": opts.model_dump(),
            "errors": errors[:100],
        },
        rejected,
    )
    log.info(f"{'committed' if not rejected else 'kept (not published)'} {len(table)} frames at {uri}")
    by_kind_source = Counter(zip(region_table["kind"], region_table["source"], strict=True))
    metadata = {
        "frames": report.integer(len(table)),
        "frames_failed": report.integer(len(errors)),
        "regions": report.integer(len(region_table)),
        "faces": report.integer(int(table["faces"].sum()) if len(table) else 0),
        "plates": report.integer(int(table["plates"].sum()) if len(table) else 0),
        "frames_with_regions": report.integer(int((table["regions"] > 0).sum()) if len(table) else 0),
        "regions_by_kind_and_source": report.table(
            [{"kind": k, "source": s, "count": n} for (k, s), n in sorted(by_kind_source.items())],
            [("kind", "string"), ("source", "string"), ("count", "int")],
        ),
        "models": report.table(
            [{"model": name, **info} for name, info in models.items()],
            [("model", "string"), ("file", "string"), ("sha256", "string"), ("licence", "string")],
        ),
        "frames_per_s": report.number((len(table) + len(errors)) / work_s if work_s else 0.0),
        "elapsed_s": report.number(time.perf_counter() - step.started),
        "index": report.uri_value(staging.uri("index.parquet")),
        "regions_uri": report.uri_value(staging.uri("regions.parquet")),
        "preview_uri": report.uri_value(staging.uri("preview.jpg")),
        "preview": report.picture(
            sheet, f"{drive} anonymized frames", staging.key("preview.jpg"), storage=staging.storage
        ),
        "frames_version": report.text(version.version),
        "object_labels_version": report.text(labels_version.version),
        "options": report.json_value(opts.model_dump()),
    }
    if errors:
        metadata["problems"] = report.md("\n".join(f"- {e}" for e in errors[:20]))
    metadata.update(report.publication(uri, rejected))
    return report.StepResult(metadata=metadata, checks=checks, data_version=_data_version(table, models))


def vehicle_boxes_by_frame(
    labels: pd.DataFrame, classes: list[str]
) -> dict[str, list[tuple[float, float, float, float]]]:
    """frame_key -> pixel boxes of the vehicle labels in it."""
    cars = labels[labels["class_name"].isin(classes)]
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for key, x1, y1, x2, y2 in zip(
        cars["frame_key"], cars["x1"], cars["y1"], cars["x2"], cars["y2"], strict=True
    ):
        out.setdefault(key, []).append((float(x1), float(y1), float(x2), float(y2)))
    return out


def choose_frames(index: pd.DataFrame, topics: list[str] | None, max_frames: int | None) -> pd.DataFrame:
    """Colour frames of the chosen topics, in (bag, topic, stamp) order; with `max_frames`, the first frames
    of each (bag, topic), shared evenly (consecutive frames keep carrying meaningful)."""
    chosen = frames.select_frames(index, topics).sort_values(["bag", "topic", "stamp_ns", "frame_key"])
    if max_frames is not None and len(chosen) > max_frames:
        groups = chosen.groupby(["bag", "topic"], sort=True)
        per_group = max(1, math.ceil(max_frames / groups.ngroups))
        chosen = groups.head(per_group).head(max_frames)
    return chosen.reset_index(drop=True)


def encode(img: np.ndarray, fmt: str, jpeg_quality: int) -> bytes:
    """Encode as the frame was stored: PNG stays lossless, everything else becomes JPEG."""
    if fmt == "png":
        ok, buf = cv2.imencode(".png", img)
    else:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ValueError(f"could not encode a {img.shape} {img.dtype} frame as {fmt}")
    return buf.tobytes()


def decode(data: bytes, fmt: str) -> np.ndarray:
    """JPEG decodes as `object_labels` saw it (BGR, so label boxes line up); PNG keeps mono and alpha."""
    if fmt != "png":
        return frames.decode_frame(data)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError("undecodable image data")
    if img.dtype != np.uint8:
        raise ValueError(f"{img.dtype} PNG frames are not anonymized (8-bit only)")
    return img


def _load(
    storage: Storage, version: publish.Version, chosen: pd.DataFrame, workers: int
) -> Iterator[tuple[dict[str, Any], np.ndarray | None, str | None]]:
    """(row, image, None) or (row, None, error) per frame in order, reading ahead on a bounded thread pool."""
    workers = workers or os.cpu_count() or 1

    def load(row: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray | None, str | None]:
        try:
            return row, decode(frames.read_frame_bytes(storage, version, row), row["format"]), None
        except Exception as exc:
            where = version.uri(row.get("data_key") or row["frame_key"])
            return row, None, f"cannot read {where}: {type(exc).__name__}: {exc}"

    records = iter(chosen.to_dict("records"))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="anon-read") as pool:
        queue: deque[Future] = deque(pool.submit(load, r) for r in islice(records, 2 * workers))
        while queue:
            item = queue.popleft().result()
            nxt = next(records, None)
            if nxt is not None:
                queue.append(pool.submit(load, nxt))
            yield item


def _shard_sink(staging: publish.Draft, shard_mb: float) -> TarShards:
    """Tar shards per bag and topic: ``frames/<bag>/<topic>/shard-00000.tar`` (as `extracted_frames`)."""

    def open_write(stream: str, n: int) -> tuple[str, AbstractContextManager[BinaryIO]]:
        key = f"{stream}/shard-{n:05d}.tar"
        return key, staging.storage.open_write(staging.key(key))

    return TarShards(open_write, max(1, int(shard_mb * 1024 * 1024)))


def _index_row(
    row: dict[str, Any], img: np.ndarray, data_key: str, offset: int, size: int, found: list[Region]
) -> dict[str, Any]:
    kinds = Counter(r.kind for r in found)
    return {
        **{c: row[c] for c in ("drive", "bag", "topic", "stamp_ns", "log_time_ns", "encoding", "format")},
        "frame_key": row["frame_key"],
        "width": int(img.shape[1]),
        "height": int(img.shape[0]),
        "data_key": data_key,
        "offset": int(offset),
        "bytes": int(size),
        "path": "",
        "regions": len(found),
        "faces": kinds["face"],
        "plates": kinds["plate"],
        "models": ",".join(sorted({r.source for r in found})),
    }


def _region_row(r: Region) -> dict[str, Any]:
    d = r.as_dict()
    return {c: d[c] for c in REGION_COLUMNS if c != "frame_key"}


def _preview_tile(
    before: np.ndarray | None, after: np.ndarray, found: list[Region], topic: str
) -> np.ndarray:
    """The anonymized frame with its regions outlined (faces red, plates blue), beside the original if asked."""
    shown = _bgr(after)
    thick = max(1, round(min(shown.shape[:2]) / 300))
    for r in found:
        cv2.rectangle(
            shown, (r.x1, r.y1), (r.x2 - 1, r.y2 - 1), (0, 0, 255) if r.kind == "face" else (255, 0, 0), thick
        )
    tile = shown if before is None else np.hstack([_bgr(before), shown])
    scale = 640 / tile.shape[1]
    small = cv2.resize(tile, (640, max(1, round(tile.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return preview.caption(small, f"{topic}: {len(found)} regions")


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if img.shape[2] == 4 else img.copy()


def _data_version(table: pd.DataFrame, models: dict[str, dict[str, str]]) -> str:
    h = hashlib.sha256(repr(sorted((k, v["sha256"]) for k, v in models.items())).encode())
    h.update(
        pd.util.hash_pandas_object(table[["frame_key", "bytes", "regions"]], index=False).values.tobytes()
    )
    return h.hexdigest()[:16]
