"""Label Studio import: tasks with model `predictions` (`label_studio/<split>.json`) and the labelling config.

Boxes are `rectanglelabels` results in percent of the image, as Label Studio stores them. Image URLs are
`source_ref` when the images live on S3 (connect that bucket as cloud storage), otherwise Label Studio's
local-files URL relative to the dataset folder (serve it with LOCAL_FILES_DOCUMENT_ROOT=<dataset folder>).
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd

from rosbag_assets.steps.training_dataset.options import SPLITS

FROM_NAME, TO_NAME = "label", "image"


def label_config(class_names: list[str]) -> str:
    """The labelling interface the tasks' results refer to (`label` on `image`)."""
    labels = "\n".join(f"    <Label value={quoteattr(n)}/>" for n in class_names)
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </RectangleLabels>\n'
        "</View>\n"
    )


def image_url(img: dict) -> str:
    ref = str(img["source_ref"])
    return ref if "://" in ref else f"/data/local-files/?d={img['image_path']}"


def ls_task(img: dict, boxes: pd.DataFrame, model_version: str) -> dict:
    w, h = float(img["width"]), float(img["height"])
    result = [
        {
            "id": f"{img['image_id']}-{n}",
            "type": "rectanglelabels",
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "original_width": int(w),
            "original_height": int(h),
            "image_rotation": 0,
            "value": {
                "x": 100 * b.x1 / w,
                "y": 100 * b.y1 / h,
                "width": 100 * (b.x2 - b.x1) / w,
                "height": 100 * (b.y2 - b.y1) / h,
                "rotation": 0,
                "rectanglelabels": [b.class_name],
            },
            "score": float(b.confidence),
        }
        for n, b in enumerate(boxes.itertuples())
    ]
    task: dict = {"data": {"image": image_url(img), "drive": img["drive"], "frame_key": img["frame_key"]}}
    task["predictions"] = [
        {
            "model_version": model_version,
            "score": float(boxes["confidence"].mean()) if len(boxes) else 0.0,
            "result": result,
        }
    ]
    return task


def write_label_studio(
    out_dir: Path, images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str]
) -> list[str]:
    (out_dir / "label_studio").mkdir(parents=True, exist_ok=True)
    (out_dir / "label_studio" / "label_config.xml").write_text(label_config(class_names))
    written = ["label_studio/label_config.xml"]
    by_image = dict(tuple(boxes.groupby("image_id"))) if len(boxes) else {}
    empty = boxes.iloc[0:0]
    for split in SPLITS:
        imgs = images[images["split"] == split]
        if imgs.empty:
            continue
        tasks = []
        for img in imgs.to_dict("records"):
            rows = by_image.get(img["image_id"], empty)
            version = ",".join(sorted(set(rows["source"]))) if len(rows) else "none"
            tasks.append(ls_task(img, rows, version))
        rel = f"label_studio/{split}.json"
        (out_dir / rel).write_text(json.dumps(tasks))
        written.append(rel)
    return written
