"""`reviewed_labels`: a drive's boxes as people reviewed them in a labelling tool, imported from the tool's file.

The file is a SageMaker Ground Truth bounding-box OUTPUT manifest (an adjustment or verification job writes it
to ``<S3OutputPath>/<job>/manifests/output/output.manifest``) or a COCO JSON exported by a labelling tool (CVAT,
Label Studio, ...). It is read only from under the configured roots (the output root, the landing root):
anything else is refused, never opened. Every entry about this drive must name a frame of the drive's current
`extracted_frames`, else nothing is published and the error names the file and the entry; entries about other
drives are left to those drives' imports (one file often covers a dataset's many drives).

A new version keeps the earlier reviews of the frames this file does not cover, so importing job after job
accumulates and a frame's newest review wins. `training_dataset` reads the current version and prefers it to
the model's boxes on every frame it covers (a frame reviewed as empty loses its model boxes).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from pathlib import PurePosixPath
from typing import Any, Literal

import cv2
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import (
    OutsideRootError,
    Storage,
    join_key,
    parse_s3_uri,
    redact,
    storage_from_uri,
)
from rosbag_assets.steps import report
from rosbag_assets.steps.training_dataset.build import dataset_file_name
from rosbag_assets.steps.training_dataset.reviewed import (
    REVIEWED_COLUMNS,
    ReviewedLabelsError,
    reviewed_from_coco,
    reviewed_from_groundtruth,
)
from rosbag_assets.vision import preview

ASSET = "reviewed_labels"
ROW_COLUMNS = [*REVIEWED_COLUMNS, "labeling_job_arn", "import_file", "imported_at"]
MODEL_COLOUR = (0, 140, 255)  # BGR orange: the model's boxes
REVIEW_COLOUR = (60, 200, 40)  # BGR green: the reviewer's boxes


class ReviewedLabelsOptions(BaseModel):
    """Which reviewed-labels file to import and how to read it (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(
        description="The reviewed labels: a Ground Truth output manifest or a COCO JSON, as s3://bucket/key or "
        "a local path under the output or landing root; a relative path is a key under the output root."
    )
    format: Literal["auto", "sagemaker_gt", "coco"] = Field(
        default="auto", description="auto: a JSON object with `images` is COCO, JSON lines are Ground Truth."
    )
    label_attribute: str | None = Field(
        default=None,
        description="Ground Truth label attribute holding the reviewed boxes; default: the newest "
        "human-annotated bounding-box attribute of each line.",
    )
    labeling_job_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:labeling-job/[A-Za-z0-9-]{1,63}$",
        description="The Ground Truth labeling job's ARN, recorded with every row (the manifest names only "
        "the job).",
    )
    job: str | None = Field(
        default=None,
        description="Name of the review job; default: Ground Truth's job-name, or the COCO file's name.",
    )
    empty_images_reviewed: bool = Field(
        default=True,
        description="COCO: an image without boxes was looked at and holds nothing (false: nobody looked).",
    )
    replace: bool = Field(
        default=False, description="Drop earlier imports instead of keeping their reviews of other frames."
    )
    preview_frames: int = Field(default=6, ge=0, le=24, description="Frames drawn in the preview picture.")


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


REVIEWS_PREFIX = "reviews"  # under the output root: where the sensor looks for files to import


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


