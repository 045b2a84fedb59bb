"""What a dataset holds: images and boxes per class per split, and a contact sheet per split to look at."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import pandas as pd

from rosbag_assets.steps.training_dataset.options import SPLITS
from rosbag_assets.vision import preview


def class_stats(images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Rows (split, class_name, images, boxes): images = how many images hold at least one box of the class."""
    joined = boxes.merge(images[["image_id", "split"]], on="image_id")
    rows = []
    for split in SPLITS:
        part = joined[joined["split"] == split]
        for name in class_names:
            cls = part[part["class_name"] == name]
            rows.append(
                {"split": split, "class_name": name, "images": cls["image_id"].nunique(), "boxes": len(cls)}
            )
    return pd.DataFrame(rows, columns=["split", "class_name", "images", "boxes"])


def split_totals(images: pd.DataFrame, boxes: pd.DataFrame) -> dict[str, dict[str, int]]:
    per_image = boxes.groupby("image_id").size()
    out = {}
    for split in SPLITS:
        ids = images.loc[images["split"] == split, "image_id"]
        n_boxes = per_image.reindex(ids).fillna(0)
        out[split] = {
            "images": len(ids),
            "boxes": int(n_boxes.sum()),
            "empty_images": int((n_boxes == 0).sum()),
        }
    return out


def write_previews(
    out_dir: Path, images: pd.DataFrame, boxes: pd.DataFrame, tiles: int, seed: int
) -> dict[str, str]:
    """`preview_<split>.jpg`: up to `tiles` images of the split with their boxes, images with boxes first."""
    written: dict[str, str] = {}
    if tiles <= 0:
        return written
    by_image = dict(tuple(boxes.groupby("image_id"))) if len(boxes) else {}
    for split in SPLITS:
        imgs = images[images["split"] == split]
        if imgs.empty:
            continue
        ids = sorted(
            imgs["image_id"], key=lambda i: (i not in by_image, random.Random(seed * 7919 + i).random())
        )
        picked = imgs.set_index("image_id").loc[ids[:tiles]]
        sheet = []
        for image_id, img in picked.iterrows():
            frame = cv2.imread(str(out_dir / img["image_path"]), cv2.IMREAD_COLOR)
            rows = by_image.get(image_id)
            if rows is not None:
                frame = preview.draw_boxes(frame, rows.to_dict("records"))
            sheet.append(preview.caption(frame, f"{img['drive']} {img['topic']}"))
        rel = f"preview_{split}.jpg"
        (out_dir / rel).write_bytes(preview.jpeg_bytes(preview.contact_sheet(sheet)))
        written[split] = rel
    return written
