"""`reviewed_labels` end to end on S3 (a moto server): the output root and the landing root are S3 prefixes,
the drives' `extracted_frames`/`object_labels` are published there, `training_dataset` exports the Ground Truth
input manifest there, a reviewer's output manifest and a COCO file land under the roots, and the import runs
through the step entry point (as Batch/SageMaker/K8s run it) and through Dagster with its sensor.

``AWS_ENDPOINT_URL`` is removed from the environment, so the S3 endpoint must travel in the parameters.
"""

from __future__ import annotations

import hashlib
import json

import cv2
import dagster as dg
import numpy as np
import pytest
from test_reviewed_labels import DATASET, GT_OUTPUT, JOB, boxes_by_frame, publish_drive, reviewer_edits
from training_dataset_data import Drives, real_images

from rosbag_assets.io import publish
from rosbag_assets.io.storage import OutsideRootError, Storage, storage_from_uri
from rosbag_assets.steps.entrypoint import run_step
from rosbag_assets.steps.reviewed_labels import read_current
from rosbag_assets.steps.training_dataset.run import dataset_prefix

OUT = "s3://revs/out"
LANDING = "s3://landing/drives"
ARN = "arn:aws:sagemaker:eu-west-1:123456789012:labeling-job/adjust-cars"


@pytest.fixture
def s3_drives(moto_server, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Two drives' `extracted_frames` and `object_labels` published under the S3 output root."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    client = moto_server.client("s3")
    for bucket in ("revs", "landing", "other"):
        client.create_bucket(Bucket=bucket)
    drives = Drives()
    pictures = [n for n in sorted(real_images()) if n != "zidane.jpg"]
    drives.add("drive_r", pictures[:5])
    drives.add("drive_s", pictures[5:], start_s=1_700_000_100.0)
    out = storage_from_uri(OUT, endpoint_url=moto_server.url)
    for drive in ("drive_r", "drive_s"):
        publish_drive(out, drives, drive)
    params = {"output": OUT, "s3_endpoint_url": moto_server.url, "landing_root": LANDING}
    return {"url": moto_server.url, "out": out, "params": params, "frames": drives.frames}


@pytest.fixture
def s3(s3_drives: dict) -> dict:
    """...and the `cars` dataset exported from them, its Ground Truth manifest edited by a reviewer."""
    out = s3_drives["out"]
    run_step({**s3_drives["params"], "step": "training_dataset", "options": DATASET})
    version, _ = publish.require_current(out, dataset_prefix("cars"))
    text = out.read_bytes(version.key("sagemaker_gt/train.manifest")).decode()
    published = [json.loads(line) for line in text.splitlines()]
    assert all(line["source-ref"].startswith(f"{OUT}/datasets/") for line in published)
    lines, expected = reviewer_edits(published)
    return {**s3_drives, "lines": lines, "expected": expected}


def put(s3: dict, uri: str, lines: list[dict]) -> bytes:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    folder, _, name = uri.rpartition("/")
    storage_from_uri(folder, endpoint_url=s3["url"]).write_bytes(name, data)
    return data


def reviewed(out: Storage, drive: str) -> dict[tuple[str, str], list]:
    """frame -> sorted boxes of the drive's current reviewed.parquet, clipped to the image (emptied: [])."""
    rows, _ = read_current(out, drive)
    boxes = rows[rows["class_name"].notna()].copy()  # the reviewer's numbers; `expected` is clipped, as the
    for a, b, size in (("x1", "x2", "image_width"), ("y1", "y2", "image_height")):  # dataset clips them
        boxes[a], boxes[b] = boxes[a].clip(0, boxes[size]), boxes[b].clip(0, boxes[size])
    return {**{(drive, k): [] for k in rows["frame_key"]}, **boxes_by_frame(boxes)}


def test_ground_truth_and_coco_imports_on_s3(s3: dict) -> None:
    out, expected = s3["out"], s3["expected"]
    data = put(s3, f"{OUT}/{GT_OUTPUT}", s3["lines"])
    params = {**s3["params"], "step": "reviewed_labels", "drive": "drive_r"}
    res = run_step({**params, "options": {"file": f"{OUT}/{GT_OUTPUT}", "labeling_job_arn": ARN}})

    mine = {k: v for k, v in expected.items() if k[0] == "drive_r"}
    assert reviewed(out, "drive_r") == mine
    rows, version = read_current(out, "drive_r")
    assert set(rows["job"]) == {JOB} and set(rows["labeling_job_arn"]) == {ARN}
    assert set(rows["import_file"]) == {f"{OUT}/{GT_OUTPUT}"} and set(rows["source"]) == {"sagemaker-gt"}
    frames_version, _ = publish.require_current(out, "drive_r/extracted_frames")
    meta = {k: v["raw_value"] for k, v in res.metadata.items() if isinstance(v, dict) and "raw_value" in v}
    assert meta["frames_reviewed"] == len(mine) == meta["frames_reviewed_total"]
    assert meta["boxes_reviewed"] == sum(len(v) for v in mine.values())
    assert meta["frames_reviewed_empty"] == sum(not v for v in mine.values()) > 0
    assert meta["rows_of_other_drives"] == {
        "drive_s": sum(max(1, len(v)) for k, v in expected.items() if k[0] == "drive_s")
    }
    assert meta["file"] == f"{OUT}/{GT_OUTPUT}" and meta["format"] == "sagemaker_gt"
    assert meta["jobs"] == [JOB] and meta["labeling_job_arn"] == ARN and meta["imports"] == 1
    assert meta["frames_version"] == frames_version.version
    assert meta["reviewed_uri"] == f"{OUT}/drive_r/reviewed_labels/versions/{version}/reviewed.parquet"
    manifest = publish.current(out, "drive_r/reviewed_labels")
    assert manifest["imports"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    prefix = f"drive_r/reviewed_labels/versions/{version}"
    assert out.read_bytes(f"{prefix}/source/output.manifest") == data
    sheet = cv2.imdecode(np.frombuffer(out.read_bytes(f"{prefix}/preview.jpg"), np.uint8), cv2.IMREAD_COLOR)
    assert sheet is not None and sheet.std() > 10

    # a COCO export under the landing root (another bucket) updates two frames and keeps the other reviews
    dataset, _ = publish.require_current(out, dataset_prefix("cars"))
    coco = json.loads(out.read_bytes(dataset.key("coco/train.json")))
    images = [img for img in coco["images"] if img["drive"] == "drive_r"][:2]
    ids = {img["id"] for img in images}
    coco_frames = {img.pop("frame_key") for img in images}  # CVAT keeps only the standard fields
    for img in images:
        img.pop("drive")
    coco["images"] = images
    coco["annotations"] = [
        dict(a, bbox=[1.0, 2.0, 30.0, 40.0]) for a in coco["annotations"] if a["image_id"] in ids
    ]
    storage_from_uri(LANDING, endpoint_url=s3["url"]).write_bytes(
        "exports/cvat.json", json.dumps(coco).encode()
    )
    res = run_step({**params, "options": {"file": f"{LANDING}/exports/cvat.json"}})
    assert res.metadata["imports"]["raw_value"] == 2
    assert res.metadata["file"]["raw_value"] == f"{LANDING}/exports/cvat.json"
    rows, _ = read_current(out, "drive_r")
    for key in coco_frames:
        got = rows[rows["frame_key"] == key]
        assert set(got["source"]) == {"coco"} and set(got["job"]) == {"cvat.json"}
        boxes = got[["x1", "y1", "x2", "y2"]].dropna().to_numpy()
        assert len(boxes) and (boxes == [1.0, 2.0, 31.0, 42.0]).all()
    assert {k: v for k, v in reviewed(out, "drive_r").items() if k[1] not in coco_frames} == {
        k: v for k, v in mine.items() if k[1] not in coco_frames
    }


def test_files_outside_the_roots_are_refused(s3_drives: dict) -> None:
    frame = s3_drives["frames"].iloc[0]
    line = {  # one reviewed box on drive_r's first frame, as a Ground Truth adjustment job writes it
        "source-ref": f"{OUT}/datasets/x.jpg",
        "drive": "drive_r",
        "frame-key": frame["frame_key"],
        "adjusted": {
            "image_size": [{"width": int(frame["width"]), "height": int(frame["height"]), "depth": 3}],
            "annotations": [{"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40}],
        },
        "adjusted-metadata": {
            "class-map": {"0": "car"},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-01-02T10:00:00.000000",
            "job-name": JOB,
        },
    }
    outside = [
        "s3://revs/elsewhere/output.manifest",  # same bucket, outside the prefix
        "s3://revs/out-old/reviews/output.manifest",  # a sibling prefix that starts like the root
        "s3://other/out/reviews/output.manifest",  # another bucket
        "s3://landing/output.manifest",  # the landing bucket, above its prefix
        "s3://revs/out/../elsewhere/output.manifest",  # inside by its start, outside once resolved
        "reviews/../../elsewhere/output.manifest",  # relative, leading out of the output root
    ]
    for uri in outside[:4]:
        put(s3_drives, uri, [line])
    params = {**s3_drives["params"], "step": "reviewed_labels", "drive": "drive_r"}
    for file in outside:
        with pytest.raises(OutsideRootError) as err:
            run_step({**params, "options": {"file": file}})
        assert file in str(err.value) and "it is not read" in str(err.value), file
    assert publish.current(s3_drives["out"], "drive_r/reviewed_labels") is None
    for inside in (f"{OUT}/reviews/ok.manifest", f"{LANDING}/ok.manifest"):  # the same file under a root
        put(s3_drives, inside, [line])
        res = run_step({**params, "options": {"file": inside}})
        assert res.metadata["file"]["raw_value"] == inside
    assert reviewed(s3_drives["out"], "drive_r") == {
        ("drive_r", frame["frame_key"]): [("car", 10, 20, 40, 60)]
    }


def test_sensor_and_asset_import_from_s3(s3: dict) -> None:
    from rosbag_assets.compute import ComputeTargets, LocalCompute
    from rosbag_assets.defs.datasets import reviewed_labels, reviewed_labels_sensor
    from rosbag_assets.defs.resources import DriveStorage

    put(s3, f"{OUT}/{GT_OUTPUT}", s3["lines"])
    put(s3, f"{OUT}/reviews/adjust-cars/annotations/worker-response/iteration-1/0/x.json", [{}])
    storage = DriveStorage(landing_root=LANDING, output_root=OUT, s3_endpoint_url=s3["url"])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("drives", ["drive_r", "drive_s"])
    first = reviewed_labels_sensor(dg.build_sensor_context(instance=instance, resources={"storage": storage}))
    assert sorted(r.partition_key for r in first.run_requests) == ["drive_r", "drive_s"]
    ctx = dg.build_sensor_context(instance=instance, resources={"storage": storage}, cursor=first.cursor)
    assert not reviewed_labels_sensor(ctx).run_requests  # the same ETag: nothing again

    request = next(r for r in first.run_requests if r.partition_key == "drive_s")
    result = dg.materialize(
        [reviewed_labels],
        partition_key="drive_s",
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode="in_process"))},
        run_config=request.run_config,
    )
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    mine = {k: v for k, v in s3["expected"].items() if k[0] == "drive_s"}
    assert meta["frames_reviewed"].value == len(mine) and meta["file"].value == f"{OUT}/{GT_OUTPUT}"
    assert reviewed(s3["out"], "drive_s") == mine