def run_reviewed_labels(
    *,
    drive: str,
    output: Storage,
    roots: list[str] | None = None,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.StepLog | None = None,
    endpoint_url: str | None = None,
) -> report.StepResult:
    """Import the configured file's reviews of `drive` and publish ``<drive>/reviewed_labels``."""
    log = log or report.default_log()
    opts = ReviewedLabelsOptions.model_validate(dict(options or {}))
    t0 = time.perf_counter()
    store, key = resolve_file(opts.file, roots or [output.root_uri], endpoint_url)
    where = redact(store.uri(key))
    try:
        data = store.read_bytes(key)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: reviewed labels file not found") from exc
    rows, fmt = parse_file(data, where, opts)
    frames_version, index = frames.committed_frames(output, drive)
    mine, other = assign_to_drive(rows, drive, index, output.list_dirs(""), where)
    if other:
        log.info(f"{where}: {sum(other.values())} rows of other drives left to them: {dict(other)}")
    imported_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    mine = mine.assign(labeling_job_arn=opts.labeling_job_arn, import_file=where, imported_at=imported_at)
    mine = mine[ROW_COLUMNS]

    prefix = join_key(drive, ASSET)
    previous = publish.current(output, prefix)
    kept = pd.DataFrame(columns=ROW_COLUMNS)
    if previous is not None and not opts.replace:
        old = publish.Version(output, prefix, previous["version"]).read_parquet("reviewed.parquet")
        kept = old[~old["frame_key"].isin(set(mine["frame_key"]))]
    table = pd.concat([df for df in (kept, mine) if len(df)], ignore_index=True)[ROW_COLUMNS]
    table = table.sort_values(["frame_key", "imported_at"], kind="stable", ignore_index=True)

    model = _model_labels(output, drive)
    sheet = _preview(output, drive, mine, model, opts.preview_frames)
    draft = publish.begin(output, prefix, run_id)
    draft.write_parquet("reviewed.parquet", table)
    draft.write_bytes(f"source/{PurePosixPath(key).name}", data)
    draft.write_bytes("preview.jpg", sheet)
    boxes = mine[mine["class_name"].notna()]
    jobs = sorted(set(mine["job"].astype(str)))
    this_import = {
        "file": where,
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": fmt,
        "jobs": jobs,
        "labeling_job_arn": opts.labeling_job_arn,
        "imported_at": imported_at,
        "frames": int(mine["frame_key"].nunique()),
        "boxes": len(boxes),
    }
    imports = [] if previous is None or opts.replace else list(previous.get("imports", []))
    uri = draft.commit(
        {
            "drive": drive,
            "frames_version": frames_version.version,
            "imports": [*imports, this_import],
            "frames": int(table["frame_key"].nunique()),
            "rows": len(table),
        }
    )
    on_reviewed = model[model["frame_key"].isin(set(mine["frame_key"]))] if len(model) else model
    log.info(f"committed reviews of {this_import['frames']} frames of {drive} from {where} at {uri}")
    per_class = Counter(boxes["class_name"])
    metadata = {
        "frames_reviewed": report.integer(this_import["frames"]),
        "boxes_reviewed": report.integer(len(boxes)),
        "frames_reviewed_empty": report.integer(
            int(mine.groupby("frame_key")["class_name"].apply(lambda s: s.isna().all()).sum())
        ),
        "model_boxes_on_reviewed_frames": report.integer(len(on_reviewed)),
        "frames_reviewed_total": report.integer(int(table["frame_key"].nunique())),
        "rows_of_other_drives": report.json_value(dict(other)),
        "per_class": report.table(
            [{"class_name": c, "boxes": n} for c, n in sorted(per_class.items())],
            [("class_name", "string"), ("boxes", "int")],
        ),
        "file": report.uri_value(where),
        "format": report.text(fmt),
        "jobs": report.json_value(jobs),
        "labeling_job_arn": report.text(opts.labeling_job_arn or ""),
        "reviewed_at": report.text(str(max(mine["reviewed_at"].dropna().astype(str), default=""))),
        "imports": report.integer(len(imports) + 1),
        "frames_version": report.text(frames_version.version),
        "reviewed_uri": report.uri_value(draft.uri("reviewed.parquet")),
        "preview": report.picture(
            sheet, f"{drive}: reviewed (green) vs model (orange)", draft.key("preview.jpg")
        ),
        "elapsed_s": report.number(time.perf_counter() - t0, digits=2),
        **report.publication(uri, []),
    }
    digest = pd.util.hash_pandas_object(
        table[["frame_key", "class_name", "x1", "y1", "x2", "y2"]], index=False
    )
    return report.StepResult(
        metadata=metadata, data_version=hashlib.sha256(digest.values.tobytes()).hexdigest()[:16]
    )


