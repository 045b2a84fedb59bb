"""`build_dataset`: frames + object labels (+ reviewed labels) -> a split, deduplicated dataset on disk."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rosbag_assets.steps import report
from rosbag_assets.steps.training_dataset.coco import write_coco
from rosbag_assets.steps.training_dataset.cvat import write_cvat
from rosbag_assets.steps.training_dataset.dedupe import DedupeReport, ReadBytes, dedupe_frames
from rosbag_assets.steps.training_dataset.groundtruth import write_groundtruth
from rosbag_assets.steps.training_dataset.label_studio import write_label_studio
from rosbag_assets.steps.training_dataset.options import SPLITS, TrainingDatasetOptions
from rosbag_assets.steps.training_dataset.select import FRAME_KEY, select_boxes
from rosbag_assets.steps.training_dataset.split import SplitReport, assign_splits
from rosbag_assets.steps.training_dataset.stats import class_stats, split_totals, write_previews
from rosbag_assets.steps.training_dataset.yolo import write_yolo

IMAGE_COLUMNS = [
    "image_id",
    "split",
    "file_name",
    "image_path",
    "source_ref",
    "width",
    "height",
    "drive",
    "bag",
    "topic",
    "stamp_ns",
    "frame_key",
    "split_group",
    "reviewed",
    "dedupe_distance",
]


class DatasetOutputError(RuntimeError):
    """The output folder cannot take a dataset (not empty, or a frame file name clashes)."""


@dataclass
class DatasetResult:
    """What was built, where, and the numbers a person checks before training on it."""

    out_dir: Path
    class_names: list[str]
    images: pd.DataFrame  # IMAGE_COLUMNS
    boxes: pd.DataFrame  # image_id + select.BOX_COLUMNS
    split: SplitReport
    dedupe: DedupeReport
    selection: dict[str, int]
    stats: pd.DataFrame  # split, class_name, images, boxes
    totals: dict[str, dict[str, int]]
    files: dict[str, list[str]] = field(default_factory=dict)  # format -> paths relative to out_dir
    previews: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "classes": self.class_names,
            "totals": self.totals,
            "fractions_target": self.split.targets,
            "fractions_achieved": self.split.achieved,
            "split_by": self.split.by,
            "split_method": self.split.method,
            "split_groups": self.split.groups,
            "guard_dropped": self.split.guard_dropped,
            "duplicates_dropped": self.dedupe.dropped,
            "duplicates_dropped_per_topic": self.dedupe.dropped_per_topic,
            "dedupe_threshold": self.dedupe.threshold,
            "selection": self.selection,
            "per_class": self.stats.to_dict("records"),
            "files": self.files,
            "previews": self.previews,
        }

    def metadata(
        self, key: Callable[[str], str] | None = None, storage: report.Writer | None = None
    ) -> dict[str, report.MetadataValue]:
        """Dagster metadata (Pipes wire format) for the materialization.

        `key` maps a file of the folder to its key under the output root once published, and `storage` writes
        there: the previews then show in place at the UI's inline width (`report.picture`), not embedded.
        """
        meta = {
            "images": report.integer(len(self.images)),
            "boxes": report.integer(len(self.boxes)),
            "classes": report.json_value(self.class_names),
            "duplicates_dropped": report.integer(self.dedupe.dropped),
            "guard_dropped": report.integer(self.split.guard_dropped),
            "fractions_achieved": report.json_value({k: round(v, 4) for k, v in self.split.achieved.items()}),
            "per_split": report.table(
                [{"split": s, **t} for s, t in self.totals.items()],
                [("split", "string"), ("images", "int"), ("boxes", "int"), ("empty_images", "int")],
            ),
            "per_class": report.table(
                self.stats.to_dict("records"),
                [("split", "string"), ("class_name", "string"), ("images", "int"), ("boxes", "int")],
            ),
            "formats": report.json_value(sorted(self.files)),
            "elapsed_s": report.number(self.seconds),
        }
        for split, rel in self.previews.items():
            data = (self.out_dir / rel).read_bytes()
            stored = key(rel) if key else None
            meta[f"preview_{split}"] = report.picture(data, f"{split} preview", stored, storage=storage)
        return meta


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def image_file_name(drive: str, frame_key: str, data: bytes) -> str:
    """A flat, unique file name for a frame: drive and frame key with separators as `__`, real extension."""
    ext = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg" if data[:2] == b"\xff\xd8" else None
    if ext is None:
        raise DatasetOutputError(f"frame {frame_key} of drive {drive} is neither JPEG nor PNG")
    return dataset_file_name(drive, frame_key, ext)


def dataset_file_name(drive: str, frame_key: str, ext: str) -> str:
    """The file name a frame gets in every dataset (`ext` ".jpg" or ".png"): how a labelling tool names it."""
    stem = re.sub(r"\.(jpe?g|png)$", "", frame_key, flags=re.IGNORECASE)
    return _UNSAFE.sub("_", f"{drive}__{stem.strip('/').replace('/', '__')}") + ext


def _prepare(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise DatasetOutputError(f"{out_dir} is not empty; a dataset is built into a fresh folder")
    pool = out_dir / "images" / "_pool"
    pool.mkdir(parents=True)
    return pool


def build_dataset(
    frames: pd.DataFrame,
    labels: pd.DataFrame,
    read_bytes: ReadBytes,
    options: TrainingDatasetOptions | dict[str, Any],
    out_dir: str | Path,
    reviewed: pd.DataFrame | None = None,
    log: Callable[[str], None] | None = None,
) -> DatasetResult:
    """Select, deduplicate, split and export a dataset into the empty folder `out_dir`.

    `frames`: a frame index (README `extracted_frames`); `labels`: object label rows (README `object_labels`);
    `read_bytes(row)`: the encoded bytes of an index row (a shard range, a file, anything); `reviewed`:
    `reviewed_labels` rows that replace model rows on their frames. Every frame is read exactly once, on a
    thread pool, so `read_bytes` must be thread-safe (a boto3 client and local files are).
    """
    t0 = time.perf_counter()
    opts = options if isinstance(options, TrainingDatasetOptions) else TrainingDatasetOptions(**options)
    log = log or (lambda _msg: None)
    out_dir = Path(out_dir)
    pool = _prepare(out_dir)
    sel = select_boxes(frames, labels, opts, reviewed)
    log(f"training_dataset: {len(sel.frames)} frames, {len(sel.boxes)} boxes, classes {sel.class_names}")

    names: dict[tuple[str, str], str] = {}

    def keep_file(row: dict[str, Any], data: bytes) -> None:
        name = image_file_name(row["drive"], row["frame_key"], data)
        if (pool / name).exists():
            raise DatasetOutputError(
                f"frames {row['frame_key']} and another of drive {row['drive']} map to {name}"
            )
        (pool / name).write_bytes(data)
        names[(row["drive"], row["frame_key"])] = name

    kept, dedupe = dedupe_frames(sel.frames, read_bytes, opts.dedupe_threshold, sink=keep_file)
    log(f"training_dataset: {dedupe.dropped} near-duplicate frames dropped, {dedupe.kept} kept")
    split_frames, split = assign_splits(
        kept, opts.split_by, opts.block_s, opts.fractions, opts.seed, opts.guard_s, opts.split_method
    )
    images = _place_images(out_dir, pool, split_frames, names, opts.source_ref_prefix)
    boxes = sel.boxes.merge(images[[*FRAME_KEY, "image_id"]], on=FRAME_KEY, how="inner")
    boxes = boxes[["image_id", *sel.boxes.columns]].sort_values(
        ["image_id"], kind="stable", ignore_index=True
    )

    files: dict[str, list[str]] = {}
    writers = {
        "yolo": write_yolo,
        "coco": write_coco,
        "label_studio": write_label_studio,
        "cvat": write_cvat,
        "sagemaker_gt": lambda o, i, b, c: write_groundtruth(o, i, b, c, attribute=opts.gt_label_attribute),
    }
    for fmt in opts.formats:
        files[fmt] = writers[fmt](out_dir, images, boxes, sel.class_names)
    stats = class_stats(images, boxes, sel.class_names)
    result = DatasetResult(
        out_dir=out_dir,
        class_names=sel.class_names,
        images=images,
        boxes=boxes,
        split=split,
        dedupe=dedupe,
        selection=sel.counts,
        stats=stats,
        totals=split_totals(images, boxes),
        files=files,
        previews=write_previews(out_dir, images, boxes, opts.preview_tiles, opts.seed),
    )
    images.to_parquet(out_dir / "images.parquet", index=False)
    boxes.to_parquet(out_dir / "boxes.parquet", index=False)
    result.seconds = time.perf_counter() - t0
    (out_dir / "dataset.json").write_text(
        json.dumps(
            {"options": opts.model_dump(), **result.summary(), "split_report": asdict(split)}, indent=1
        )
    )
    log(f"training_dataset: {result.totals} in {result.seconds:.1f}s")
    return result


def _place_images(
    out_dir: Path,
    pool: Path,
    frames: pd.DataFrame,
    names: dict[tuple[str, str], str],
    source_ref_prefix: str | None,
) -> pd.DataFrame:
    """Move kept files from the pool into `images/<split>/`, delete guard-dropped ones, build the images table."""
    frames = frames.sort_values(["split", "drive", "topic", "stamp_ns"], kind="stable", ignore_index=True)
    rows = []
    for n, row in enumerate(frames.to_dict("records"), 1):
        name = names.pop((row["drive"], row["frame_key"]))
        rel = f"images/{row['split']}/{name}"
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (pool / name).replace(out_dir / rel)
        ref = (
            f"{source_ref_prefix.rstrip('/')}/{rel}" if source_ref_prefix else str((out_dir / rel).resolve())
        )
        rows.append(
            {
                **{c: row.get(c) for c in IMAGE_COLUMNS},
                "image_id": n,
                "file_name": name,
                "image_path": rel,
                "source_ref": ref,
                "width": int(row["image_width"]),
                "height": int(row["image_height"]),
            }
        )
    shutil.rmtree(pool)  # what is left was dropped by the split guard
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


__all__ = [
    "SPLITS",
    "DatasetOutputError",
    "DatasetResult",
    "build_dataset",
    "dataset_file_name",
    "image_file_name",
]
