"""Batched object detection over BGR frames: Ultralytics YOLO, with an OpenCV HOG people fallback.

`load_detector` resolves the configured weights (see `weights.resolve_weights`) and loads the model once;
call `detect_batch` as often as needed on the returned detector. When the weights cannot be obtained
(offline, no cache) and `DetectorConfig.allow_fallback` is set, a `HogPeopleDetector` is returned
instead: a real, download-free pedestrian detector that only knows the COCO class 0 "person".
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from rosbag_assets.vision.weights import (
    WeightsUnavailableError,
    default_cache_dir,
    resolve_weights,
    sha256_file,
)

PERSON_CLASS_ID = 0  # COCO
HOG_MODEL_NAME = "opencv-hog-people"
# A real COCO detector that ships with the package (AGPL-3.0, see models/yolo11n_int8.ORIGIN.md): what runs
# offline when the configured weights cannot be downloaded and fallback is allowed.
BUNDLED_WEIGHTS = Path(__file__).with_name("models") / "yolo11n_int8.tflite"


@dataclass
class Detection:
    """One box in pixel coordinates (clipped to the image), with its class and confidence in 0..1."""

    class_id: int
    class_name: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float

    def xyxyn(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Corners normalized to 0..1 by the image size."""
        return self.x1 / width, self.y1 / height, self.x2 / width, self.y2 / height

    def xywhn(self, width: int, height: int) -> tuple[float, float, float, float]:
        """YOLO-style normalized centre x, centre y, width, height."""
        return (
            (self.x1 + self.x2) / 2 / width,
            (self.y1 + self.y2) / 2 / height,
            (self.x2 - self.x1) / width,
            (self.y2 - self.y1) / height,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for tables / JSON)."""
        return asdict(self)


@dataclass
class DetectorConfig:
    """What to detect with and how. ``device=None`` picks cuda:0 when available, else cpu."""

    weights: str = "yolo11n.pt"
    confidence: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    classes: list[int] | None = None
    batch_size: int = 16
    device: str | None = None
    half: bool | None = None  # None: half precision on CUDA (Ultralytics ignores it where unsupported)
    allow_fallback: bool = False
    cache_dir: str | None = None
    cpu_runtime: str = "onnx"  # on CPU, .pt weights are exported once to ONNX and run by ONNX Runtime


class Detector(Protocol):
    """A loaded detector: provenance attributes plus batched detection."""

    model_name: str
    weights_uri: str
    weights_sha256: str | None
    fallback_reason: str | None

    def detect_batch(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """One list of detections per input image, in input order."""
        ...


def pick_device(requested: str | None) -> str:
    """The requested device, else "cuda:0" when CUDA is available, else "cpu"."""
    if requested:
        return requested
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Convert a uint8 mono (HxW, HxWx1) or BGRA image to 3-channel BGR; BGR passes through."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"unsupported image shape {image.shape}")


def _clipped(
    class_id: int, name: str, conf: float, box: Sequence[float], width: int, height: int
) -> Detection:
    """Build a Detection with its box clipped to ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return Detection(
        class_id=int(class_id),
        class_name=name,
        confidence=float(conf),
        x1=min(max(x1, 0.0), width),
        y1=min(max(y1, 0.0), height),
        x2=min(max(x2, 0.0), width),
        y2=min(max(y2, 0.0), height),
    )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    """Split ``items`` into consecutive lists of at most ``size``."""
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


