"""COCO detection JSON, one file per split: `coco/<split>.json`, images in `images/<split>/`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from rosbag_assets.steps.training_dataset.options import SPLITS


def coco_dict(images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str], split: str) -> dict:
    """COCO for one split. Category ids start at 1 (0 is background in COCO tools); `drive` and `frame_key`
    on each image let reviewed files from a labelling tool find their frames again."""
    imgs = images[images["split"] == split]
    anns = boxes[boxes["image_id"].isin(imgs["image_id"])]
    return {
        "info": {
            "description": f"rosbag_assets training_dataset ({split})",
            "date_created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(class_names)],
        "images": [
            {
                "id": int(r.image_id),
                "file_name": r.file_name,
                "width": int(r.width),
                "height": int(r.height),
                "drive": r.drive,
                "frame_key": r.frame_key,
            }
            for r in imgs.itertuples()
        ],
        "annotations": [
            {
                "id": n + 1,
                "image_id": int(b.image_id),
                "category_id": int(b.class_id) + 1,
                "bbox": [round(b.x1, 2), round(b.y1, 2), round(b.x2 - b.x1, 2), round(b.y2 - b.y1, 2)],
                "area": round((b.x2 - b.x1) * (b.y2 - b.y1), 2),
                "iscrowd": 0,
            }
            for n, b in enumerate(anns.itertuples())
        ],
    }


def write_coco(out_dir: Path, images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str]) -> list[str]:
    written = []
    for split in SPLITS:
        if not (images["split"] == split).any():
            continue
        rel = f"coco/{split}.json"
        (out_dir / "coco").mkdir(parents=True, exist_ok=True)
        (out_dir / rel).write_text(json.dumps(coco_dict(images, boxes, class_names, split)))
        written.append(rel)
    return written
