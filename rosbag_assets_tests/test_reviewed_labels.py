"""`reviewed_labels` end to end: a dataset's Ground Truth input manifest goes out, a reviewer edits boxes in the
output manifest, the import maps them back onto the drive's frames, and the next dataset uses them.

Drives are real frames (BDD100K + Ultralytics' photos) with the real YOLO11n int8 boxes, published through
`io.publish` as `extracted_frames` and `object_labels` versions (the layout the steps write), so the steps
under test read exactly what they read in production.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pandas as pd
import pytest
from training_dataset_data import Drives, real_images

from rosbag_assets.io import publish
from rosbag_assets.io.storage import LocalStorage, OutsideRootError
from rosbag_assets.steps.reviewed_labels import read_current, run_reviewed_labels
from rosbag_assets.steps.training_dataset.reviewed import ReviewedLabelsError
from rosbag_assets.steps.training_dataset.run import dataset_prefix, run_training_dataset

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:labeling-job/adjust-cars"
JOB = "labeling-job/adjust-cars"
DATASET = {
    "name": "cars",
    "frames_from": "extracted_frames",
    "classes": ["car", "person", "bus"],
    "split_by": "drive",
    "fractions": {"train": 1.0},
    "dedupe_threshold": None,
    "formats": ["yolo", "coco", "sagemaker_gt"],
}
GT_OUTPUT = "reviews/adjust-cars/manifests/output/output.manifest"


def publish_drive(out: LocalStorage, drives: Drives, drive: str) -> None:
    """Commit `extracted_frames` (one file per frame) and `object_labels` versions of one test drive."""
    frames = drives.frames[drives.frames["drive"] == drive]
    draft = publish.begin(out, f"{drive}/extracted_frames")
    rows = []
    for row in frames.to_dict("records"):
        draft.write_bytes(row["frame_key"], drives.read_bytes(row))
        rows.append({**row, "data_key": "", "offset": 0, "path": draft.uri(row["frame_key"])})
    draft.write_parquet("index.parquet", pd.DataFrame(rows))
    draft.commit({"drive": drive})
    labels = drives.label_rows[drives.label_rows["drive"] == drive]
    draft = publish.begin(out, f"{drive}/object_labels")
    draft.write_parquet("labels.parquet", labels.reset_index(drop=True))
    draft.commit({"drive": drive})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    drives = Drives()
    pictures = [n for n in sorted(real_images()) if n != "zidane.jpg"]
    drives.add("drive_r", pictures[:5])
    drives.add("drive_s", pictures[5:], start_s=1_700_000_100.0)
    out = LocalStorage(tmp_path / "out")
    for drive in ("drive_r", "drive_s"):
        publish_drive(out, drives, drive)
    return tmp_path / "out"


def dataset_manifest(out: LocalStorage) -> list[dict]:
    version, _ = publish.require_current(out, dataset_prefix("cars"))
    text = out.read_bytes(version.key("sagemaker_gt/train.manifest")).decode()
    return [json.loads(line) for line in text.splitlines()]


def reviewer_edits(lines: list[dict]) -> tuple[list[dict], dict[tuple[str, str], list]]:
    """What a Ground Truth adjustment job writes back: the reviewers' boxes under a new attribute. Per drive:
    the first line gets a box moved, one deleted and a person added; the second is emptied; the third task
    expired; the others are accepted as they were. One line lost our extra keys (mapped by its source-ref)."""
    out, expected, seen = [], {}, {}
    for line in lines:
        n = seen[line["drive"]] = seen.get(line["drive"], -1) + 1
        boxes = [dict(b) for b in line["prelabels"]["annotations"]]
        if n == 0:
            boxes[0]["left"] += 9
            boxes = boxes[:1] + boxes[2:]
            boxes.append({"class_id": 1, "left": 20, "top": 30, "width": 40, "height": 90})
        elif n == 1:
            boxes = []
        if n != 2:
            line["adjusted"] = {"image_size": line["prelabels"]["image_size"], "annotations": boxes}
            line["adjusted-metadata"] = {
                **line["prelabels-metadata"],
                "objects": [{"confidence": 0.97} for _ in boxes],
                "human-annotated": "yes",
                "creation-date": "2026-01-02T10:00:00.000000",
                "job-name": JOB,
            }
            names = line["prelabels-metadata"]["class-map"]
            size = line["prelabels"]["image_size"][0]  # the dataset clips boxes to the image
            expected[(line["drive"], line["frame-key"])] = sorted(
                (
                    names[str(b["class_id"])],
                    b["left"],
                    b["top"],
                    min(b["left"] + b["width"], size["width"]),
                    min(b["top"] + b["height"], size["height"]),
                )
                for b in boxes
            )
        if n == 3:  # a tool that keeps only source-ref
            line = {k: v for k, v in line.items() if k not in ("drive", "frame-key")}
        out.append(line)
    return out, expected


def write_lines(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def boxes_by_frame(boxes: pd.DataFrame) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = {}
    for b in boxes.itertuples():
        out.setdefault((b.drive, b.frame_key), []).append(
            (b.class_name, round(b.x1), round(b.y1), round(b.x2), round(b.y2))
        )
    return {k: sorted(v) for k, v in out.items()}


def test_reviewed_boxes_go_round_trip_into_the_next_dataset(root: Path) -> None:
    out = LocalStorage(root)
    first = run_training_dataset(output=out, options=DATASET)
    assert first.metadata["reviewed_frames"]["raw_value"] == 0
    published = dataset_manifest(out)
    assert all(
        Path(line["source-ref"]).read_bytes()[:2] == b"\xff\xd8" for line in published
    )  # the published copy
    lines, expected = reviewer_edits(published)
    write_lines(root / GT_OUTPUT, lines)

    res = run_reviewed_labels(
        drive="drive_r",
        output=out,
        roots=[str(root)],
        options={"file": str(root / GT_OUTPUT), "labeling_job_arn": ARN},
    )
    rows, version = read_current(out, "drive_r")
    mine = {k: v for k, v in expected.items() if k[0] == "drive_r"}
    assert set(zip(rows["drive"], rows["frame_key"], strict=True)) == set(mine)
    assert set(rows["job"]) == {JOB} and set(rows["labeling_job_arn"]) == {ARN}
    assert set(rows["reviewed_at"]) == {"2026-01-02T10:00:00.000000"} and rows["imported_at"].notna().all()
    meta = res.metadata
    assert meta["frames_reviewed"]["raw_value"] == len(mine)
    assert meta["rows_of_other_drives"]["raw_value"] == {
        "drive_s": sum(max(1, len(v)) for k, v in expected.items() if k[0] == "drive_s")
    }
    sheet = cv2.imdecode(
        np.frombuffer(
            (root / "drive_r/reviewed_labels/versions" / version / "preview.jpg").read_bytes(), np.uint8
        ),
        cv2.IMREAD_COLOR,
    )
    assert sheet.shape[1] >= 640 and sheet.std() > 10
    # green (reviewed) and orange (model) boxes are both drawn
    green = (sheet[..., 1] > 150) & (sheet[..., 0] < 100) & (sheet[..., 2] < 100)
    orange = (sheet[..., 2] > 200) & (sheet[..., 1] > 100) & (sheet[..., 1] < 180) & (sheet[..., 0] < 60)
    assert green.sum() > 100 and orange.sum() > 100

    run_reviewed_labels(drive="drive_s", output=out, roots=[str(root)], options={"file": GT_OUTPUT})
    second = run_training_dataset(output=out, options=DATASET)
    version, manifest = publish.require_current(out, dataset_prefix("cars"))
    assert set(manifest["reviewed_labels_versions"]) == {"drive_r", "drive_s"}
    assert second.metadata["reviewed_frames"]["raw_value"] == len(expected)
    boxes = version.read_parquet("boxes.parquet")
    images = version.read_parquet("images.parquet")
    got = boxes_by_frame(boxes)
    for frame, want in expected.items():
        assert got.get(frame, []) == want, frame
        assert boxes.loc[boxes["frame_key"] == frame[1], "source"].eq(f"reviewed:sagemaker-gt:{JOB}").all()
    emptied = [k for k, v in expected.items() if not v]
    assert emptied and all(k[1] in set(images["frame_key"]) for k in emptied)  # background images now
    # frames nobody reviewed keep the model's boxes; YOLO label files agree with the boxes table
    untouched = boxes[~boxes["source"].str.startswith("reviewed:")]
    assert len(untouched) and untouched["source"].str.startswith("model:").all()
    for img in images.itertuples():
        label = root / version.key(f"labels/train/{Path(img.file_name).stem}.txt")
        n = len(label.read_text().splitlines()) if label.exists() else 0
        assert n == (boxes["image_id"] == img.image_id).sum()


def test_every_entry_must_be_a_frame_of_the_drive(root: Path, tmp_path: Path) -> None:
    out = LocalStorage(root)
    run_training_dataset(output=out, options=DATASET)
    lines, _ = reviewer_edits(dataset_manifest(out))
    r_lines = [line for line in lines if line.get("drive", "drive_r") == "drive_r"]

    def attempt(name: str, content: list[dict]) -> None:
        write_lines(root / "reviews" / name, content)
        run_reviewed_labels(
            drive="drive_r", output=out, roots=[str(root)], options={"file": f"reviews/{name}"}
        )

    bad_key = json.loads(json.dumps(r_lines))
    bad_key[0]["frame-key"] = "frames/drive.mcap/camera/123.jpg"
    with pytest.raises(
        ReviewedLabelsError,
        match=r"bad_key\.manifest, line 1: frame 'frames/drive\.mcap/camera/123\.jpg' "
        r"is not a frame of drive drive_r",
    ):
        attempt("bad_key.manifest", bad_key)
    unknown_image = [dict(r_lines[1], **{"source-ref": "s3://elsewhere/holiday.jpg"})]
    del unknown_image[0]["drive"], unknown_image[0]["frame-key"]
    with pytest.raises(
        ReviewedLabelsError, match=r"unknown\.manifest, line 1: image 's3://elsewhere/holiday\.jpg'"
    ):
        attempt("unknown.manifest", unknown_image)
    typo = json.loads(json.dumps(r_lines))
    typo[1]["drive"] = "drive_x"
    with pytest.raises(ReviewedLabelsError, match=r"typo\.manifest, line 2: names drive 'drive_x'"):
        attempt("typo.manifest", typo)
    others = [line for line in lines if line.get("drive") == "drive_s"]
    with pytest.raises(ReviewedLabelsError, match=r"no entry is about drive drive_r .*drive_s"):
        attempt("others.manifest", others)
    with pytest.raises(ReviewedLabelsError, match=r"broken\.manifest:2: not a JSON line"):
        (root / "reviews" / "broken.manifest").write_text(json.dumps(r_lines[0]) + "\n{oops\n")
        run_reviewed_labels(
            drive="drive_r", output=out, roots=[str(root)], options={"file": "reviews/broken.manifest"}
        )
    assert publish.current(out, "drive_r/reviewed_labels") is None  # nothing was published

    outside = tmp_path / "elsewhere" / "output.manifest"
    write_lines(outside, r_lines)
    with pytest.raises(OutsideRootError, match="not under the configured roots"):
        run_reviewed_labels(drive="drive_r", output=out, roots=[str(root)], options={"file": str(outside)})
    os.symlink(outside, root / "reviews" / "link.manifest")  # inside by name, outside in fact
    with pytest.raises(OutsideRootError, match="outside"):
        run_reviewed_labels(
            drive="drive_r", output=out, roots=[str(root)], options={"file": "reviews/link.manifest"}
        )
    with pytest.raises(OutsideRootError):
        run_reviewed_labels(
            drive="drive_r",
            output=out,
            roots=[str(root)],
            options={"file": "reviews/../../elsewhere/output.manifest"},
        )
    landing = tmp_path / "landing"
    write_lines(landing / "review.manifest", r_lines)  # the second configured root
    res = run_reviewed_labels(
        drive="drive_r",
        output=out,
        roots=[str(root), str(landing)],
        options={"file": str(landing / "review.manifest")},
    )
    assert res.metadata["frames_reviewed"]["raw_value"] > 0


def test_coco_import_keeps_earlier_reviews_of_other_frames(root: Path) -> None:
    out = LocalStorage(root)
    run_training_dataset(output=out, options=DATASET)
    lines, expected = reviewer_edits(dataset_manifest(out))
    write_lines(root / GT_OUTPUT, lines)
    run_reviewed_labels(drive="drive_r", output=out, roots=[str(root)], options={"file": GT_OUTPUT})

    version, _ = publish.require_current(out, dataset_prefix("cars"))
    coco = json.loads(out.read_bytes(version.key("coco/train.json")))
    images = [img for img in coco["images"] if img["drive"] == "drive_r"][:2]
    for img in images:  # CVAT keeps only the standard fields
        img.pop("drive"), img.pop("frame_key")
    ids = {img["id"] for img in images}
    coco["images"] = images
    coco["annotations"] = [
        dict(a, bbox=[1.0, 2.0, 30.0, 40.0]) for a in coco["annotations"] if a["image_id"] in ids
    ]
    coco["info"] = {"date_created": "2026-02-03T04:05:06"}
    (root / "reviews" / "coco").mkdir(parents=True)
    (root / "reviews" / "coco" / "instances_default.json").write_text(json.dumps(coco))
    run_reviewed_labels(
        drive="drive_r",
        output=out,
        roots=[str(root)],
        options={"file": "reviews/coco/instances_default.json"},
    )

    rows, _ = read_current(out, "drive_r")
    frames = {r.frame_key: r for r in rows.itertuples()}
    keys_by_name = dict(
        zip(
            pd.read_parquet(root / version.key("images.parquet"))["file_name"],
            pd.read_parquet(root / version.key("images.parquet"))["frame_key"],
            strict=True,
        )
    )
    coco_frames = {keys_by_name[img["file_name"]] for img in images}
    for key in coco_frames:
        got = rows[rows["frame_key"] == key]
        assert set(got["source"]) == {"coco"} and set(got["job"]) == {"instances_default.json"}
        assert set(got["reviewed_at"]) == {"2026-02-03T04:05:06"}
        assert (got[["x1", "y1", "x2", "y2"]].dropna().to_numpy() == [1.0, 2.0, 31.0, 42.0]).all()
    gt_frames = {k[1] for k in expected if k[0] == "drive_r"} - coco_frames
    assert gt_frames and all(frames[k].source == "sagemaker-gt" for k in gt_frames)
    _, manifest = publish.require_current(out, "drive_r/reviewed_labels")
    assert [i["format"] for i in manifest["imports"]] == ["sagemaker_gt", "coco"]

    run_reviewed_labels(
        drive="drive_r",
        output=out,
        roots=[str(root)],
        options={"file": "reviews/coco/instances_default.json", "replace": True},
    )
    rows, _ = read_current(out, "drive_r")
    assert set(rows["frame_key"]) == coco_frames


def test_dagster_asset_lineage_and_import_sensor(root: Path, tmp_path: Path) -> None:
    from rosbag_assets.compute import ComputeTargets, LocalCompute
    from rosbag_assets.defs.datasets import reviewed_labels, reviewed_labels_sensor
    from rosbag_assets.defs.definitions import defs
    from rosbag_assets.defs.resources import DriveStorage

    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("reviewed_labels") in graph.get(dg.AssetKey("training_dataset")).parent_keys
    assert graph.get(dg.AssetKey("reviewed_labels")).parent_keys == {
        dg.AssetKey("extracted_frames"),
        dg.AssetKey("object_labels"),
    }
    assert "Docs: README" in (
        defs.resolve_assets_def("reviewed_labels").specs_by_key[dg.AssetKey("reviewed_labels")].description
        or ""
    )
    out = LocalStorage(root)
    run_training_dataset(output=out, options=DATASET)
    lines, _ = reviewer_edits(dataset_manifest(out))
    write_lines(root / GT_OUTPUT, lines)
    (root / "reviews/adjust-cars/annotations/worker-response/iteration-1/0").mkdir(parents=True)
    (root / "reviews/adjust-cars/annotations/worker-response/iteration-1/0/x.json").write_text("{}")

    storage = DriveStorage(landing_root=str(tmp_path / "landing"), output_root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("drives", ["drive_r", "drive_s"])
    ctx = dg.build_sensor_context(instance=instance, resources={"storage": storage})
    first = reviewed_labels_sensor(ctx)
    assert sorted(r.partition_key for r in first.run_requests) == ["drive_r", "drive_s"]
    assert {r.run_config["ops"]["reviewed_labels"]["config"]["file"] for r in first.run_requests} == {
        GT_OUTPUT
    }
    ctx = dg.build_sensor_context(instance=instance, resources={"storage": storage}, cursor=first.cursor)
    assert not reviewed_labels_sensor(ctx).run_requests  # unchanged: nothing again
    write_lines(root / GT_OUTPUT, [line for line in lines if line.get("drive") == "drive_s"])
    os.utime(root / GT_OUTPUT, ns=(1, 10**18))
    again = reviewed_labels_sensor(ctx).run_requests
    assert [r.partition_key for r in again] == ["drive_s"]

    result = dg.materialize(
        [reviewed_labels],
        partition_key="drive_s",
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode="in_process"))},
        run_config=again[0].run_config,
    )
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["frames_reviewed"].value > 0


def test_s3_files_are_read_only_under_an_s3_root() -> None:
    from rosbag_assets.steps.reviewed_labels import resolve_file

    roots = ["s3://bucket/out", "/nowhere/landing"]
    store, key = resolve_file("s3://bucket/out/reviews/job/manifests/output/output.manifest", roots)
    assert store.uri(key) == "s3://bucket/out/reviews/job/manifests/output/output.manifest"
    assert key == "reviews/job/manifests/output/output.manifest"
    for outside in ("s3://bucket/outside/x.manifest", "s3://other/out/x.manifest", "/nowhere/else/x.json"):
        with pytest.raises(OutsideRootError):
            resolve_file(outside, roots)
    with pytest.raises(ValueError, match="use s3://bucket/key or a local path"):
        resolve_file("https://example.com/x.manifest", roots)
    store, key = resolve_file("reviews/coco/a.json", roots)  # relative: a key under the output root
    assert store.uri(key) == "s3://bucket/out/reviews/coco/a.json"
    from rosbag_assets.steps.reviewed_labels import is_review_file

    assert is_review_file("reviews/adjust-cars/manifests/output/output.manifest")
    assert is_review_file("reviews/coco/cvat-task-7/instances_default.json")
    assert not is_review_file("reviews/adjust-cars/annotations/worker-response/iteration-1/0/x.json")
    assert not is_review_file("reviews/adjust-cars/manifests/intermediate/1/output.manifest")
    assert not is_review_file("drive_r/reviews/coco/a.json")