class YoloDetector:
    """Ultralytics YOLO detector (.pt/.onnx/.engine/.tflite/...), loaded once, predicting whole batches."""

    def __init__(
        self,
        weights_path: Path,
        config: DetectorConfig,
        *,
        weights_uri: str | None = None,
        run_path: Path | None = None,
    ) -> None:
        """`weights_path` is what was configured (name, hash); `run_path` what runs (e.g. its ONNX export)."""
        from ultralytics import YOLO

        self.config = config
        self.device = pick_device(config.device)
        self.half = config.half if config.half is not None else self.device.startswith("cuda")
        if self.device == "cpu":
            _use_all_cpu_threads()
        self.model_name = Path(weights_path).name
        self.weights_uri = weights_uri or str(weights_path)
        self.weights_sha256: str | None = sha256_file(Path(weights_path))
        self.fallback_reason: str | None = None
        self.runtime = runtime_of(Path(run_path or weights_path))
        self.ran = str(
            run_path or weights_path
        )  # the file that actually runs (e.g. the ONNX export of a .pt)
        self.model = YOLO(str(run_path or weights_path), task="detect")
        self._precision_kwargs = _precision_kwargs(self.half)
        self.names: dict[int, str] = dict(self.model.names)

    def detect_batch(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Detect in ``images_bgr``, predicting ``config.batch_size`` images per model call."""
        out: list[list[Detection]] = []
        for chunk in _chunks([as_bgr(im) for im in images_bgr], self.config.batch_size):
            results = self.model.predict(
                chunk,
                conf=self.config.confidence,
                iou=self.config.iou,
                imgsz=self.config.imgsz,
                classes=self.config.classes,
                device=self.device,
                batch=len(chunk),
                verbose=False,
                **self._precision_kwargs,
            )
            out.extend(self._to_detections(r) for r in results)
        return out

    def _to_detections(self, result: Any) -> list[Detection]:
        """Map one Ultralytics Results object to Detections."""
        height, width = result.orig_shape[:2]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return []
        xyxy = boxes.xyxy.cpu().numpy()
        confs = boxes.conf.cpu().numpy()
        cls = boxes.cls.cpu().numpy().astype(int)
        return [
            _clipped(c, self.names.get(int(c), str(c)), p, b, width, height)
            for b, p, c in zip(xyxy, confs, cls, strict=True)
        ]


def _precision_kwargs(half: bool) -> dict[str, Any]:
    """``quantize=16|None`` where Ultralytics has it (``half`` is deprecated there), else ``half``."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    if "quantize" in DEFAULT_CFG_DICT:
        return {"quantize": 16 if half else None}
    return {"half": half}


def _use_all_cpu_threads() -> None:
    """Undo the ``OMP_NUM_THREADS=1`` default that ``import ultralytics`` applies when unset."""
    import torch

    wanted = os.cpu_count() or 1
    if torch.get_num_threads() < wanted:
        torch.set_num_threads(wanted)


_RUNTIMES = {".onnx": "onnxruntime", ".pt": "torch", ".torchscript": "torch", ".tflite": "tflite",
             ".engine": "tensorrt", ".mlpackage": "coreml", ".xml": "openvino"}  # fmt: skip


def runtime_of(path: Path) -> str:
    """The inference runtime Ultralytics uses for a weights file, by its format."""
    if path.name.endswith("_openvino_model"):
        return "openvino"
    return _RUNTIMES.get(path.suffix, f"ultralytics ({path.suffix or path.name})")


class HogPeopleDetector:
    """OpenCV's built-in HOG + linear-SVM pedestrian detector (Dalal-Triggs); needs no download.

    Detects only COCO class 0 "person". Confidence is the SVM margin ``m`` (distance past the
    decision boundary, as returned by ``detectMultiScale``) squashed to 0..1 as ``1 - exp(-m)``:
    monotone, 0 at the boundary, ~0.63 at margin 1. Images are downscaled so the longer side is at
    most ``config.imgsz`` (never upscaled); its 64x128 window then finds people taller than about
    128 px at that scale. Overlapping boxes are merged with NMS at ``config.iou``.
    """

    model_name = HOG_MODEL_NAME
    weights_uri = "opencv://HOGDescriptor_getDefaultPeopleDetector"
    runtime, device, ran = "opencv", "cpu", weights_uri

    def __init__(self, config: DetectorConfig | None = None, *, fallback_reason: str | None = None) -> None:
        self.config = config or DetectorConfig()
        self.fallback_reason = fallback_reason
        coeffs = np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector(), dtype=np.float32)
        self.weights_sha256: str | None = hashlib.sha256(coeffs.tobytes()).hexdigest()
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(coeffs)
        self.names = {PERSON_CLASS_ID: "person"}

    def detect_batch(self, images_bgr: list[np.ndarray]) -> list[list[Detection]]:
        """Detect people in each image (images are processed one at a time)."""
        classes = self.config.classes
        if classes is not None and PERSON_CLASS_ID not in classes:
            return [[] for _ in images_bgr]
        return [self._detect_one(as_bgr(im)) for im in images_bgr]

    def _detect_one(self, image: np.ndarray) -> list[Detection]:
        """Multi-scale sliding-window detection on one image, then NMS."""
        height, width = image.shape[:2]
        scale = min(1.0, self.config.imgsz / max(height, width))
        small = image
        if scale < 1:
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if min(small.shape[:2]) < 128:
            return []
        rects, margins = self.hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return []
        confs = [1.0 - math.exp(-max(float(m), 0.0)) for m in np.ravel(margins)]
        boxes = [[int(v) for v in r] for r in rects]
        keep = cv2.dnn.NMSBoxes(boxes, confs, self.config.confidence, self.config.iou)
        dets = []
        for i in np.ravel(keep).astype(int):
            x, y, w, h = (v / scale for v in boxes[i])
            dets.append(_clipped(PERSON_CLASS_ID, "person", confs[i], (x, y, x + w, y + h), width, height))
        return sorted(dets, key=lambda d: -d.confidence)


