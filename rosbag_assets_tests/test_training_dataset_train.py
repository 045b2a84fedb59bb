"""The YOLO export is what Ultralytics trains on: one epoch of YOLO11n from its yaml, on CPU, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_dataset_data import Drives, real_images

from rosbag_assets.steps.training_dataset import DatasetResult, build_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> DatasetResult:
    d = Drives()
    names = sorted(real_images())
    d.add("a", names[:5], repeats=2)
    d.add("b", names[5:7], start_s=1_700_000_100.0)
    d.add("c", names[7:], start_s=1_700_000_200.0)
    options = {"split_by": "drive", "class_map": {"bus": "car", "truck": "car"}, "classes": ["car", "person"]}
    return build_dataset(
        d.frames, d.label_rows, d.read_bytes, options, tmp_path_factory.mktemp("ds") / "dataset"
    )


@pytest.mark.slow
def test_ultralytics_trains_one_epoch_on_the_export(built: DatasetResult, tmp_path: Path) -> None:
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(built.out_dir / "data.yaml"))
    assert data["names"] == dict(enumerate(built.class_names))
    assert Path(data["train"]) == built.out_dir / "images" / "train"

    model = YOLO("yolo11n.yaml")  # architecture only: nothing to download
    model.train(
        data=str(built.out_dir / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        amp=False,
        plots=False,
        project=str(tmp_path),
        name="run",
        verbose=False,
    )
    trainer = model.trainer
    assert (Path(trainer.save_dir) / "weights" / "last.pt").exists()
    # Ultralytics read our label files: the same images, classes and box count per split
    train_labels = trainer.train_loader.dataset.labels
    train = built.images[built.images["split"] == "train"]
    assert len(train_labels) == len(train)
    assert sum(len(lb["cls"]) for lb in train_labels) == built.totals["train"]["boxes"]
    classes = np.concatenate([lb["cls"].ravel() for lb in train_labels]).astype(int)
    assert (
        np.bincount(classes, minlength=2).tolist() == built.stats.query("split == 'train'")["boxes"].tolist()
    )
    losses = pd.read_csv(Path(trainer.save_dir) / "results.csv").filter(like="train/")
    assert len(losses) == 1 and losses.shape[1] >= 3 and np.isfinite(losses.to_numpy()).all()


@pytest.mark.slow
def test_ultralytics_coco_converter_agrees_with_the_yolo_labels(built: DatasetResult, tmp_path: Path) -> None:
    from ultralytics.data.converter import convert_coco

    convert_coco(str(built.out_dir / "coco"), str(tmp_path / "converted"), cls91to80=False)
    for split in ("train", "val", "test"):
        for img in built.images[built.images["split"] == split].itertuples():
            stem = Path(img.file_name).stem + ".txt"
            theirs = tmp_path / "converted" / "labels" / split / stem
            ours = np.loadtxt(built.out_dir / "labels" / split / stem, ndmin=2)
            if not theirs.exists():  # the converter writes no file for an image without boxes
                assert ours.size == 0
                continue
            np.testing.assert_allclose(np.loadtxt(theirs, ndmin=2), ours, atol=2e-4)
