"""Labels a person reviewed in a labelling tool, read back into `reviewed_labels` rows.

Two sources: a SageMaker Ground Truth bounding-box OUTPUT manifest (the documented
``<attribute>`` / ``<attribute>-metadata`` JSON lines) and a COCO file exported from a labelling tool (CVAT,
Label Studio, ...). A frame a person saw and left without boxes is a row with an empty `class_name`: it is
reviewed as empty, so its model boxes must not come back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

REVIEWED_COLUMNS = [
    "drive",
    "frame_key",
    "class_name",  # None: the frame was reviewed and holds no object
    "x1",
    "y1",
    "x2",
    "y2",
    "image_width",
    "image_height",
    "confidence",
    "source",  # sagemaker-gt | coco
    "job",  # labelling job name, or the file it came from
    "human_annotated",
    "reviewed_at",  # when the reviewer's label was made (Ground Truth creation-date, COCO info.date_created)
    "entry",  # where in the file: "line 3" (manifest) or "image 17" (COCO image id)
    "ref",  # how the file names the image: source-ref or file_name
]
GT_BOX_TYPE = "groundtruth/object-detection"


class ReviewedLabelsError(ValueError):
    """A reviewed-labels file that cannot be mapped back onto frames."""


def _frame_lookup(frames: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """file name / source-ref / image path -> (drive, frame_key), from a dataset's `images.parquet`."""
    if frames is None:
        return {}
    out: dict[str, tuple[str, str]] = {}
    for row in frames.to_dict("records"):
        pair = (row["drive"], row["frame_key"])
        for col in ("file_name", "source_ref", "image_path"):
            if isinstance(row.get(col), str):
                out[row[col]] = pair
    return out


def _resolve(
    lookup: dict[str, tuple[str, str]], ref: str, explicit: tuple[Any, Any], where: str, strict: bool
) -> tuple[str | None, str | None]:
    """(drive, frame_key) of an entry; (None, None) for an unknown image when not `strict`."""
    if isinstance(explicit[0], str) and isinstance(explicit[1], str):
        return explicit[0], explicit[1]
    for key in (ref, PurePosixPath(ref).name):
        if key in lookup:
            return lookup[key]
    if not strict:
        return None, None
    raise ReviewedLabelsError(
        f"{where}: image {ref!r} is not a frame of this dataset (pass its images table)"
    )


def _gt_attribute(line: dict[str, Any], attribute: str | None) -> str | None:
    """The bounding-box label attribute of a line: the one asked for, else the newest human-annotated one.

    Our own pre-annotations (human-annotated "no") are never taken for a review unless asked for by name.
    """
    if attribute is not None:
        return attribute if f"{attribute}-metadata" in line else None
    found = [
        (str(meta.get("creation-date", "")), key[: -len("-metadata")])
        for key, meta in line.items()
        if key.endswith("-metadata")
        and isinstance(meta, dict)
        and meta.get("type") == GT_BOX_TYPE
        and meta.get("human-annotated") == "yes"
    ]
    return max(found)[1] if found else None


