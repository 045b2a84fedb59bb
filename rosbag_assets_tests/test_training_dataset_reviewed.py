"""Reviewed labels: a Ground Truth adjustment job's output manifest or a labelling tool's COCO file, read back
onto frames and preferred over the model's boxes when the dataset is built again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_dataset_data import Drives, real_images

from rosbag_assets.steps.training_dataset import (
    DatasetResult,
    build_dataset,
    reviewed_from_coco,
    reviewed_from_groundtruth,
)
from rosbag_assets.steps.training_dataset.reviewed import ReviewedLabelsError

OPTIONS = {
    "classes": ["car", "person"],
    "fractions": {"train": 1.0},
    "split_by": "drive",
    "dedupe_threshold": None,
    "formats": ["yolo", "coco", "sagemaker_gt"],
}


@pytest.fixture(scope="module")
def drives() -> Drives:
    d = Drives()
    d.add("drive_r", [n for n in sorted(real_images()) if n != "zidane.jpg"][:5])
    return d


@pytest.fixture(scope="module")
def first(drives: Drives, tmp_path_factory: pytest.TempPathFactory) -> DatasetResult:
    return build_dataset(
        drives.frames, drives.label_rows, drives.read_bytes, OPTIONS, tmp_path_factory.mktemp("v1")
    )


def adjusted_output(first: DatasetResult) -> tuple[list[dict], dict[str, list]]:
    """What a Ground Truth bounding-box adjustment job writes for our input manifest: every input key kept, the
    reviewers' boxes under a new label attribute. Line 0: one box moved, one deleted, a person added; line 1:
    every box deleted; line 2: the task expired (no attribute); the rest: accepted unchanged."""
    lines = [
        json.loads(t) for t in (first.out_dir / "sagemaker_gt" / "train.manifest").read_text().splitlines()
    ]
    expected: dict[str, list] = {}
    for n, line in enumerate(lines):
        boxes = [dict(b) for b in line["prelabels"]["annotations"]]
        if n == 0:
            boxes[0]["left"] += 7
            del boxes[1]
            boxes.append({"class_id": 1, "left": 20, "top": 30, "width": 40, "height": 90})
        elif n == 1:
            boxes = []
        elif n == 2:
            continue
        line["adjusted"] = {"image_size": line["prelabels"]["image_size"], "annotations": boxes}
        line["adjusted-metadata"] = {
            **line["prelabels-metadata"],
            "objects": [{"confidence": 0.95} for _ in boxes],
            "human-annotated": "yes",
            "creation-date": "2026-01-02T10:00:00.000000",
            "job-name": "labeling-job/adjust-cars",
            "adjustment-status": "adjusted" if n < 2 else "unadjusted",
        }
        names = line["adjusted-metadata"]["class-map"]
        expected[line["frame-key"]] = [
            (names[str(b["class_id"])], b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"])
            for b in boxes
        ]
    if len(lines) > 3:  # an older human pass on line 3 must lose against the newer adjustment
        lines[3]["first-pass"] = {"image_size": lines[3]["prelabels"]["image_size"], "annotations": []}
        lines[3]["first-pass-metadata"] = {
            **lines[3]["adjusted-metadata"],
            "creation-date": "2025-12-01T00:00:00",
        }
    return lines, expected


def rows_by_frame(reviewed: pd.DataFrame) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in reviewed.itertuples():
        boxes = out.setdefault(r.frame_key, [])
        if isinstance(r.class_name, str):
            boxes.append((r.class_name, r.x1, r.y1, r.x2, r.y2))
    return out


def test_ground_truth_output_reads_back_per_frame(first: DatasetResult, tmp_path: Path) -> None:
    lines, expected = adjusted_output(first)
    path = tmp_path / "output.manifest"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    reviewed = reviewed_from_groundtruth(path)
    assert rows_by_frame(reviewed) == expected
    assert set(reviewed["job"]) == {"labeling-job/adjust-cars"} and reviewed["human_annotated"].all()
    assert lines[2]["frame-key"] not in set(reviewed["frame_key"])  # the expired task is no review

    # a tool that dropped our extra keys: frames are found from source-ref in the dataset's images table
    bare = [{k: v for k, v in line.items() if k not in ("drive", "frame-key")} for line in lines]
    by_ref = reviewed_from_groundtruth([json.dumps(line) for line in bare], frames=first.images)
    assert rows_by_frame(by_ref) == expected
    with pytest.raises(ReviewedLabelsError, match=r"manifest:1: image .*drive_r__frames"):
        reviewed_from_groundtruth([json.dumps(line) for line in bare])


def test_rebuilt_dataset_prefers_reviewed_boxes(drives: Drives, first: DatasetResult, tmp_path: Path) -> None:
    lines, expected = adjusted_output(first)
    reviewed = reviewed_from_groundtruth([json.dumps(line) for line in lines])
    second = build_dataset(
        drives.frames, drives.label_rows, drives.read_bytes, OPTIONS, tmp_path / "v2", reviewed=reviewed
    )

    assert second.selection["reviewed_frames"] == len(expected)
    for img in second.images.itertuples():
        boxes = second.boxes[second.boxes["image_id"] == img.image_id]
        label_file = second.out_dir / "labels" / "train" / (Path(img.file_name).stem + ".txt")
        assert len(label_file.read_text().splitlines()) == len(boxes)
        if img.frame_key in expected:
            got = [(b.class_name, b.x1, b.y1, b.x2, b.y2) for b in boxes.itertuples()]
            assert got == expected[img.frame_key]
            assert boxes["source"].eq("reviewed:sagemaker-gt:labeling-job/adjust-cars").all()
        else:  # not reviewed: the model's boxes, exactly as in the first build
            before = first.boxes[first.boxes["frame_key"] == img.frame_key]
            np.testing.assert_allclose(boxes[["x1", "y1", "x2", "y2"]], before[["x1", "y1", "x2", "y2"]])
            assert boxes["source"].str.startswith("model:").all()
    emptied = lines[1]["frame-key"]
    assert emptied in set(second.images["frame_key"])  # a frame reviewed as empty is a background image
    assert not (second.boxes["frame_key"] == emptied).any()


def test_coco_from_a_labelling_tool_maps_by_file_name(first: DatasetResult, tmp_path: Path) -> None:
    coco = json.loads((first.out_dir / "coco" / "train.json").read_text())
    for img in coco["images"]:  # tools keep only the standard fields
        img.pop("drive"), img.pop("frame_key")
    edited = coco["annotations"][0]
    edited["bbox"] = [5.0, 6.0, 50.0, 60.0]
    last_image = coco["images"][-1]["id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != last_image]
    path = tmp_path / "instances_default.json"
    path.write_text(json.dumps(coco))

    reviewed = reviewed_from_coco(path, frames=first.images)
    assert len(reviewed) == len(coco["annotations"]) + 1  # + the image left without boxes
    assert set(reviewed["job"]) == {"instances_default.json"} and set(reviewed["source"]) == {"coco"}
    frame = first.images.set_index("image_id").loc[edited["image_id"], "frame_key"]
    row = reviewed[reviewed["frame_key"] == frame].iloc[0]
    assert (row["x1"], row["y1"], row["x2"], row["y2"]) == (5.0, 6.0, 55.0, 66.0)
    emptied = first.images.set_index("image_id").loc[last_image, "frame_key"]
    assert reviewed.loc[reviewed["frame_key"] == emptied, "class_name"].isna().all()

    not_looked_at = reviewed_from_coco(path, frames=first.images, empty_images_reviewed=False)
    assert emptied not in set(not_looked_at["frame_key"])
    coco["images"][0]["file_name"] = "somewhere_else.jpg"
    with pytest.raises(ReviewedLabelsError, match=r"somewhere_else\.jpg"):
        reviewed_from_coco(coco, frames=first.images)
