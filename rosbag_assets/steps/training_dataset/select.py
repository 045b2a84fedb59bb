"""Which frames and boxes go into a dataset: drives, topics, classes (after mapping), confidence, reviews."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rosbag_assets.steps.training_dataset.options import TrainingDatasetOptions
from rosbag_assets.steps.training_dataset.reviewed import REVIEWED_COLUMNS

COLOUR_FORMATS = {"jpg", "jpeg", "png"}
DEPTH_ENCODINGS = {"16UC1", "32FC1", "mono16", "16SC1"}
FRAME_KEY = ["drive", "frame_key"]
BOX_COLUMNS = [*FRAME_KEY, "class_id", "class_name", "x1", "y1", "x2", "y2", "confidence", "source"]
MIN_BOX_PX = 1.0  # boxes thinner than this after clipping to the image carry no signal


class DatasetInputError(ValueError):
    """A frame index or label table that cannot be used (missing columns, unknown drives)."""


@dataclass
class Selection:
    """The frames and boxes chosen for a dataset, and how many rows each rule removed."""

    frames: pd.DataFrame  # frame index rows (+ image_width, image_height, n_boxes, reviewed)
    boxes: pd.DataFrame  # BOX_COLUMNS, pixels of the stored frame
    class_names: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetInputError(f"{what} lacks columns {missing} (has {list(df.columns)})")


def with_image_size(frames: pd.DataFrame) -> pd.DataFrame:
    """The frame index with `image_width`/`image_height` (the extracted index calls them width/height)."""
    out = frames.copy()
    if "image_width" not in out and "width" in out:
        out["image_width"] = out["width"]
    if "image_height" not in out and "height" in out:
        out["image_height"] = out["height"]
    _require(out, [*FRAME_KEY, "topic", "stamp_ns", "image_width", "image_height"], "frame index")
    return out


def select_frames(frames: pd.DataFrame, options: TrainingDatasetOptions) -> pd.DataFrame:
    """Colour frames of the chosen drives and topics (a pre-filtered index is used as it is otherwise)."""
    chosen = with_image_size(frames)
    if "format" in chosen:
        chosen = chosen[chosen["format"].astype(str).str.lower().isin(COLOUR_FORMATS)]
    if "encoding" in chosen:
        chosen = chosen[~chosen["encoding"].isin(DEPTH_ENCODINGS)]
    if options.drives is not None:
        unknown = sorted(set(options.drives) - set(chosen["drive"]))
        if unknown:
            raise DatasetInputError(f"drives {unknown} have no colour frames in the frame index")
        chosen = chosen[chosen["drive"].isin(options.drives)]
    if options.topics is not None:
        chosen = chosen[chosen["topic"].isin(options.topics)]
    if chosen.duplicated(FRAME_KEY).any():
        dup = chosen[chosen.duplicated(FRAME_KEY)].iloc[0]
        raise DatasetInputError(f"frame index lists frame {dup['frame_key']} of drive {dup['drive']} twice")
    return chosen.reset_index(drop=True)


def merge_reviewed(labels: pd.DataFrame, reviewed: pd.DataFrame | None) -> tuple[pd.DataFrame, set[tuple]]:
    """Model rows, except on frames somebody reviewed: there only the reviewed rows count.

    Reviewed rows with no class (a frame reviewed as empty) mark the frame and are dropped here. Returns the
    merged rows (with `source`) and the (drive, frame_key) pairs that were reviewed.
    """
    model = labels.copy()
    model["source"] = "model:" + (model["model"].astype(str) if "model" in model else "unknown")
    model["reviewed"] = False
    if reviewed is None or reviewed.empty:
        return model, set()
    _require(reviewed, REVIEWED_COLUMNS, "reviewed labels")
    done = set(zip(reviewed["drive"], reviewed["frame_key"], strict=True))
    keep = [pair not in done for pair in zip(model["drive"], model["frame_key"], strict=True)]
    rows = reviewed[reviewed["class_name"].notna()].copy()
    rows["source"] = "reviewed:" + rows["source"].astype(str) + ":" + rows["job"].astype(str)
    rows["confidence"] = rows["confidence"].fillna(1.0)
    rows["reviewed"] = True
    return pd.concat([model[np.asarray(keep, bool)], rows], ignore_index=True), done


def select_boxes(
    frames: pd.DataFrame,
    labels: pd.DataFrame,
    options: TrainingDatasetOptions,
    reviewed: pd.DataFrame | None = None,
) -> Selection:
    """Boxes of the kept classes on the chosen frames, in the stored frames' pixels, and the frames to use."""
    _require(labels, [*FRAME_KEY, "class_name", "confidence", "x1", "y1", "x2", "y2"], "object labels")
    frames = select_frames(frames, options)
    small = (frames[["image_width", "image_height"]].min(axis=1) < options.min_image_side).to_numpy()
    frames = frames[~small].reset_index(drop=True)
    merged, reviewed_frames = merge_reviewed(labels, reviewed if options.use_reviewed else None)
    counts = {
        "label_rows": len(labels),
        "reviewed_frames": len(reviewed_frames),
        "too_small_frames": int(small.sum()),
    }

    counts["model_rows_replaced_by_review"] = len(labels) - int((~merged["reviewed"]).sum())
    sizes = frames[[*FRAME_KEY, "image_width", "image_height"]]
    merged = merged.rename(columns={"image_width": "label_width", "image_height": "label_height"})
    before = len(merged)
    merged = merged.merge(sizes, on=FRAME_KEY, how="inner")
    counts["rows_on_other_frames"] = before - len(merged)
    if (
        "label_width" in merged and "label_height" in merged
    ):  # labelled on another size: scale into the stored
        sx = (merged["image_width"] / merged["label_width"]).where(merged["label_width"] > 0).fillna(1.0)
        sy = (merged["image_height"] / merged["label_height"]).where(merged["label_height"] > 0).fillna(1.0)
        merged[["x1", "x2"]] = merged[["x1", "x2"]].mul(sx, axis=0)
        merged[["y1", "y2"]] = merged[["y1", "y2"]].mul(sy, axis=0)

    merged["class_name"] = merged["class_name"].map(lambda n: options.class_map.get(n, n))
    low = (~merged["reviewed"]) & (merged["confidence"] < options.min_confidence)
    counts["below_confidence"] = int(low.sum())
    merged = merged[~low]
    class_names = list(options.classes) if options.classes is not None else sorted(set(merged["class_name"]))
    other = ~merged["class_name"].isin(class_names)
    counts["other_classes"] = int(other.sum())
    merged = merged[~other].copy()

    for a, b, size in (("x1", "x2", "image_width"), ("y1", "y2", "image_height")):
        merged[a] = merged[a].clip(lower=0, upper=merged[size])
        merged[b] = merged[b].clip(lower=0, upper=merged[size])
    thin = ((merged["x2"] - merged["x1"]) < MIN_BOX_PX) | ((merged["y2"] - merged["y1"]) < MIN_BOX_PX)
    counts["degenerate_boxes"] = int(thin.sum())
    merged = merged[~thin]
    merged["class_id"] = merged["class_name"].map({n: i for i, n in enumerate(class_names)}).astype(int)
    boxes = merged[BOX_COLUMNS].reset_index(drop=True)

    per_frame = boxes.groupby(FRAME_KEY).size().rename("n_boxes")
    frames = frames.merge(per_frame, left_on=FRAME_KEY, right_index=True, how="left")
    frames["n_boxes"] = frames["n_boxes"].fillna(0).astype(int)
    pairs = list(zip(frames["drive"], frames["frame_key"], strict=True))
    frames["reviewed"] = [p in reviewed_frames for p in pairs]
    if not options.keep_empty:  # an unlabelled frame is not known to be empty, unless a person said so
        frames = frames[(frames["n_boxes"] > 0) | frames["reviewed"]]
    counts["frames"] = len(frames)
    counts["boxes"] = len(boxes)
    return Selection(frames.reset_index(drop=True), boxes, class_names, counts)
