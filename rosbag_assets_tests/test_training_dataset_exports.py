"""training_dataset exports, each read back by the library or documented format that consumes it.

YOLO label files are parsed back (Ultralytics itself trains on them in test_training_dataset_train.py), COCO is
loaded and self-evaluated with pycocotools, Label Studio tasks are validated and converted by label-studio-sdk,
Ground Truth manifests are checked against their documented structure and round-tripped, CVAT XML is checked
strictly against the CVAT for images 1.1 layout and read back by labelformat's CVAT reader (datumaro, the reader
CVAT itself uses, would downgrade pandas, pillow and pyarrow in this environment).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from training_dataset_data import Drives, read_cvat_export, real_images

from rosbag_assets.steps import report
from rosbag_assets.steps.training_dataset import (
    DatasetOutputError,
    DatasetResult,
    build_dataset,
    reviewed_from_groundtruth,
)

CLASS_MAP = {"bus": "vehicle", "car": "vehicle", "truck": "vehicle"}
ALL_FORMATS = ["yolo", "coco", "sagemaker_gt", "label_studio", "cvat"]


@pytest.fixture(scope="module")
def drives() -> Drives:
    d = Drives()
    names = sorted(real_images())
    d.add("drive_a", names[:4], repeats=3)  # three drives -> one per split
    d.add("drive_b", names[4:7], repeats=2, start_s=1_700_000_100.0)
    d.add("drive_c", names[7:], repeats=2, start_s=1_700_000_200.0)
    return d


@pytest.fixture(scope="module")
def built(drives: Drives, tmp_path_factory: pytest.TempPathFactory) -> DatasetResult:
    options = {
        "split_by": "drive",
        "class_map": CLASS_MAP,
        "classes": ["vehicle", "person", "traffic light"],
        "min_confidence": 0.3,
        "formats": ALL_FORMATS,
    }
    return build_dataset(
        drives.frames, drives.label_rows, drives.read_bytes, options, tmp_path_factory.mktemp("ds")
    )


def xyxy(df: pd.DataFrame) -> np.ndarray:
    return df[["x1", "y1", "x2", "y2"]].to_numpy(float)


def test_images_are_the_original_bytes_split_by_drive_and_deduplicated(
    drives: Drives, built: DatasetResult
) -> None:
    assert len(built.images) == len(real_images())  # every stop kept once, every copy dropped
    assert built.dedupe.dropped == len(drives.rows) - len(real_images())
    assert built.images.groupby("drive")["split"].nunique().max() == 1
    assert sorted(built.images.groupby("drive")["split"].first()) == ["test", "train", "val"]
    for img in built.images.itertuples():
        stored = (built.out_dir / img.image_path).read_bytes()
        assert stored == drives.data[(img.drive, img.frame_key)]  # no re-encode
        assert img.image_path == f"images/{img.split}/{img.file_name}"
    assert not (built.out_dir / "images" / "_pool").exists()
    assert sorted(p.name for p in (built.out_dir / "images").iterdir()) == ["test", "train", "val"]


def test_yolo_labels_read_back_to_the_selected_boxes(built: DatasetResult) -> None:
    config = yaml.safe_load((built.out_dir / "data.yaml").read_text())
    assert config["names"] == dict(enumerate(built.class_names)) and config["nc"] == 3
    assert "path" not in config  # resolved next to data.yaml, so the folder can move
    for img in built.images.itertuples():
        assert (built.out_dir / config[img.split] / img.file_name).exists()
        text = (built.out_dir / "labels" / img.split / (Path(img.file_name).stem + ".txt")).read_text()
        rows = np.array([list(map(float, line.split())) for line in text.splitlines()]).reshape(-1, 5)
        ours = built.boxes[built.boxes["image_id"] == img.image_id]
        assert rows[:, 0].astype(int).tolist() == ours["class_id"].tolist()
        cx, cy, w, h = (rows[:, i] for i in range(1, 5))
        back = np.stack(
            [
                (cx - w / 2) * img.width,
                (cy - h / 2) * img.height,
                (cx + w / 2) * img.width,
                (cy + h / 2) * img.height,
            ],
            1,
        )
        np.testing.assert_allclose(back, xyxy(ours), atol=0.01)


def test_coco_loads_in_pycocotools_and_scores_itself_perfectly(built: DatasetResult) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for split in ("train", "val", "test"):
        coco = COCO(str(built.out_dir / "coco" / f"{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == built.class_names
        images = built.images[built.images["split"] == split]
        assert sorted(coco.getImgIds()) == sorted(images["image_id"])
        for img in images.itertuples():
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img.image_id))
            got = np.array(
                [
                    [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                    for a in anns
                ]
            ).reshape(-1, 4)
            ours = built.boxes[built.boxes["image_id"] == img.image_id]
            np.testing.assert_allclose(got, xyxy(ours), atol=0.02)
            assert [built.class_names[a["category_id"] - 1] for a in anns] == ours["class_name"].tolist()
            assert coco.imgs[img.image_id]["file_name"] == img.file_name
        if not coco.getAnnIds():
            continue
        detections = coco.loadRes([{**a, "score": 1.0} for a in coco.loadAnns(coco.getAnnIds())])
        evaluation = COCOeval(coco, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95] of the labels against themselves


def test_label_studio_tasks_validate_and_convert_with_label_studio_sdk(
    built: DatasetResult, tmp_path: Path
) -> None:
    from label_studio_sdk.converter import Converter
    from label_studio_sdk.label_interface import LabelInterface

    config = (built.out_dir / "label_studio" / "label_config.xml").read_text()
    interface = LabelInterface(config)
    assert sorted(interface.get_control("label").labels) == sorted(built.class_names)
    for split in ("train", "val", "test"):
        tasks = json.loads((built.out_dir / "label_studio" / f"{split}.json").read_text())
        assert len(tasks) == (built.images["split"] == split).sum()
        for task in tasks:
            assert interface.validate_prediction(task["predictions"][0], return_errors=True) == []
            assert task["data"]["image"].startswith("/data/local-files/?d=images/")
        broken = json.loads(json.dumps(tasks[0]["predictions"][0]))
        broken["result"][0]["value"]["rectanglelabels"] = ["bicycle"]
        assert interface.validate_prediction(broken, return_errors=True)  # the check can fail

        # as if a person accepted every prediction: Label Studio's own converter writes YOLO from them
        export = [
            {"id": i, "data": t["data"], "annotations": [{"id": i, "result": t["predictions"][0]["result"]}]}
            for i, t in enumerate(tasks, 1)
        ]
        (tmp_path / f"{split}.json").write_text(json.dumps(export))
        out = tmp_path / f"yolo_{split}"
        Converter(config, project_dir=str(built.out_dir), download_resources=False).convert_to_yolo(
            str(tmp_path / f"{split}.json"), str(out), is_dir=False
        )
        names = (out / "classes.txt").read_text().split("\n")
        for img in built.images[built.images["split"] == split].itertuples():
            path = out / "labels" / (Path(img.file_name).stem + ".txt")
            rows = (
                np.loadtxt(path, ndmin=2) if path.exists() and path.read_text().strip() else np.zeros((0, 5))
            )
            ours = built.boxes[built.boxes["image_id"] == img.image_id]
            assert [names[int(c)] for c in rows[:, 0]] == ours["class_name"].tolist()
            np.testing.assert_allclose(rows[:, 1] * img.width, (ours["x1"] + ours["x2"]) / 2, atol=0.01)
            np.testing.assert_allclose(rows[:, 4] * img.height, ours["y2"] - ours["y1"], atol=0.01)


def test_ground_truth_manifest_follows_the_bounding_box_output_format(built: DatasetResult) -> None:
    for split in ("train", "val", "test"):
        lines = (built.out_dir / "sagemaker_gt" / f"{split}.manifest").read_text().splitlines()
        images = built.images[built.images["split"] == split]
        assert len(lines) == len(images)
        for text, img in zip(lines, images.itertuples(), strict=True):
            line = json.loads(text)
            assert Path(line["source-ref"]).read_bytes()[:2] == b"\xff\xd8"
            label, meta = line["prelabels"], line["prelabels-metadata"]
            assert label["image_size"] == [{"width": img.width, "height": img.height, "depth": 3}]
            assert meta["type"] == "groundtruth/object-detection" and meta["human-annotated"] == "no"
            assert meta["class-map"] == {str(i): n for i, n in enumerate(built.class_names)}
            assert len(meta["objects"]) == len(label["annotations"])
            for box in label["annotations"]:
                assert set(box) == {"class_id", "left", "top", "width", "height"}
                assert all(isinstance(v, int) for v in box.values())
                assert box["left"] >= 0 and box["left"] + box["width"] <= img.width + 1
                assert box["top"] >= 0 and box["top"] + box["height"] <= img.height + 1

        # our own pre-annotations are not a review; asked for by name they read back to the boxes (to 1 px)
        manifest = built.out_dir / "sagemaker_gt" / f"{split}.manifest"
        assert reviewed_from_groundtruth(manifest).empty
        back = reviewed_from_groundtruth(manifest, label_attribute="prelabels")
        ours = built.boxes[built.boxes["image_id"].isin(images["image_id"])]
        assert back["frame_key"].tolist() == ours["frame_key"].tolist()
        assert back["class_name"].tolist() == ours["class_name"].tolist()
        np.testing.assert_allclose(xyxy(back), xyxy(ours), atol=1.0)


def test_cvat_xml_is_strict_cvat_1_1_and_reads_back_in_a_cvat_reader(
    built: DatasetResult, tmp_path: Path
) -> None:
    for split in ("train", "val", "test"):
        xml = built.out_dir / "cvat" / f"{split}.xml"
        back = read_cvat_export(xml, built.out_dir / "images" / split, built.class_names)
        images = built.images[built.images["split"] == split]
        assert list(back) == images["file_name"].tolist()
        for img in images.itertuples():
            ours = built.boxes[built.boxes["image_id"] == img.image_id]
            got = np.array([b[1:] for b in back[img.file_name]]).reshape(-1, 4)
            np.testing.assert_allclose(got, xyxy(ours), atol=0.01)
            assert [b[0] for b in back[img.file_name]] == ours["class_name"].tolist()

    # the strict check can fail: a box past the image edge, an unknown attribute, a wrong image size
    root = ET.parse(built.out_dir / "cvat" / "train.xml").getroot()
    for attribute, value in (("xbr", "99999"), ("keyframe", "1")):
        broken = ET.fromstring(ET.tostring(root))
        next(el for el in broken.iter("box")).set(attribute, value)
        ET.ElementTree(broken).write(tmp_path / "broken.xml")
        with pytest.raises(AssertionError):
            read_cvat_export(tmp_path / "broken.xml", built.out_dir / "images" / "train", built.class_names)
    broken = ET.fromstring(ET.tostring(root))
    broken.find("image").set("width", "7")
    ET.ElementTree(broken).write(tmp_path / "broken.xml")
    with pytest.raises(AssertionError):
        read_cvat_export(tmp_path / "broken.xml", built.out_dir / "images" / "train", built.class_names)


def test_stats_previews_and_tables_describe_what_was_written(
    built: DatasetResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # recount from the YOLO label files on disk, independently of the tables
    for row in built.stats.itertuples():
        cid = built.class_names.index(row.class_name)
        files = sorted((built.out_dir / "labels" / row.split).glob("*.txt"))
        per_file = [[int(line.split()[0]) for line in f.read_text().splitlines()].count(cid) for f in files]
        assert (row.images, row.boxes) == (sum(1 for n in per_file if n), sum(per_file))
    for split, totals in built.totals.items():
        assert totals["images"] == len(list((built.out_dir / "images" / split).iterdir()))
    for rel in built.previews.values():
        sheet = cv2.imread(str(built.out_dir / rel))
        assert sheet is not None and sheet.shape[1] >= 320 and sheet.std() > 10
    summary = json.loads((built.out_dir / "dataset.json").read_text())
    assert summary["duplicates_dropped"] == built.dedupe.dropped
    assert summary["options"]["class_map"] == CLASS_MAP
    pd.testing.assert_frame_equal(
        pd.read_parquet(built.out_dir / "images.parquet"), built.images, check_dtype=False
    )
    monkeypatch.delenv(report.OUTPUT_URL_ENV, raising=False)
    meta = built.metadata()
    assert meta["images"]["raw_value"] == len(built.images) and meta["preview_train"]["type"] == "md"
    assert meta["preview_train"]["raw_value"].startswith("![train preview](data:image/jpeg;base64,")
    assert meta["per_class"]["raw_value"]["records"] == built.stats.to_dict("records")
    # published and served: each split's preview shows in place, a 320 px copy beside it, linked to it
    monkeypatch.setenv(report.OUTPUT_URL_ENV, "http://127.0.0.1:3001")
    written: dict[str, bytes] = {}

    class Written:
        def write_bytes(self, key: str, data: bytes) -> None:
            written[key] = data

    meta = built.metadata(lambda rel: f"datasets/d/training_dataset/versions/v/{rel}", Written())
    for split, rel in built.previews.items():
        inline = f"datasets/d/training_dataset/versions/v/{report.inline_key(rel)}"
        assert meta[f"preview_{split}"]["raw_value"] == (
            f"[![{split} preview](http://127.0.0.1:3001/{inline})]"
            f"(http://127.0.0.1:3001/datasets/d/training_dataset/versions/v/{rel})"
        )
        small = cv2.imdecode(np.frombuffer(written[inline], np.uint8), cv2.IMREAD_COLOR)
        assert small.shape[1] == report.INLINE_WIDTH and small.std() > 10


def test_a_dataset_is_never_written_over_another(drives: Drives, built: DatasetResult) -> None:
    with pytest.raises(DatasetOutputError, match="not empty"):
        build_dataset(drives.frames, drives.label_rows, drives.read_bytes, {}, built.out_dir)
