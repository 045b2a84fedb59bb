"""A drive of REAL third-party bags through extracted_frames -> object_labels -> anonymized_frames ->
training_dataset, every output read back with its consumer.

The drive holds the shared bags that have cameras (SOURCES.md): a real indoor mono8 752x480 camera
(tiny_svo), two DAVIS mono8 346x260 cameras (get_images_tiny), an rgb8 360x240 image and a 2x2 RGBA PNG
CompressedImage (ros_numpy_test) and a simulator JPEG (duckietown) — odd sizes and encodings on purpose.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROS1_BAGS, TFLITE_MODEL
from training_dataset_data import read_cvat_export

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.anonymized_frames import run_anonymized_frames
from rosbag_assets.steps.extracted_frames import run_extracted_frames
from rosbag_assets.steps.object_labels import run_object_labels
from rosbag_assets.steps.raw_bags import run_raw_bags
from rosbag_assets.steps.training_dataset import reviewed_from_groundtruth
from rosbag_assets.steps.training_dataset.run import dataset_prefix, run_training_dataset

BAGS = ["tiny_svo.bag", "get_images_tiny.bag", "ros_numpy_test.bag", "duckietown_sim_compressed.bag"]
DRIVE = "real_bags"
FORMATS = ["yolo", "coco", "sagemaker_gt", "label_studio", "cvat"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    missing = [b for b in BAGS if not (ROS1_BAGS / b).is_file()]
    if missing or not TFLITE_MODEL.is_file() or importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip(f"needs the shared bags {missing or BAGS}, the YOLO11n TFLite model and ai-edge-litert")
    root = tmp_path_factory.mktemp("real")
    landing = root / "landing" / DRIVE
    landing.mkdir(parents=True)
    for name in BAGS:  # copies: links out of the landing root are refused
        shutil.copyfile(ROS1_BAGS / name, landing / name)
    source, out = LocalStorage(landing), LocalStorage(root / "out")
    run_raw_bags(drive=DRIVE, source=source, output=out)
    run_extracted_frames(drive=DRIVE, source=source, output=out)
    run_object_labels(drive=DRIVE, output=out, options={"weights": str(TFLITE_MODEL), "confidence": 0.2})
    anon = run_anonymized_frames(drive=DRIVE, output=out)
    dataset = run_training_dataset(
        output=out,
        options={
            "name": "real",
            "split_by": "time_block",
            "block_s": 0.2,
            "guard_s": 0.0,
            "fractions": {"train": 0.75, "val": 0.25},
            "keep_empty": True,  # every frame was labelled: a frame without boxes is a true background
            "min_confidence": 0.2,
            "formats": FORMATS,
        },
    )
    return {"root": root, "out": out, "anon": anon, "dataset": dataset}


def test_every_extracted_frame_is_anonymized_with_its_regions_recorded(chain: dict) -> None:
    out: LocalStorage = chain["out"]
    extracted_version, extracted = frames.committed_frames(out, DRIVE)
    assert set(extracted["topic"]) >= {"/camera/image_raw", "/dvs/image_raw", "/dvs1/image_raw"}
    colour = frames.select_frames(extracted)
    assert len(colour) == len(extracted) >= 20  # mono, rgb, RGBA PNG and JPEG frames are all anonymizable

    checks = {c.name: c for c in chain["anon"].checks}
    assert checks["every_frame_anonymized"].passed, checks["every_frame_anonymized"].metadata
    version, manifest = publish.require_current(out, f"{DRIVE}/anonymized_frames")
    index = version.read_parquet("index.parquet")
    regions = version.read_parquet("regions.parquet")
    assert manifest["frames"] == len(index) == len(extracted)
    assert sorted(index["frame_key"]) == sorted(extracted["frame_key"])

    per_frame = regions.groupby("frame_key").size()
    counted = index.set_index("frame_key")["regions"]
    assert (counted == per_frame.reindex(counted.index, fill_value=0)).all()
    assert (index["faces"] + index["plates"] == index["regions"]).all()
    for row in index.itertuples():
        sources = set(regions.loc[regions["frame_key"] == row.frame_key, "source"])
        assert set(filter(None, row.models.split(","))) == sources

    originals = extracted.set_index("frame_key")
    for row in index.to_dict("records"):
        flag = cv2.IMREAD_UNCHANGED if row["format"] == "png" else cv2.IMREAD_COLOR
        before = {"frame_key": row["frame_key"], **originals.loc[row["frame_key"]].to_dict()}
        a = cv2.imdecode(np.frombuffer(frames.read_frame_bytes(out, version, row), np.uint8), flag)
        b = cv2.imdecode(
            np.frombuffer(frames.read_frame_bytes(out, extracted_version, before), np.uint8), flag
        )
        assert a.shape == b.shape and a.shape[:2] == (row["height"], row["width"]), row["frame_key"]
        if row["regions"] == 0:  # untouched: the original pixels, re-encoded at the step's JPEG quality
            if row["format"] != "png":
                b = cv2.imdecode(cv2.imencode(".jpg", b, [cv2.IMWRITE_JPEG_QUALITY, 95])[1], flag)
            assert np.array_equal(a, b), row["frame_key"]


def test_the_dataset_is_built_from_anonymized_frames_and_every_export_loads(chain: dict) -> None:
    from pycocotools.coco import COCO
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    out: LocalStorage = chain["out"]
    res = chain["dataset"]
    version, manifest = publish.require_current(out, dataset_prefix("real"))
    assert manifest["drives"] == [DRIVE] and manifest["options"]["frames_from"] == "anonymized_frames"
    folder = Path(out.uri(version.prefix))
    images = pd.read_parquet(folder / "images.parquet")
    boxes = pd.read_parquet(folder / "boxes.parquet")
    summary = json.loads((folder / "dataset.json").read_text())
    labelled = frames.select_frames(frames.committed_frames(out, DRIVE)[1])
    tiny = int((labelled[["width", "height"]].min(axis=1) < 10).sum())  # the 2x2 PNG: trainers reject it
    assert tiny >= 1 and summary["selection"]["too_small_frames"] == tiny
    dropped = summary["duplicates_dropped"] + summary["guard_dropped"] + tiny
    assert len(images) + dropped == len(labelled)
    assert res.metadata["images"]["raw_value"] == len(images) and len(boxes) > 0

    anon_version, _ = publish.require_current(out, f"{DRIVE}/anonymized_frames")
    anon = anon_version.read_parquet("index.parquet").set_index("frame_key")
    for img in images.itertuples():  # the dataset's bytes are the anonymized frames' bytes
        row = {"frame_key": img.frame_key, **anon.loc[img.frame_key].to_dict()}
        assert (folder / img.image_path).read_bytes() == frames.read_frame_bytes(out, anon_version, row)

    data = check_det_dataset(str(folder / "data.yaml"))
    assert data["names"] == yaml.safe_load((folder / "data.yaml").read_text())["names"]
    for split in sorted(set(images["split"])):
        ds = YOLODataset(img_path=data[split], data=data, task="detect", augment=False, imgsz=64)
        ours = images[images["split"] == split]
        assert len(ds.labels) == len(ours)
        assert sum(len(lb["cls"]) for lb in ds.labels) == boxes["image_id"].isin(ours["image_id"]).sum()

        coco = COCO(str(folder / "coco" / f"{split}.json"))
        assert sorted(coco.getImgIds()) == sorted(ours["image_id"])
        assert len(coco.getAnnIds()) == boxes["image_id"].isin(ours["image_id"]).sum()

        manifest_path = folder / "sagemaker_gt" / f"{split}.manifest"
        back = reviewed_from_groundtruth(manifest_path, label_attribute="prelabels")
        assert back["frame_key"].nunique() == len(ours)
        lines = [json.loads(t) for t in manifest_path.read_text().splitlines()]
        assert all(Path(line["source-ref"]).is_file() for line in lines)

        tasks = json.loads((folder / "label_studio" / f"{split}.json").read_text())
        assert len(tasks) == len(ours)

        cvat = read_cvat_export(folder / "cvat" / f"{split}.xml", folder / "images" / split, data_names(data))
        assert sum(len(v) for v in cvat.values()) == boxes["image_id"].isin(ours["image_id"]).sum()


def data_names(data: dict) -> list[str]:
    return [data["names"][i] for i in sorted(data["names"])]