def reviewed_from_groundtruth(
    manifest: str | Path | Iterable[str],
    frames: pd.DataFrame | None = None,
    label_attribute: str | None = None,
    strict: bool = True,
    name: str | None = None,
) -> pd.DataFrame:
    """Rows of a Ground Truth bounding-box output manifest (a path or its lines).

    Each line names its frame by the `frame-key`/`drive` keys our input manifest carries (Ground Truth passes
    input keys through), else by its `source-ref` looked up in `frames` (a dataset's images table). Lines
    without the label attribute (task expired, worker skipped) are left out. With `strict` False an image
    that cannot be mapped gives rows with no drive and frame key (their `ref` says which image), for a caller
    that maps them itself. `name` names the file in errors when `manifest` is its lines.
    """
    where = name or (str(manifest) if isinstance(manifest, str | Path) else "manifest")
    lines = Path(manifest).read_text().splitlines() if isinstance(manifest, str | Path) else manifest
    lookup = _frame_lookup(frames)
    rows: list[dict[str, Any]] = []
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError as exc:
            raise ReviewedLabelsError(f"{where}:{n}: not a JSON line ({exc})") from exc
        if not isinstance(line, dict):
            raise ReviewedLabelsError(f"{where}:{n}: a manifest line must be a JSON object")
        attr = _gt_attribute(line, label_attribute)
        if attr is None or not isinstance(line.get(attr), dict):
            continue
        label, meta = line[attr], line[f"{attr}-metadata"]
        if meta.get("type", GT_BOX_TYPE) != GT_BOX_TYPE:
            raise ReviewedLabelsError(
                f"{where}:{n}: {attr} is a {meta.get('type')} label, not bounding boxes"
            )
        ref = str(line.get("source-ref", ""))
        explicit = (line.get("drive"), line.get("frame-key"))
        drive, key = _resolve(lookup, ref, explicit, f"{where}:{n}", strict)
        size = (label.get("image_size") or [{}])[0]
        class_map = {str(k): v for k, v in (meta.get("class-map") or {}).items()}
        objects = meta.get("objects") or []
        common = {
            "drive": drive,
            "frame_key": key,
            "image_width": size.get("width"),
            "image_height": size.get("height"),
            "source": "sagemaker-gt",
            "job": str(meta.get("job-name", attr)),
            "human_annotated": meta.get("human-annotated") == "yes",
            "reviewed_at": meta.get("creation-date"),
            "entry": f"line {n}",
            "ref": ref,
        }
        boxes = label.get("annotations") or []
        if not boxes:
            rows.append({**common, "class_name": None, "confidence": None})
        for i, box in enumerate(boxes):
            cid = str(box["class_id"])
            if cid not in class_map:
                raise ReviewedLabelsError(f"{where}:{n}: class_id {cid} is not in the class-map {class_map}")
            if float(box["width"]) <= 0 or float(box["height"]) <= 0:
                raise ReviewedLabelsError(f"{where}:{n}: box {i} ({box}) has no area")
            left, top = float(box["left"]), float(box["top"])
            conf = objects[i].get("confidence") if i < len(objects) else None
            rows.append(
                {
                    **common,
                    "class_name": class_map[cid],
                    "x1": left,
                    "y1": top,
                    "x2": left + float(box["width"]),
                    "y2": top + float(box["height"]),
                    "confidence": None if conf is None else float(conf),
                }
            )
    return pd.DataFrame(rows, columns=REVIEWED_COLUMNS)


def reviewed_from_coco(
    coco: str | Path | dict[str, Any],
    frames: pd.DataFrame | None = None,
    job: str | None = None,
    empty_images_reviewed: bool = True,
    strict: bool = True,
    name: str | None = None,
) -> pd.DataFrame:
    """Rows of a COCO detection file from a labelling tool.

    Images are matched by the `drive`/`frame_key` fields our COCO export adds (kept by tools that keep extra
    fields), else by `file_name` in `frames`. An image without annotations counts as reviewed-empty unless
    `empty_images_reviewed` is False (for exports that list images nobody has looked at yet). `strict`: as
    in `reviewed_from_groundtruth`; `name` names the file (errors, default job) when `coco` is its content.
    """
    where = name or (str(coco) if isinstance(coco, str | Path) else "coco")
    data = json.loads(Path(coco).read_text()) if isinstance(coco, str | Path) else coco
    job = job or (PurePosixPath(where).name if name or isinstance(coco, str | Path) else "coco")
    lookup = _frame_lookup(frames)
    names = {c["id"]: c["name"] for c in data.get("categories", [])}
    created = (data.get("info") or {}).get("date_created")
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    rows: list[dict[str, Any]] = []
    for img in data.get("images", []):
        anns = by_image.get(img["id"], [])
        if not anns and not empty_images_reviewed:
            continue
        explicit = (img.get("drive"), img.get("frame_key"))
        drive, key = _resolve(lookup, img["file_name"], explicit, f"{where}: image {img['id']}", strict)
        common = {
            "drive": drive,
            "frame_key": key,
            "image_width": img.get("width"),
            "image_height": img.get("height"),
            "source": "coco",
            "job": job,
            "human_annotated": True,
            "reviewed_at": created,
            "entry": f"image {img['id']}",
            "ref": img["file_name"],
        }
        if not anns:
            rows.append({**common, "class_name": None, "confidence": None})
        for ann in anns:
            if ann["category_id"] not in names:
                raise ReviewedLabelsError(f"{where}: annotation {ann.get('id')} has unknown category")
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w <= 0 or h <= 0:
                raise ReviewedLabelsError(
                    f"{where}: annotation {ann.get('id')} bbox {ann['bbox']} has no area"
                )
            score = ann.get("score")
            rows.append(
                {
                    **common,
                    "class_name": names[ann["category_id"]],
                    "x1": x,
                    "y1": y,
                    "x2": x + w,
                    "y2": y + h,
                    "confidence": None if score is None else float(score),
                }
            )
    return pd.DataFrame(rows, columns=REVIEWED_COLUMNS)
