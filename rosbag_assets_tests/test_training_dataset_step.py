"""The `training_dataset` step end to end: a labelled sample drive -> a published, check-gated dataset version."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import shared

from rosbag_assets.demo.sample_drive import write_sample_drive
from rosbag_assets.io import publish
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps import report
from rosbag_assets.steps.extracted_frames import run_extracted_frames
from rosbag_assets.steps.object_labels import run_object_labels
from rosbag_assets.steps.raw_bags import run_raw_bags
from rosbag_assets.steps.training_dataset.run import dataset_prefix, run_training_dataset


@pytest.mark.slow
def test_sample_drive_becomes_a_published_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = shared("models", "yolo11n_int8.tflite")
    drive = tmp_path / "landing" / "sample"
    write_sample_drive(drive)
    out = LocalStorage(tmp_path / "out")
    run_raw_bags(drive="sample", source=LocalStorage(drive), output=out)
    run_extracted_frames(drive="sample", source=LocalStorage(drive), output=out)
    run_object_labels(drive="sample", output=out, options={"weights": str(model), "max_frames": 40})

    monkeypatch.setenv(report.OUTPUT_URL_ENV, "http://127.0.0.1:3001")  # the output root, served
    res = run_training_dataset(
        output=out,
        options={
            "frames_from": "extracted_frames",
            "name": "cars",
            "split_by": "time_block",
            "block_s": 1.0,
            "guard_s": 0.2,
            "dedupe_threshold": None,
        },
    )
    checks = {c.name: c for c in res.checks}
    assert checks["dataset_has_training_data"].passed
    version, manifest = publish.require_current(out, dataset_prefix("cars"))
    assert manifest["drives"] == ["sample"]
    data = yaml.safe_load(out.read_bytes(version.key("data.yaml")))
    assert {"bus", "person"} <= set(data["names"].values())
    images = list((tmp_path / "out").glob("datasets/cars/training_dataset/versions/*/images/train/*"))
    assert images and res.metadata["published"]["raw_value"] is True
    # the split previews show in place: a 320 px copy in the published version, linked to the full sheet
    preview = res.metadata["preview_train"]["raw_value"]
    inline = version.key("preview_train.inline.jpg")
    assert (
        preview
        == f"[![train preview](http://127.0.0.1:3001/{inline})](http://127.0.0.1:3001/{version.key('preview_train.jpg')})"
    )
    small = cv2.imdecode(np.frombuffer(out.read_bytes(inline), np.uint8), cv2.IMREAD_COLOR)
    assert small.shape[1] == report.INLINE_WIDTH and small.std() > 10

    with pytest.raises(ValueError, match="no drive"):
        run_training_dataset(output=LocalStorage(tmp_path / "empty"), options={})
