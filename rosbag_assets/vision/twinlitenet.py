"""TwinLiteNet (drivable area + lane-line segmentation) run by ONNX Runtime, batched.

The network is tiny (0.44 M parameters), so on CPU most of a frame's cost is the convolutions at 640x360
and the rest is pre/post-processing; both are kept to one vectorised pass per batch. Masks come back at
the network's working resolution (640x360) with the scale to the frame's own pixels: upsampling a
360-row prediction to 720 rows adds no information and doubles every later step's work.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DEFAULT_MODEL",
    "INPUT_SIZE",
    "RoadMasks",
    "TwinLiteNet",
    "TwinLiteNetError",
    "choose_providers",
]

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "twinlitenet_bdd100k_640x360.onnx"
INPUT_SIZE = (640, 360)  # (width, height) the network was trained at
# Preferred order; ONNX Runtime falls back along the list for nodes a provider cannot run.
_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


class TwinLiteNetError(RuntimeError):
    """The model file is missing/unreadable or a frame cannot be fed to it."""


@dataclass(frozen=True)
class RoadMasks:
    """Per-frame network output at the working resolution (``INPUT_SIZE``).

    ``scale`` = (sx, sy) multiplies working-resolution pixel coordinates into the original frame's.
    """

    lanes: np.ndarray  # bool [360, 640]: lane-line pixels
    drivable: np.ndarray  # bool [360, 640]: drivable-area pixels
    image_size: tuple[int, int]  # (width, height) of the original frame
    scale: tuple[float, float]

    def at_image_size(self) -> tuple[np.ndarray, np.ndarray]:
        """(lanes, drivable) resized to the original frame (nearest neighbour), for callers that need it."""
        w, h = self.image_size
        return tuple(  # type: ignore[return-value]
            cv2.resize(m.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            for m in (self.lanes, self.drivable)
        )


def choose_providers(providers: Sequence[str] | None = None) -> list[str]:
    """The execution providers to ask for: the given ones, else TensorRT > CUDA > CPU where installed."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if providers is not None:
        missing = [p for p in providers if p not in available]
        if missing:
            raise TwinLiteNetError(f"ONNX Runtime lacks providers {missing}; available: {sorted(available)}")
        return list(providers)
    return [p for p in _PROVIDER_ORDER if p in available]


def _provider_config(name: str) -> str | tuple[str, dict[str, object]]:
    """TensorRT builds an engine per input shape; cache them so only the first run of a shape pays for it."""
    if name != "TensorrtExecutionProvider":
        return name
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rosbag_assets" / "tensorrt"
    cache.mkdir(parents=True, exist_ok=True)
    return name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}


class TwinLiteNet:
    """Batched ONNX Runtime session for TwinLiteNet; ``run`` may be called from several threads."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        batch_size: int = 8,
    ) -> None:
        import onnxruntime as ort

        self.model_path = Path(model_path) if model_path else DEFAULT_MODEL
        if not self.model_path.is_file():
            raise TwinLiteNetError(f"TwinLiteNet model not found: {self.model_path}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = intra_op_threads
        opts.log_severity_level = 3
        self.providers = choose_providers(providers)
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), opts, providers=[_provider_config(p) for p in self.providers]
            )
        except Exception as exc:  # ORT raises its own untyped errors for corrupt/incompatible files
            raise TwinLiteNetError(f"cannot load TwinLiteNet model {self.model_path}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        if {"drivable", "lanes"} - set(names):
            raise TwinLiteNetError(f"{self.model_path} outputs {names}, expected 'drivable' and 'lanes'")
        self._outputs = ["drivable", "lanes"]

    @staticmethod
    def preprocess(images_bgr: Sequence[np.ndarray]) -> np.ndarray:
        """float32 [N, 3, 360, 640]: each BGR (or grey/BGRA) frame resized, as RGB, divided by 255."""
        frames = []
        for i, img in enumerate(images_bgr):
            if img is None or img.ndim not in (2, 3) or img.size == 0:
                raise TwinLiteNetError(
                    f"frame {i} is not an image array (shape {getattr(img, 'shape', None)})"
                )
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            elif img.shape[2] == 4:
                img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
            frames.append(img)
        # One C++ call: resize + BGR->RGB + scale + HWC->NCHW for the whole batch.
        return cv2.dnn.blobFromImages(frames, 1.0 / 255.0, INPUT_SIZE, swapRB=True, crop=False)

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits (drivable, lanes), each [N, 2, 360, 640], for a preprocessed batch."""
        drivable, lanes = self.session.run(self._outputs, {self.input_name: batch})
        return drivable, lanes

    def run(self, images_bgr: Sequence[np.ndarray]) -> list[RoadMasks]:
        """Masks for every frame, evaluated ``batch_size`` frames per session call."""
        out: list[RoadMasks] = []
        for start in range(0, len(images_bgr), self.batch_size):
            chunk = images_bgr[start : start + self.batch_size]
            drivable, lanes = self.infer(self.preprocess(chunk))
            # argmax over two classes == "class 1 logit beats class 0", without materialising indices
            d_masks = drivable[:, 1] > drivable[:, 0]
            l_masks = lanes[:, 1] > lanes[:, 0]
            for img, d, ln in zip(chunk, d_masks, l_masks, strict=True):
                h, w = img.shape[:2]
                scale = (w / INPUT_SIZE[0], h / INPUT_SIZE[1])
                out.append(RoadMasks(lanes=ln, drivable=d, image_size=(w, h), scale=scale))
        return out
