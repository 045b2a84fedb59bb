"""Where a reviewed-labels file may be read from, how it is parsed, and how its entries map onto frames."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import PurePosixPath

import pandas as pd

from rosbag_assets.io.storage import OutsideRootError, Storage, parse_s3_uri, redact, storage_from_uri
from rosbag_assets.steps.reviewed_labels.options import REVIEWS_PREFIX, ReviewedLabelsOptions
from rosbag_assets.steps.training_dataset.build import dataset_file_name
from rosbag_assets.steps.training_dataset.reviewed import (
    ReviewedLabelsError,
    reviewed_from_coco,
    reviewed_from_groundtruth,
)


def resolve_file(file: str, roots: list[str], endpoint_url: str | None = None) -> tuple[Storage, str]:
    """(storage of the root holding `file`, key of `file` in it); `OutsideRootError` for any other file.

    A relative path is a key under the first root (the output root). Local paths are compared after
    normalisation, and the storage refuses a key that is a symbolic link leading out of its root.
    """
    roots = [r for r in roots if r]
    if not roots:
        raise OutsideRootError(f"{redact(file)}: no root is configured to import reviewed labels from")
    if file.startswith("s3://"):
        bucket, key = parse_s3_uri(file)
        if ".." in key.split("/"):  # S3 keeps '..' literally, but every tool around it resolves it
            raise OutsideRootError(f"{redact(file)} has a '..' segment; it is not read")
        for root in (r for r in roots if r.startswith("s3://")):
            rbucket, prefix = parse_s3_uri(root)
            if rbucket == bucket and (not prefix or key.startswith(prefix + "/")):
                return storage_from_uri(root, endpoint_url=endpoint_url), key[len(prefix) :].lstrip("/")
    elif "://" in file and not file.startswith("file://"):
        raise ValueError(f"{redact(file)}: use s3://bucket/key or a local path")
    else:
        path = file.removeprefix("file://")
        if not os.path.isabs(path):
            key = os.path.normpath(path)
            if key == ".." or key.startswith("../"):
                raise OutsideRootError(f"{redact(file)} leads out of the output root; it is not read")
            return storage_from_uri(roots[0], endpoint_url=endpoint_url), key
        path = os.path.normpath(path)
        for root in (r for r in roots if "://" not in r or r.startswith("file://")):
            local = root.removeprefix("file://")
            for base in {os.path.normpath(os.path.abspath(local)), os.path.realpath(local)}:
                if path.startswith(base.rstrip("/") + "/"):
                    return storage_from_uri(local), os.path.relpath(path, base)
    shown = ", ".join(redact(r) for r in roots)
    raise OutsideRootError(f"{redact(file)} is not under the configured roots ({shown}); it is not read")


def parse_file(data: bytes, where: str, opts: ReviewedLabelsOptions) -> tuple[pd.DataFrame, str]:
    """Reviewed rows of the file (images not yet mapped onto frames have no drive) and its format."""
    text = data.decode("utf-8-sig")
    fmt = opts.format
    if fmt == "auto":
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None
        fmt = "coco" if isinstance(whole, dict) and "images" in whole else "sagemaker_gt"
    if fmt == "coco":
        try:
            coco = json.loads(text)
        except ValueError as exc:
            raise ReviewedLabelsError(f"{where}: not a COCO JSON file ({exc})") from exc
        rows = reviewed_from_coco(
            coco, job=opts.job, empty_images_reviewed=opts.empty_images_reviewed, strict=False, name=where
        )
    else:
        rows = reviewed_from_groundtruth(
            text.splitlines(), label_attribute=opts.label_attribute, strict=False, name=where
        )
        if opts.job:
            rows["job"] = opts.job
    if rows.empty:
        raise ReviewedLabelsError(f"{where}: holds no reviewed bounding boxes ({fmt})")
    return rows, fmt


def frame_names(drive: str, index: pd.DataFrame) -> dict[str, str]:
    """Every name a labelling tool may give a frame of this drive -> its frame key."""
    names: dict[str, str] = {}
    for key in index["frame_key"]:
        names[key] = key
        for ext in (".jpg", ".png"):
            names[dataset_file_name(drive, key, ext)] = key
    return names


def assign_to_drive(
    rows: pd.DataFrame, drive: str, index: pd.DataFrame, known_drives: list[str], where: str
) -> tuple[pd.DataFrame, Counter[str]]:
    """This drive's rows, every one on a frame of `index`; and how many rows name each other drive.

    An entry that names neither a frame of this drive nor (by its drive or dataset file name) another
    known drive is an error naming the file and the entry: a review is never dropped silently.
    """
    rows = rows.copy()
    names = frame_names(drive, index)
    others = sorted((d for d in known_drives if d != drive), key=len, reverse=True)
    for i in rows.index[rows["drive"].isna()]:
        ref = str(rows.at[i, "ref"])
        base = PurePosixPath(ref).name
        key = names.get(ref) or names.get(base)
        owner = drive if key else next((d for d in others if base.startswith(f"{d}__")), None)
        if owner is None:
            raise ReviewedLabelsError(
                f"{where}, {rows.at[i, 'entry']}: image {ref!r} is not a frame of drive {drive} "
                "(nor named like a frame of another drive)"
            )
        rows.at[i, "drive"], rows.at[i, "frame_key"] = owner, key
    unknown = rows[~rows["drive"].isin([drive, *others])]
    if len(unknown):
        first = unknown.iloc[0]
        raise ReviewedLabelsError(
            f"{where}, {first['entry']}: names drive {first['drive']!r}, which has no outputs here"
        )
    mine = rows[rows["drive"] == drive]
    other = Counter(rows.loc[rows["drive"] != drive, "drive"])
    if mine.empty:
        raise ReviewedLabelsError(
            f"{where}: no entry is about drive {drive} (its entries name drives {sorted(other)})"
        )
    known = set(index["frame_key"])
    bad = mine[~mine["frame_key"].isin(known)]
    if len(bad):
        first = bad.iloc[0]
        raise ReviewedLabelsError(
            f"{where}, {first['entry']}: frame {first['frame_key']!r} is not a frame of drive {drive}'s "
            f"current extracted_frames ({len(bad)} such rows)"
        )
    sizes = index.drop_duplicates("frame_key").set_index("frame_key")[["width", "height"]]
    mine = mine.copy()
    for col, src in (("image_width", "width"), ("image_height", "height")):
        fill = mine["frame_key"].map(sizes[src])
        mine[col] = pd.to_numeric(mine[col], errors="coerce").fillna(fill).astype(int)
    outside = mine["class_name"].notna() & (
        (mine["x1"] >= mine["image_width"])
        | (mine["y1"] >= mine["image_height"])
        | (mine["x2"] <= 0)
        | (mine["y2"] <= 0)
    )
    if outside.any():
        first = mine[outside].iloc[0]
        raise ReviewedLabelsError(
            f"{where}, {first['entry']}: box {first[['x1', 'y1', 'x2', 'y2']].tolist()} lies outside its "
            f"{first['image_width']}x{first['image_height']} image"
        )
    return mine.reset_index(drop=True), other


def is_review_file(key: str) -> bool:
    """A file the import sensor picks up: a Ground Truth job's output manifest anywhere under ``reviews/``,
    or a COCO JSON under ``reviews/coco/`` (Ground Truth also writes worker-response JSON, never imported)."""
    parts = PurePosixPath(key).parts
    if not parts or parts[0] != REVIEWS_PREFIX:
        return False
    if key.endswith("/manifests/output/output.manifest"):
        return True
    return len(parts) > 2 and parts[1] == "coco" and key.endswith(".json")


def drives_named_in(data: bytes, where: str, known_drives: list[str]) -> list[str]:
    """The known drives a reviewed-labels file has entries about (by its `drive` fields or by dataset file
    names), so a sensor can request one import per drive."""
    rows, _ = parse_file(data, where, ReviewedLabelsOptions(file=where))
    named = set(rows["drive"].dropna().astype(str))
    by_length = sorted(known_drives, key=len, reverse=True)
    for ref in rows.loc[rows["drive"].isna(), "ref"].astype(str):
        base = PurePosixPath(ref).name
        owner = next((d for d in by_length if base.startswith(f"{d}__")), None)
        if owner:
            named.add(owner)
    return sorted(named & set(known_drives))
