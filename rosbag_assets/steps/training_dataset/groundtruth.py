"""SageMaker Ground Truth input manifest with model boxes as pre-annotations (`sagemaker_gt/<split>.manifest`).

Each JSON line carries `source-ref` and the boxes in Ground Truth's own bounding-box OUTPUT format under the
label attribute (default `prelabels`, `human-annotated: no`), which is what a label adjustment or
verification job reads. `drive` and `frame-key` ride along: Ground Truth passes input keys through to its
output manifest, so `reviewed.reviewed_from_groundtruth` maps reviewed boxes back onto frames.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from rosbag_assets.steps.training_dataset.options import SPLITS

GT_BOX_TYPE = "groundtruth/object-detection"


def gt_line(
    img: dict, boxes: pd.DataFrame, class_names: list[str], attribute: str, job_name: str, created: str
) -> dict:
    annotations, objects = [], []
    for b in boxes.itertuples():
        annotations.append(
            {
                "class_id": int(b.class_id),
                "left": round(b.x1),
                "top": round(b.y1),
                "width": max(1, round(b.x2 - b.x1)),
                "height": max(1, round(b.y2 - b.y1)),
            }
        )
        objects.append({"confidence": round(float(b.confidence), 4)})
    return {
        "source-ref": img["source_ref"],
        "drive": img["drive"],
        "frame-key": img["frame_key"],
        attribute: {
            "image_size": [{"width": int(img["width"]), "height": int(img["height"]), "depth": 3}],
            "annotations": annotations,
        },
        f"{attribute}-metadata": {
            "objects": objects,
            "class-map": {str(i): n for i, n in enumerate(class_names)},
            "type": GT_BOX_TYPE,
            "human-annotated": "no",
            "creation-date": created,
            "job-name": job_name,
        },
    }


def write_groundtruth(
    out_dir: Path,
    images: pd.DataFrame,
    boxes: pd.DataFrame,
    class_names: list[str],
    attribute: str = "prelabels",
    job_name: str = "rosbag-assets-model-labels",
) -> list[str]:
    if attribute.endswith(("-metadata", "-ref")):
        raise ValueError(f"Ground Truth label attribute {attribute!r} may not end in -metadata or -ref")
    created = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
    by_image = dict(tuple(boxes.groupby("image_id"))) if len(boxes) else {}
    empty = boxes.iloc[0:0]
    written = []
    for split in SPLITS:
        imgs = images[images["split"] == split]
        if imgs.empty:
            continue
        rel = f"sagemaker_gt/{split}.manifest"
        (out_dir / "sagemaker_gt").mkdir(parents=True, exist_ok=True)
        with open(out_dir / rel, "w") as f:
            for img in imgs.to_dict("records"):
                line = gt_line(
                    img, by_image.get(img["image_id"], empty), class_names, attribute, job_name, created
                )
                f.write(json.dumps(line) + "\n")
        written.append(rel)
    return written
