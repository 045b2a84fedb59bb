"""detector_model / detector_eval / detector_export on real images, offline, on the CPU.

The base model is the shared COCO YOLO11n (TFLite) rebuilt as a trainable .pt (tflite_to_pt.py); the dataset
is nine real photos pseudo-labelled by that TFLite model (detector_dataset.py). Networking is blocked while
training, so any download attempt fails the test.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from detector_dataset import (
    TFLITE_MODEL,
    build_detector_dataset,
    coco_yolo11n_pt,
    missing_inputs,
    ultralytics_asset,
)

from rosbag_assets.steps.detector_data import dataset_images
from rosbag_assets.steps.detector_eval import (
    NOT_WORSE_CHECK,
    base_model_for_dataset,
    compare_to_base,
    evaluate_against_base,
    evaluate_detector,
)
from rosbag_assets.steps.detector_export import DetectorExportOptions, export_detector
from rosbag_assets.steps.detector_model import DetectorModelOptions
from rosbag_assets.steps.detector_parity import (
    compare_predictions,
    parity_outcome,
    parity_picture,
    predict_boxes,
    telling_image,
)
from rosbag_assets.steps.detector_training import (
    AUGMENTATION_PRESETS,
    find_resume_checkpoint,
    train_detector,
    training_args,
)
from rosbag_assets.steps.detector_tune import TUNE_SPACE

IMGSZ = 320  # small and fast, still large enough for the COCO model to find the cars and people
PARITY = DetectorExportOptions(formats=["onnx"], imgsz=IMGSZ, device="cpu")


@pytest.fixture(scope="module")
def inputs_present() -> None:
    missing = missing_inputs()
    if missing:
        pytest.skip(f"shared test data missing: {missing}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, inputs_present: None) -> Path:
    return build_detector_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def coco_pt(inputs_present: None) -> Path:
    """The COCO YOLO11n as .pt (converted once, cached across runs)."""
    return coco_yolo11n_pt()


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise OSError("network access is disabled in this test")


def _block_network(mp: pytest.MonkeyPatch) -> None:
    """Any socket connection attempt raises: the code under test must not download anything."""
    mp.setattr(socket.socket, "connect", _refuse)
    mp.setattr(socket, "create_connection", _refuse)


@pytest.fixture
def no_network() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        _block_network(mp)
        yield


def _options(**overrides: Any) -> DetectorModelOptions:
    base = {"epochs": 1, "imgsz": IMGSZ, "batch": 8, "workers": 0, "device": "cpu", "seed": 0}
    return DetectorModelOptions(**{**base, **overrides})


@pytest.fixture(scope="module")
def fine_tuned(
    tmp_path_factory: pytest.TempPathFactory, dataset: Path, coco_pt: Path
) -> tuple[Any, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    out = tmp_path_factory.mktemp("fine_tuned")
    with pytest.MonkeyPatch.context() as mp:
        _block_network(mp)
        outcome = train_detector(dataset, out, _options(base_weights=str(coco_pt)), progress=events.append)
    return outcome, events


# --- options ----------------------------------------------------------------------------------------------


def test_options_map_to_ultralytics_arguments(tmp_path: Path) -> None:
    args = training_args(
        _options(augmentation="none", optimizer="SGD", lr0=0.002), tmp_path / "d.yaml", "cpu"
    )
    assert args["amp"] is False  # on CPU: Ultralytics' AMP check would download a model
    assert args["mosaic"] == 0.0 and args["fliplr"] == 0.0 and args["lr0"] == 0.002
    assert args["optimizer"] == "SGD" and args["plots"] is False
    assert "mosaic" not in training_args(_options(), tmp_path / "d.yaml", "cpu")  # default: Ultralytics' own
    assert AUGMENTATION_PRESETS["strong"]["flipud"] == 0.0  # never upside-down dash-cams
    with pytest.raises(ValueError, match="lr0 is ignored"):
        DetectorModelOptions(lr0=0.01)
    with pytest.raises(ValueError):
        DetectorModelOptions(augmentation="extreme")


# --- training ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fine_tune_writes_model_metrics_and_streams_progress(
    fine_tuned: tuple[Any, list], dataset: Path
) -> None:
    outcome, events = fine_tuned
    assert outcome.best_pt.is_file() and outcome.results_csv.is_file() and outcome.metrics_json.is_file()
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1]  # one progress event per epoch ...
    assert events[-1]["event"] == "final"  # ... then best.pt's validation
    assert set(epochs[0]["losses"]) == {"box_loss", "cls_loss", "dfl_loss"}
    assert {"mAP50", "mAP50-95", "precision", "recall"} <= set(epochs[0])
    saved = json.loads(outcome.metrics_json.read_text())
    assert saved["epochs_recorded"] == 1 and saved["resumed_from"] is None
    assert saved["best_val"]["mAP50"] == events[-1]["mAP50"]
    assert saved["seconds_per_epoch"] > 0

    from ultralytics import YOLO

    assert YOLO(str(outcome.best_pt)).names == {0: "person", 1: "car"}  # the dataset's classes, not COCO's


@pytest.mark.slow
def test_interrupted_training_resumes_from_last_pt(tmp_path: Path, dataset: Path, no_network: None) -> None:
    class SpotInterruption(Exception):
        pass

    def interrupt_after_first_epoch(event: dict[str, Any]) -> None:
        if event.get("epoch") == 1:
            raise SpotInterruption

    checkpoints = tmp_path / "checkpoints"  # /opt/ml/checkpoints on SageMaker
    options = _options(base_weights="yolo11n.yaml", epochs=2, imgsz=160)
    with pytest.raises(SpotInterruption):
        train_detector(
            dataset, tmp_path / "a", options, checkpoint_dir=checkpoints, progress=interrupt_after_first_epoch
        )
    last = find_resume_checkpoint(checkpoints)
    assert last == checkpoints / "train" / "weights" / "last.pt"

    events: list[dict[str, Any]] = []
    outcome = train_detector(
        dataset, tmp_path / "b", options, checkpoint_dir=checkpoints, progress=events.append
    )
    assert outcome.resumed_from == str(last)
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [2]  # epoch 1 is not trained again
    assert outcome.metrics["epochs_recorded"] == 2
    assert find_resume_checkpoint(checkpoints) is None  # finished: last.pt is no longer resumable

    again = train_detector(
        dataset, tmp_path / "c", options, checkpoint_dir=checkpoints, progress=events.append
    )
    assert len(events) == 2 and again.metrics["epochs_run_this_attempt"] == 0  # collected, not retrained
    assert again.best_pt.read_bytes() == outcome.best_pt.read_bytes()
    assert again.metrics["best_val"] == outcome.metrics["best_val"] and "mAP50" in again.metrics["best_val"]


@pytest.mark.slow
def test_tuning_searches_then_trains_with_the_best_hyperparameters(tmp_path: Path, dataset: Path) -> None:
    events: list[dict[str, Any]] = []
    options = _options(base_weights="yolo11n.yaml", imgsz=160, tune=True, tune_iterations=1, tune_epochs=1)
    outcome = train_detector(
        dataset, tmp_path / "out", options, checkpoint_dir=tmp_path / "ck", progress=events.append
    )
    assert [e["event"] for e in events] == ["tune_iteration", "epoch", "final"]
    tuned = outcome.tuned_hyperparameters
    assert tuned is not None and set(tuned) == set(TUNE_SPACE)  # never flipud: not in the dash-cam space
    run_args = yaml.safe_load((tmp_path / "ck" / "train" / "args.yaml").read_text())
    assert run_args["lr0"] == tuned["lr0"] and run_args["optimizer"] == "AdamW"  # what the search used
    assert json.loads(outcome.metrics_json.read_text())["tuned_hyperparameters"] == tuned


# --- evaluation -------------------------------------------------------------------------------------------


def _label_counts(dataset: Path, split: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for label in (dataset.parent / "labels" / split).glob("*.txt"):
        for line in label.read_text().splitlines():
            counts[int(line.split()[0])] = counts.get(int(line.split()[0]), 0) + 1
    return counts


@pytest.mark.slow
def test_evaluation_per_class_and_not_worse_check(
    tmp_path: Path, dataset: Path, coco_pt: Path, fine_tuned: tuple[Any, list]
) -> None:
    outcome, _ = fine_tuned
    report, check = evaluate_against_base(
        outcome.best_pt, coco_pt, dataset, tmp_path, imgsz=IMGSZ, batch=4, device="cpu"
    )
    for model in ("fine_tuned", "base"):
        for split in ("val", "test"):
            rows = report[model][split]["per_class"]
            assert [row["class_name"] for row in rows] == ["person", "car"]
            assert {row["class_id"]: row["instances"] for row in rows} == {0: 0, 1: 0} | _label_counts(
                dataset, split
            )
    # The base is the model that labelled the data: it must score well on it (a broken remap would not).
    assert report["base"]["test"]["mAP50"] > 0.5
    assert all(row["mAP50"] > 0.3 for row in report["base"]["test"]["per_class"])
    assert check.name == NOT_WORSE_CHECK
    delta = report["fine_tuned"]["test"]["mAP50-95"] - report["base"]["test"]["mAP50-95"]
    assert check.metadata["delta"]["raw_value"] == pytest.approx(delta)
    assert check.passed == (delta >= -0.01)

    # The check fails when the fine-tuned model is worse: an untrained model against the COCO base.
    untrained = base_model_for_dataset("yolo11n.yaml", dataset, tmp_path / "untrained.pt")
    untrained_report = evaluate_detector(untrained, dataset, splits=["test"], imgsz=IMGSZ, device="cpu")
    worse = compare_to_base(untrained_report, report["base"], tolerance=0.01)
    assert not worse.passed and "worse than base" in worse.description
    assert compare_to_base(report["base"], untrained_report, tolerance=0.01).passed


# --- export -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_onnx_export_matches_pytorch(tmp_path: Path, dataset: Path, coco_pt: Path) -> None:
    images = dataset_images(dataset, "val") + dataset_images(dataset, "test")
    outcomes = export_detector(
        coco_pt, tmp_path, images, PARITY.model_copy(update={"formats": ["onnx", "engine"]})
    )
    onnx, engine = outcomes
    assert onnx.status == "exported" and onnx.path.suffix == ".onnx" and onnx.path.is_file()
    assert onnx.parity.reference_boxes >= 10  # real detections on real frames, not an empty comparison
    assert onnx.check.passed, onnx.check.description
    assert onnx.parity.recall >= 0.95 and onnx.parity.max_conf_delta <= 0.05
    import torch

    if not torch.cuda.is_available():
        assert engine.status == "skipped" and "CUDA" in engine.reason


@pytest.mark.slow
def test_parity_check_fails_for_a_wrong_model(tmp_path: Path, dataset: Path, coco_pt: Path) -> None:
    """The ONNX of the wrong head (2 classes: person, car) against the 80-class COCO model: cars differ."""
    images = dataset_images(dataset, "val") + dataset_images(dataset, "test")
    wrong = base_model_for_dataset(coco_pt, dataset, tmp_path / "person_car.pt")
    (outcome,) = export_detector(wrong, tmp_path / "wrong", images, PARITY)
    reference = predict_boxes(coco_pt, images, imgsz=IMGSZ, conf=0.2)
    report = compare_predictions(
        reference, _boxes_of(outcome.path, images), conf=0.25, conf_slack=0.05, iou_min=0.9
    )
    check = parity_outcome(report, "onnx", PARITY)
    assert not check.passed and "recall" in check.description
    assert report.reference_boxes >= 10 and report.recall < 0.95


def _boxes_of(model: Path, images: list[Path]) -> list:
    return predict_boxes(model, images, imgsz=IMGSZ, conf=0.2)


def test_box_matching_needs_same_class_and_iou_and_tolerates_the_threshold_edge() -> None:
    import numpy as np

    ref = [np.array([[10, 10, 110, 60, 0.26, 2], [200, 50, 260, 170, 0.9, 0]], dtype=float)]
    edge = [np.array([[10, 10, 110, 60, 0.24, 2], [200, 50, 260, 170, 0.9, 0]], dtype=float)]
    report = compare_predictions(ref, edge, conf=0.25, conf_slack=0.05, iou_min=0.9)
    assert report.recall == 1.0 and report.reverse_recall == 1.0  # 0.26 vs 0.24: the same box
    assert report.max_conf_delta == pytest.approx(0.02)
    shifted = [np.array([[20, 10, 120, 60, 0.26, 2], [200, 50, 260, 170, 0.9, 1]], dtype=float)]
    report = compare_predictions(ref, shifted, conf=0.25, conf_slack=0.05, iou_min=0.9)
    assert report.matched == 0  # IoU 0.82 < 0.9, and the second box changed class


def test_parity_picture_shows_both_models_boxes_on_the_most_telling_image() -> None:
    import cv2
    import numpy as np
    from conftest import shared

    from rosbag_assets.vision.preview import class_colour

    image = sorted(shared("images", "bdd100k").glob("*.jpg"))[0]  # a 1280x720 dash-cam frame
    car, person = [300, 300, 700, 560, 0.8, 2], [900, 200, 1000, 500, 0.7, 0]
    busy = np.array([car, person, [100, 100, 200, 200, 0.9, 0]], dtype=float)
    reference = [busy, np.array([car, person], dtype=float)]
    candidate = [busy.copy(), np.array([person], dtype=float)]  # the export lost the car on image 1
    i = telling_image(reference, candidate, conf=0.25, conf_slack=0.05, iou_min=0.9)
    assert i == 1  # the disagreement, not the image with more (all matched) boxes
    data = parity_picture(image, reference[i], candidate[i], {0: "person", 2: "car"}, "onnx", 0.25)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (720, 640, 3)  # two 640x360 frames, PyTorch above, ONNX below
    orange = np.array(class_colour(2))

    def car_edge(top: int) -> float:  # share of the car box's left edge (x = 300 / 2) drawn in the car colour
        edge = img[top + 165 : top + 275, 148:153].astype(int)
        return float((np.abs(edge - orange).sum(axis=2) < 80).any(axis=1).mean())

    assert car_edge(0) > 0.8 and car_edge(360) < 0.2


def test_a_failed_export_is_a_failing_check(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    (outcome,) = export_detector(broken, tmp_path / "out", [], PARITY)
    assert outcome.status == "failed" and outcome.check is not None and not outcome.check.passed


@pytest.mark.slow
def test_tflite_export_is_exported_or_skipped_with_a_reason(
    tmp_path: Path, dataset: Path, coco_pt: Path
) -> None:
    images = dataset_images(dataset, "val")
    (outcome,) = export_detector(coco_pt, tmp_path, images, PARITY.model_copy(update={"formats": ["tflite"]}))
    if outcome.status == "skipped":
        assert "litert-torch" in outcome.reason
    else:
        assert outcome.status == "exported" and outcome.check.passed, outcome.check.description


@pytest.mark.slow
def test_converted_coco_model_predicts_like_the_tflite_original(coco_pt: Path, dataset: Path) -> None:
    """The fixture model is what the tests claim: the shared COCO model, not a random one."""
    images = [ultralytics_asset("bus.jpg"), ultralytics_asset("zidane.jpg")]
    ours = predict_boxes(coco_pt, images, imgsz=640, conf=0.2)
    original = predict_boxes(TFLITE_MODEL, images, imgsz=640, conf=0.2)
    report = compare_predictions(original, ours, conf=0.25, conf_slack=0.1, iou_min=0.9)
    assert report.reference_boxes >= 6 and report.recall == 1.0


# --- GPU ---------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_fine_tune_and_tensorrt_export(tmp_path: Path, dataset: Path, coco_pt: Path) -> None:
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    outcome = train_detector(dataset, tmp_path / "gpu", _options(base_weights=str(coco_pt), device=None))
    assert outcome.metrics["device"] == "cuda:0"
    options = DetectorExportOptions(formats=["engine"], imgsz=IMGSZ, half=True, parity_max_conf_delta=0.1)
    images = dataset_images(dataset, "val") + dataset_images(dataset, "test")
    (engine,) = export_detector(coco_pt, tmp_path / "exports", images, options)
    if importlib.util.find_spec("tensorrt") is None:
        assert engine.status == "skipped" and "tensorrt" in engine.reason
    else:
        assert engine.status == "exported" and engine.check.passed, engine.check.description