def load_detector(
    config: DetectorConfig, *, s3_client: Any = None, log: Callable[[str], None] = print
) -> Detector:
    """Resolve the configured weights and load the model once; fall back to HOG if allowed."""
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    if config.weights == HOG_MODEL_NAME:  # explicit opt-in only: person class, far lower recall than YOLO
        return HogPeopleDetector(config)
    try:
        path = resolve_weights(config.weights, cache_dir, s3_client=s3_client)
    except WeightsUnavailableError as exc:
        if not config.allow_fallback:
            raise
        reason = f"configured weights {config.weights!r} could not be obtained: {exc}"
        log(
            f"WARNING: {reason}. Falling back to the bundled {BUNDLED_WEIGHTS.name} "
            "(YOLO11n, COCO 80 classes, int8 TFLite)."
        )
        detector = YoloDetector(BUNDLED_WEIGHTS, config, weights_uri=f"bundled:{BUNDLED_WEIGHTS.name}")
        detector.fallback_reason = reason
        return detector
    run_path = None
    if path.suffix == ".pt" and config.cpu_runtime == "onnx" and pick_device(config.device) == "cpu":
        try:
            run_path = export_onnx(path, cache_dir / "onnx", config.imgsz)
        except Exception as exc:  # no `onnx` package, an exotic model, ...: PyTorch still works
            log(f"WARNING: could not export {path.name} to ONNX ({exc}); running it with PyTorch on CPU")
    return YoloDetector(path, config, weights_uri=config.weights, run_path=run_path)


def export_onnx(weights: Path, cache_dir: Path, imgsz: int) -> Path:
    """The ONNX export of `.pt` weights (dynamic batch and size), made once and cached by content hash.

    ONNX Runtime runs YOLO on CPU faster than PyTorch eager mode; the export takes about a second.
    """
    target = cache_dir / f"{weights.stem}-{sha256_file(weights)[:16]}-{imgsz}.onnx"
    if target.exists():
        return target
    import shutil
    import tempfile

    from ultralytics import YOLO

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as tmp:
        local = Path(tmp) / weights.name
        shutil.copyfile(weights, local)
        exported = YOLO(str(local)).export(
            format="onnx", dynamic=True, simplify=False, imgsz=imgsz, verbose=False
        )
        os.replace(exported, target)
    return target
