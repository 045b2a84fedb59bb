"""CVAT for images 1.1 XML (`cvat/<split>.xml`): upload as a task's annotations ("CVAT 1.1" import)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from rosbag_assets.steps.training_dataset.options import SPLITS
from rosbag_assets.vision.preview import class_colour


def _colour(class_id: int) -> str:
    b, g, r = class_colour(class_id)
    return f"#{r:02x}{g:02x}{b:02x}"


def cvat_xml(images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str], split: str) -> ET.Element:
    """One split as CVAT 1.1: `meta/task/labels` and an `<image>` per frame (ids from 0, boxes source=auto)."""
    imgs = images[images["split"] == split].reset_index(drop=True)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    ET.SubElement(task, "name").text = f"training_dataset {split}"
    ET.SubElement(task, "size").text = str(len(imgs))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    for i, name in enumerate(class_names):
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "color").text = _colour(i)
        ET.SubElement(label, "type").text = "rectangle"
        ET.SubElement(label, "attributes")
    ET.SubElement(meta, "dumped").text = dt.datetime.now(dt.UTC).isoformat(sep=" ", timespec="seconds")
    by_image = dict(tuple(boxes.groupby("image_id"))) if len(boxes) else {}
    for n, img in enumerate(imgs.itertuples()):
        el = ET.SubElement(
            root,
            "image",
            id=str(n),
            name=img.file_name,
            width=str(int(img.width)),
            height=str(int(img.height)),
        )
        rows = by_image.get(img.image_id)
        for b in rows.itertuples() if rows is not None else ():
            ET.SubElement(
                el,
                "box",
                label=b.class_name,
                source="auto",
                occluded="0",
                xtl=f"{b.x1:.2f}",
                ytl=f"{b.y1:.2f}",
                xbr=f"{b.x2:.2f}",
                ybr=f"{b.y2:.2f}",
                z_order="0",
            )
    ET.indent(root)
    return root


def write_cvat(out_dir: Path, images: pd.DataFrame, boxes: pd.DataFrame, class_names: list[str]) -> list[str]:
    written = []
    for split in SPLITS:
        if not (images["split"] == split).any():
            continue
        rel = f"cvat/{split}.xml"
        (out_dir / "cvat").mkdir(parents=True, exist_ok=True)
        ET.ElementTree(cvat_xml(images, boxes, class_names, split)).write(
            out_dir / rel, encoding="utf-8", xml_declaration=True
        )
        written.append(rel)
    return written
