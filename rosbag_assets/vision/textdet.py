"""Text (licence plate) detection with PP-OCRv6 small det (ONNX, Apache-2.0), shipped in ``vision/models``.

The file comes from the rapidocr 3.10.0 wheel (see ``models/ppocrv6_det_small.ORIGIN.md``); rapidocr itself
is not used. Plates are small in a dash-cam frame, so the detector runs on one square canvas per vehicle
box: the box scaled to fit (enlarged at most a few times, so a 60 px car's plate reaches the network at a
legible size) with the frame around it as context, all canvases in one batch. The DB ("differentiable
binarization") post-process is the usual one: threshold the probability map, contours, min-area
rectangle, mean-probability score, "unclip" the shrunk text kernel back by ``area * ratio / perimeter``.
A text region is kept as a plate when its rectangle is roughly horizontal, wider than tall, and not most
of the vehicle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rosbag_assets.vision.onnx_models import MODELS_DIR, cpu_session

PPOCR_DET_PATH = MODELS_DIR / "ppocrv6_det_small.onnx"
PPOCR_DET_NAME = "ppocr-det"
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class TextBox:
    """One text region: its rotated rectangle as 4 corner points, the enclosing box, and a 0..1 score."""

    points: tuple[tuple[float, float], ...]
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    long_side: float
    short_side: float
    angle_deg: float  # direction of the long side, -90..90, 0 = horizontal


class TextDetector:
    """PP-OCR DB text detector. Thresholds: ``pixel_threshold`` binarizes, ``box_threshold`` keeps boxes."""

    name = PPOCR_DET_NAME

    def __init__(
        self,
        box_threshold: float = 0.5,
        pixel_threshold: float = 0.3,
        unclip_ratio: float = 1.6,
        threads: int = 0,
        model_path: Path = PPOCR_DET_PATH,
    ) -> None:
        self.box_threshold = box_threshold
        self.pixel_threshold = pixel_threshold
        self.unclip_ratio = unclip_ratio
        self.session = cpu_session(str(model_path), threads)
        self.input_name = self.session.get_inputs()[0].name

    def probability(self, canvases_bgr: np.ndarray) -> np.ndarray:
        """N x H x W text probability for N BGR uint8 canvases of one size (sides multiples of 32)."""
        x = (canvases_bgr.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0][:, 0]

    def detect_crops(
        self, image_bgr: np.ndarray, boxes: Sequence[Box], side: int = 320, max_upscale: float = 3.0
    ) -> list[list[TextBox]]:
        """Text centred inside each box of ``image_bgr`` (one list per box, frame pixels).

        Each box is scaled to fit a ``side``-square canvas, enlarged at most ``max_upscale`` times (the
        detector finds small soft text better at a moderate enlargement than blown up), and the canvas is
        filled with the frame around the box: a crop pasted on a blank canvas looks like one big sign to
        the detector, which then marks the whole crop as text. All canvases run as one batch.
        """
        side = max(32, math.ceil(side / 32) * 32)
        canvases, placements = [], []
        for box in boxes:
            bw, bh = box[2] - box[0], box[3] - box[1]
            if bw < 2 or bh < 2:
                placements.append(None)
                continue
            scale = min(side / max(bw, bh), max_upscale)
            x0 = (box[0] + box[2]) / 2 - side / scale / 2
            y0 = (box[1] + box[3]) / 2 - side / scale / 2
            canvases.append(_window(image_bgr, x0, y0, side / scale, side))
            placements.append((len(canvases) - 1, x0, y0, scale))
        if not canvases:
            return [[] for _ in boxes]
        prob = self.probability(np.stack(canvases))
        out: list[list[TextBox]] = []
        for box, place in zip(boxes, placements, strict=True):
            if place is None:
                out.append([])
                continue
            i, x0, y0, scale = place
            found = [_mapped(t, scale, x0, y0) for t in self.boxes_from_probability(prob[i])]
            out.append(
                [
                    t
                    for t in found
                    if box[0] <= (t.x1 + t.x2) / 2 <= box[2] and box[1] <= (t.y1 + t.y2) / 2 <= box[3]
                ]
            )
        return out

    def detect_frame(self, image_bgr: np.ndarray, max_side: int = 1280) -> list[TextBox]:
        """Text anywhere in the frame, the frame downscaled to ``max_side`` and padded to multiples of 32."""
        h, w = image_bgr.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else image_bgr
        pw, ph = math.ceil(sw / 32) * 32, math.ceil(sh / 32) * 32
        canvas = cv2.copyMakeBorder(small, 0, ph - sh, 0, pw - sw, cv2.BORDER_CONSTANT, value=0)
        prob = self.probability(canvas[None])[0, :sh, :sw]
        return [_mapped(t, scale, 0, 0) for t in self.boxes_from_probability(prob)]

    def boxes_from_probability(self, prob: np.ndarray) -> list[TextBox]:
        """DB post-process of one probability map, in that map's pixels."""
        mask = cv2.dilate((prob > self.pixel_threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        found = []
        for contour in contours[:1000]:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if min(rw, rh) < 3:
                continue
            score = _mean_inside(prob, cv2.boxPoints(((cx, cy), (rw, rh), angle)))
            if score < self.box_threshold:
                continue
            grow = 2 * rw * rh * self.unclip_ratio / (2 * (rw + rh))  # offset distance, both sides
            rect = ((cx, cy), (rw + grow, rh + grow), angle)
            if min(rect[1]) < 5:
                continue
            found.append(_text_box(rect, score))
        return found


def _window(image: np.ndarray, x0: float, y0: float, size: float, side: int) -> np.ndarray:
    """The ``size``-square of ``image`` at (x0, y0), resized to ``side`` x ``side``; edge pixels repeat."""
    h, w = image.shape[:2]
    ix0, iy0 = math.floor(x0), math.floor(y0)
    ix1, iy1 = math.ceil(x0 + size), math.ceil(y0 + size)
    crop = image[max(0, iy0) : max(0, min(h, iy1)), max(0, ix0) : max(0, min(w, ix1))]
    if crop.size == 0:
        return np.zeros((side, side, 3), np.uint8)
    crop = cv2.copyMakeBorder(
        crop,
        max(0, -iy0),
        max(0, iy1 - h),
        max(0, -ix0),
        max(0, ix1 - w),
        cv2.BORDER_REPLICATE,
    )
    interp = cv2.INTER_CUBIC if side > crop.shape[1] else cv2.INTER_AREA
    return cv2.resize(crop, (side, side), interpolation=interp)


def _mean_inside(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability inside a polygon (DB's "fast" box score)."""
    h, w = prob.shape
    x1, y1 = np.clip(np.floor(corners.min(0)).astype(int), 0, [w - 1, h - 1])
    x2, y2 = np.clip(np.ceil(corners.max(0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y2 - y1 + 1, x2 - x1 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - [x1, y1]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y1 : y2 + 1, x1 : x2 + 1], mask)[0])


def _text_box(rect: tuple, score: float) -> TextBox:
    """TextBox from an OpenCV rotated rectangle."""
    (_, _), (rw, rh), angle = rect
    corners = cv2.boxPoints(rect)
    long_side, short_side = max(rw, rh), min(rw, rh)
    direction = angle if rw >= rh else angle - 90.0  # OpenCV's angle is the direction of the "width" side
    direction = (direction + 90.0) % 180.0 - 90.0
    (x1, y1), (x2, y2) = corners.min(0), corners.max(0)
    pts = tuple((float(x), float(y)) for x, y in corners)
    return TextBox(pts, float(x1), float(y1), float(x2), float(y2), score, long_side, short_side, direction)


def _mapped(t: TextBox, scale: float, ox: float, oy: float) -> TextBox:
    """A TextBox moved from canvas pixels (``scale`` times frame pixels, offset ``ox, oy``) to the frame."""
    pts = tuple((x / scale + ox, y / scale + oy) for x, y in t.points)
    return TextBox(
        pts,
        t.x1 / scale + ox,
        t.y1 / scale + oy,
        t.x2 / scale + ox,
        t.y2 / scale + oy,
        t.score,
        t.long_side / scale,
        t.short_side / scale,
        t.angle_deg,
    )


def plate_like(
    t: TextBox,
    vehicle: Box | None = None,
    max_angle_deg: float = 30.0,
    min_aspect: float = 1.3,
    max_aspect: float = 12.0,
    max_vehicle_fraction: tuple[float, float] = (0.9, 0.5),
) -> bool:
    """Whether a text region could be (the characters of) a licence plate: roughly horizontal, wider than
    tall and, on a vehicle, narrower and lower than the vehicle (width, height fractions). Small blurry
    vehicles are sometimes marked as one text blob as a whole; lettering on a bus or a van passes, which
    costs little."""
    if abs(t.angle_deg) > max_angle_deg or t.short_side <= 0:
        return False
    if not min_aspect <= t.long_side / t.short_side <= max_aspect:
        return False
    if vehicle is not None:
        vw, vh = vehicle[2] - vehicle[0], vehicle[3] - vehicle[1]
        if t.x2 - t.x1 > max_vehicle_fraction[0] * vw or t.y2 - t.y1 > max_vehicle_fraction[1] * vh:
            return False
    return True
