"""A tiny real YOLO-format detection dataset for tests, labelled by a real COCO model.

Images are real photos (the BDD100K dash-cam frames in ../shared/data and Ultralytics' bus.jpg / zidane.jpg),
resized so the longer side is `max_side` (training at small imgsz then reads small files). Labels are the
predictions of the shared COCO YOLO11n int8 TFLite model, kept only for `classes` and renumbered 0..n-1:
pseudo-labels, but on real pixels, so a trained model and its exports see realistic inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import yaml

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TFLITE_MODEL = SHARED_DATA / "models" / "yolo11n_int8.tflite"
BDD_DIR = SHARED_DATA / "images" / "bdd100k"

# Every split holds both default classes: person appears in cb22 (val), caeb and bus (test), zidane (train).
DEFAULT_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "caec69a1-75429ccd.jpg",
        "cb5903ec-ab4d55f9.jpg",
        "cbd64c44-cdb37ccb.jpg",
        "cc73b69d-b31c28dc.jpg",
        "cc97fab0-f9a08d07.jpg",
        "zidane.jpg",
    ),
    "val": ("cb22c820-f094952f.jpg",),
    "test": ("caeb782d-4a20b7c4.jpg", "bus.jpg"),
}


def ultralytics_asset(name: str) -> Path:
    """A photo shipped inside the Ultralytics wheel (bus.jpg, zidane.jpg)."""
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / name


def source_image(name: str) -> Path:
    """Where a DEFAULT_SPLITS image lives: Ultralytics' assets or the shared BDD100K folder."""
    return ultralytics_asset(name) if name in {"bus.jpg", "zidane.jpg"} else BDD_DIR / name


def missing_inputs() -> list[Path]:
    """Shared files the builder needs that are not present (tests skip on a non-empty list)."""
    needed = [TFLITE_MODEL, *(source_image(n) for names in DEFAULT_SPLITS.values() for n in names)]
    return [p for p in needed if not p.is_file()]


def build_detector_dataset(
    root: Path,
    *,
    classes: Sequence[str] = ("person", "car"),
    splits: dict[str, Sequence[str]] | None = None,
    max_side: int = 320,
    conf: float = 0.3,
) -> Path:
    """Write images/{split}/*.jpg, labels/{split}/*.txt and data.yaml under `root`; return data.yaml."""
    from ultralytics import YOLO

    labeller = YOLO(str(TFLITE_MODEL), task="detect")
    class_ids = {name: i for i, name in enumerate(classes)}
    for split, names in (splits or DEFAULT_SPLITS).items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            image = cv2.imread(str(source_image(name)))
            if image is None:
                raise FileNotFoundError(f"cannot read fixture image {source_image(name)}")
            scale = max_side / max(image.shape[:2])
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            stem = Path(name).stem
            cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), small)
            result = labeller.predict(image, conf=conf, verbose=False)[0]
            rows = [
                f"{class_ids[result.names[int(c)]]} " + " ".join(f"{v:.6f}" for v in box)
                for c, box in zip(result.boxes.cls.tolist(), result.boxes.xywhn.tolist(), strict=True)
                if result.names[int(c)] in class_ids
            ]
            (root / "labels" / split / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
    data = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(classes)),
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


def coco_yolo11n_pt() -> Path:
    """The shared COCO YOLO11n (TFLite) rebuilt as a trainable .pt, cached by the TFLite file's hash (the
    conversion takes a while; every detector test shares the cached file)."""
    import hashlib
    import tempfile

    from tflite_to_pt import convert_tflite_yolo11n

    digest = hashlib.sha256(TFLITE_MODEL.read_bytes()).hexdigest()[:16]
    cached = Path(tempfile.gettempdir()) / "rosbag_assets_tests_fixtures" / f"yolo11n_coco_{digest}.pt"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_suffix(".part.pt")
        convert_tflite_yolo11n(TFLITE_MODEL, part, ultralytics_asset("bus.jpg"))
        part.replace(cached)
    return cached
