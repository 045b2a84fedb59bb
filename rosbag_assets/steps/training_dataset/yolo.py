"""Ultralytics YOLO detection layout: `data.yaml`, `images/<split>/`, `labels/<split>/<stem>.txt`."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

from rosbag_assets.steps.training_dataset.options import SPLITS


def yolo_lines(boxes: pd.DataFrame, width: int, height: int) -> list[str]:
    """`class cx cy w h` rows, normalised to the image (what Ultralytics reads)."""
    out = []
    for b in boxes.itertuples():
        cx, cy = (b.x1 + b.x2) / 2 / width, (b.y1 + b.y2) / 2 / height
        w, h = (b.x2 - b.x1) / width, (b.y2 - b.y1) / height
        out.append(f"{int(b.class_id)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return out


def write_yolo(out_dir: Path, images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str]) -> list[str]:
    """One label file per image (empty for background images) and `data.yaml` with the splits that have images.

    `data.yaml` has no `path`: Ultralytics then resolves the splits next to the file, so the folder can be
    moved or downloaded anywhere.
    """
    by_image = dict(tuple(boxes.groupby("image_id"))) if len(boxes) else {}
    for img in images.itertuples():
        rel = PurePosixPath("labels", img.split, PurePosixPath(img.file_name).stem + ".txt")
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        rows = by_image.get(img.image_id)
        lines = yolo_lines(rows, int(img.width), int(img.height)) if rows is not None else []
        target.write_text("".join(line + "\n" for line in lines))
    present = [s for s in SPLITS if (images["split"] == s).any()]
    config = {s: f"images/{s}" for s in present}
    config["nc"] = len(class_names)
    config["names"] = dict(enumerate(class_names))
    (out_dir / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return ["data.yaml", *(f"labels/{s}/" for s in present)]