def read_current(output: Storage, drive: str) -> tuple[pd.DataFrame, str] | None:
    """The drive's current reviewed rows and their version, or None when nothing was imported."""
    manifest = publish.current(output, join_key(drive, ASSET))
    if manifest is None:
        return None
    version = publish.Version(output, join_key(drive, ASSET), manifest["version"])
    return version.read_parquet("reviewed.parquet"), version.version


def _model_labels(output: Storage, drive: str) -> pd.DataFrame:
    manifest = publish.current(output, join_key(drive, "object_labels"))
    if manifest is None:
        return pd.DataFrame(columns=["frame_key", "class_name", "x1", "y1", "x2", "y2"])
    return publish.Version(output, join_key(drive, "object_labels"), manifest["version"]).read_parquet(
        "labels.parquet"
    )


def _changed(reviewed: pd.DataFrame, model: pd.DataFrame) -> int:
    """How many boxes differ between a frame's review and its model labels (same class, IoU >= 0.9 match)."""
    rev = reviewed[reviewed["class_name"].notna()]
    unmatched = list(model.itertuples())
    matched = 0
    for r in rev.itertuples():
        for j, m in enumerate(unmatched):
            ix = max(0.0, min(r.x2, m.x2) - max(r.x1, m.x1)) * max(0.0, min(r.y2, m.y2) - max(r.y1, m.y1))
            union = (r.x2 - r.x1) * (r.y2 - r.y1) + (m.x2 - m.x1) * (m.y2 - m.y1) - ix
            if r.class_name == m.class_name and union > 0 and ix / union >= 0.9:
                matched += 1
                del unmatched[j]
                break
    return len(rev) + len(model) - 2 * matched


def _preview(output: Storage, drive: str, mine: pd.DataFrame, model: pd.DataFrame, n: int) -> bytes:
    """The reviewed frames that changed most: model boxes thin orange, reviewed boxes green.

    Drawn on the anonymized frames when they exist (the picture shows in the UI), else on the extracted ones.
    """
    source = "anonymized_frames" if publish.current(output, join_key(drive, "anonymized_frames")) else None
    if source:
        version, _ = publish.require_current(output, join_key(drive, source))
        index = version.read_parquet("index.parquet")
    else:
        version, index = frames.committed_frames(output, drive)
    rows = index.drop_duplicates("frame_key").set_index("frame_key")
    by_frame = dict(tuple(model.groupby("frame_key"))) if len(model) else {}
    empty = model.iloc[0:0]
    ranked = sorted(
        ((-_changed(g, by_frame.get(k, empty)), k) for k, g in mine.groupby("frame_key") if k in rows.index),
    )
    tiles = []
    for _, key in ranked[:n]:
        row = {"frame_key": key, **rows.loc[key].to_dict()}
        img = preview.thumbnail(frames.read_frame_bytes(output, version, row))
        rev = mine[(mine["frame_key"] == key) & mine["class_name"].notna()]
        mod = by_frame.get(key, empty)
        for boxes, colour, width in ((mod, MODEL_COLOUR, 1), (rev, REVIEW_COLOUR, 2)):
            _draw(img, boxes, colour, width)
        tiles.append(preview.caption(img, f"reviewed {len(rev)} (green) vs model {len(mod)}"))
    return preview.jpeg_bytes(preview.contact_sheet(tiles))


def _draw(img: np.ndarray, boxes: pd.DataFrame, colour: tuple[int, int, int], width: int) -> None:
    """Boxes (in their label image's pixels) onto the stored frame `img`, scaled if the sizes differ."""
    k = max(1.0, img.shape[1] / 320)
    for b in boxes.to_dict("records"):
        sx = img.shape[1] / b["image_width"] if b.get("image_width") else 1.0
        sy = img.shape[0] / b["image_height"] if b.get("image_height") else 1.0
        p1 = (round(b["x1"] * sx), round(b["y1"] * sy))
        p2 = (round(b["x2"] * sx), round(b["y2"] * sy))
        cv2.rectangle(img, p1, p2, colour, max(1, round(width * k)))


__all__ = [
    "ASSET",
    "REVIEWS_PREFIX",
    "ReviewedLabelsOptions",
    "drives_named_in",
    "is_review_file",
    "read_current",
    "resolve_file",
    "run_reviewed_labels",
]
