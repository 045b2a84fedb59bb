"""Blur or pixelate faces and licence plates in a topic's frame sequence (plain Python, CPU).

Faces come from CenterFace on the whole frame (``vision/faces.py``); plates from the PP-OCR text detector
run on crops of the vehicle boxes the object labels already hold (``vision/textdet.py``), and optionally on
the whole frame. Every region records the model that found it. Detectors miss objects in single frames
(motion blur, a partly hidden face), so a region seen in frame t is "carried" into the following frames
of the same sequence, unchanged in place but grown a little each frame, until it is seen again or
``carry_frames`` frames have passed. Blur strength scales with the region, so a plate gets equally
unreadable at VGA and at 4K.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import cv2
import numpy as np

from rosbag_assets.vision.anonymize_options import VEHICLE_CLASSES, AnonymizeOptions
from rosbag_assets.vision.detection import as_bgr
from rosbag_assets.vision.faces import CENTERFACE_NAME, CENTERFACE_PATH, CenterFaceDetector
from rosbag_assets.vision.textdet import (
    PPOCR_DET_NAME,
    PPOCR_DET_PATH,
    Box,
    TextBox,
    TextDetector,
    plate_like,
)
from rosbag_assets.vision.weights import sha256_file

CARRIED = "carried"


@dataclass(frozen=True)
class Region:
    """A hidden rectangle in frame pixels (after padding, clipped; x2/y2 exclusive) and who found it."""

    x1: int
    y1: int
    x2: int
    y2: int
    kind: Literal["face", "plate"]
    source: str  # "centerface" | "ppocr-det" | "carried"
    score: float
    detected_by: str  # the model that first found it (equal to source unless carried)

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x1, self.y1, self.x2, self.y2

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for tables / JSON)."""
        return asdict(self)


@dataclass
class _Track:
    box: tuple[float, float, float, float]
    kind: str
    score: float
    detected_by: str
    last_seen: int


def model_info() -> dict[str, dict[str, str]]:
    """Name, file, SHA-256 and licence of each shipped model (for provenance metadata)."""
    return {
        CENTERFACE_NAME: {
            "file": CENTERFACE_PATH.name,
            "sha256": sha256_file(CENTERFACE_PATH),
            "licence": "MIT",
        },
        PPOCR_DET_NAME: {
            "file": PPOCR_DET_PATH.name,
            "sha256": sha256_file(PPOCR_DET_PATH),
            "licence": "Apache-2.0",
        },
    }


def vehicle_boxes(detections: Iterable[Any], classes: frozenset[str] = VEHICLE_CLASSES) -> list[Box]:
    """Pixel boxes of the vehicle detections among objects with ``class_name, x1, y1, x2, y2``."""
    return [(d.x1, d.y1, d.x2, d.y2) for d in detections if d.class_name in classes]


class Anonymizer:
    """Loads the detectors once; :meth:`process` anonymizes one topic's frame sequence."""

    def __init__(self, options: AnonymizeOptions | None = None) -> None:
        self.options = o = options or AnonymizeOptions()
        self.faces = (
            CenterFaceDetector(o.face_threshold, max_side=o.face_max_side, threads=o.threads)
            if o.faces
            else None
        )
        self.text = (
            TextDetector(o.text_threshold, o.text_pixel_threshold, o.text_unclip_ratio, threads=o.threads)
            if o.plates
            else None
        )

    def process(
        self,
        frames: Iterable[np.ndarray],
        vehicle_boxes_per_frame: Iterable[Sequence[Box]] | None = None,
    ) -> Iterator[tuple[np.ndarray, list[Region]]]:
        """(anonymized copy, regions) per frame, in order. Carrying spans this one call (one sequence)."""
        seq = self.sequence()
        boxes_iter = iter(vehicle_boxes_per_frame) if vehicle_boxes_per_frame is not None else None
        for i, frame in enumerate(frames):
            boxes: Sequence[Box] = ()
            if boxes_iter is not None:
                try:
                    boxes = next(boxes_iter)
                except StopIteration:
                    raise ValueError(f"vehicle_boxes_per_frame ran out at frame {i}") from None
            yield seq.push(frame, boxes)

    def sequence(self) -> AnonymizeSequence:
        """A fresh per-topic state, for callers that feed frames one at a time (or interleave topics)."""
        return AnonymizeSequence(self)

    def detect(self, frame: np.ndarray, vehicles: Sequence[Box] = ()) -> list[Region]:
        """Padded regions found in one uint8 frame (BGR, BGRA or mono) by the models (no carrying)."""
        o = self.options
        h, w = frame.shape[:2]
        try:
            frame_bgr = as_bgr(frame)
        except ValueError as exc:
            raise ValueError(
                f"cannot anonymize a frame of shape {frame.shape}, {frame.dtype}: {exc}"
            ) from exc
        found: list[Region] = []
        if self.faces is not None:
            for f in self.faces.detect(frame_bgr):
                pad = (o.face_padding, o.face_padding)
                found.append(_region((f.x1, f.y1, f.x2, f.y2), pad, w, h, "face", CENTERFACE_NAME, f.score))
        if self.text is not None:
            crops = [
                _pad(v, o.vehicle_margin, w, h)
                for v in vehicles
                if min(v[2] - v[0], v[3] - v[1]) >= o.min_vehicle_px
            ]
            per_crop = self.text.detect_crops(frame_bgr, crops, o.text_crop_side, o.text_max_upscale)
            texts: list[tuple[TextBox, Box | None]] = [
                (t, c) for c, ts in zip(crops, per_crop, strict=True) for t in ts
            ]
            if o.text_whole_frame:
                texts += [(t, None) for t in self.text.detect_frame(frame_bgr, o.text_frame_max_side)]
            pad = (o.plate_padding_x, o.plate_padding_y)
            plates = [
                _region((t.x1, t.y1, t.x2, t.y2), pad, w, h, "plate", PPOCR_DET_NAME, t.score)
                for t, crop in texts
                if plate_like(t, crop)
            ]
            found += _merge_duplicates(plates)
        return found

    def hide(self, frame: np.ndarray, regions: Sequence[Region]) -> np.ndarray:
        """A copy of the frame with every region blurred or pixelated (pixels outside stay identical)."""
        out = frame.copy()
        for r in regions:
            if r.x2 - r.x1 < 1 or r.y2 - r.y1 < 1:
                continue
            roi = out[r.y1 : r.y2, r.x1 : r.x2]
            if self.options.method == "pixelate":
                out[r.y1 : r.y2, r.x1 : r.x2] = pixelate(roi, self.options.pixel_blocks).reshape(roi.shape)
            else:
                out[r.y1 : r.y2, r.x1 : r.x2] = blur(roi, self.options.blur_sigma).reshape(roi.shape)
        return out


class AnonymizeSequence:
    """Per-topic state: the regions that may be carried into the next frames."""

    def __init__(self, anonymizer: Anonymizer) -> None:
        self.anonymizer = anonymizer
        self.tracks: list[_Track] = []
        self.index = -1

    def push(self, frame: np.ndarray, vehicles: Sequence[Box] = ()) -> tuple[np.ndarray, list[Region]]:
        """Anonymize the next frame of this sequence: (anonymized copy, regions hidden in it)."""
        self.index += 1
        o = self.anonymizer.options
        h, w = frame.shape[:2]
        found = self.anonymizer.detect(frame, vehicles)
        matched: set[int] = set()
        for r in found:
            best, best_iou = None, o.carry_iou
            for k, t in enumerate(self.tracks):
                if k not in matched and t.kind == r.kind and (iou := _iou(t.box, r.box)) >= best_iou:
                    best, best_iou = k, iou
            if best is None:
                self.tracks.append(_Track(r.box, r.kind, r.score, r.source, self.index))
                matched.add(len(self.tracks) - 1)
            else:
                self.tracks[best] = _Track(r.box, r.kind, r.score, r.source, self.index)
                matched.add(best)
        regions = list(found)
        alive = []
        for t in self.tracks:
            missed = self.index - t.last_seen
            if missed == 0:  # seen in this frame: already among the found regions
                alive.append(t)
            elif missed <= o.carry_frames:
                alive.append(t)
                grow = o.carry_growth * missed
                regions.append(_region(t.box, (grow, grow), w, h, t.kind, CARRIED, t.score, t.detected_by))
        self.tracks = alive
        return self.anonymizer.hide(frame, regions), regions


def blur(roi: np.ndarray, sigma_fraction: float) -> np.ndarray:
    """Gaussian blur with sigma proportional to the region's shorter side (kernel ~6 sigma, odd)."""
    sigma = max(1.0, sigma_fraction * min(roi.shape[:2]))
    k = 2 * math.ceil(3 * sigma) + 1
    return cv2.GaussianBlur(roi, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def pixelate(roi: np.ndarray, blocks: int) -> np.ndarray:
    """Average ``blocks`` cells across the shorter side (same cell size along the longer one)."""
    h, w = roi.shape[:2]
    cell = max(1.0, min(h, w) / blocks)
    small = cv2.resize(roi, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def coverage(box: Sequence[float], regions: Iterable[Region], shape: tuple[int, ...]) -> float:
    """Fraction of ``box`` (x1, y1, x2, y2 pixels) covered by the union of regions in a frame of ``shape``."""
    h, w = shape[:2]
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x2, y2 = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    mask = np.zeros((y2 - y1, x2 - x1), bool)
    for r in regions:
        mask[
            max(r.y1, y1) - y1 : max(min(r.y2, y2) - y1, 0), max(r.x1, x1) - x1 : max(min(r.x2, x2) - x1, 0)
        ] = True
    return float(mask.mean())


def _pad(box: Sequence[float], fraction: float, w: int, h: int, fraction_y: float | None = None) -> Box:
    """``box`` grown by ``fraction`` of its width (``fraction_y`` of its height) per side, clipped."""
    fy = fraction if fraction_y is None else fraction_y
    bw, bh = box[2] - box[0], box[3] - box[1]
    return (
        max(0.0, box[0] - fraction * bw),
        max(0.0, box[1] - fy * bh),
        min(float(w), box[2] + fraction * bw),
        min(float(h), box[3] + fy * bh),
    )


def _region(
    box: Sequence[float],
    padding: tuple[float, float],
    w: int,
    h: int,
    kind: str,
    source: str,
    score: float,
    detected_by: str | None = None,
) -> Region:
    x1, y1, x2, y2 = _pad(box, padding[0], w, h, padding[1])
    return Region(
        math.floor(x1),
        math.floor(y1),
        math.ceil(x2),
        math.ceil(y2),
        kind,  # type: ignore[arg-type]
        source,
        float(score),
        detected_by or source,
    )


def _merge_duplicates(regions: list[Region], min_overlap: float = 0.5) -> list[Region]:
    """One region per plate: overlapping vehicle crops can see one plate twice, whole or in part. Regions
    that overlap by at least ``min_overlap`` of the smaller one become their union (highest score kept)."""
    merged = sorted(regions, key=lambda r: -r.score)
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(merged):
            for j in range(i + 1, len(merged)):
                b = merged[j]
                if _intersection(a.box, b.box) >= min_overlap * min(_area(a.box), _area(b.box)):
                    union = (min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
                    merged[i] = Region(*union, a.kind, a.source, a.score, a.detected_by)
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def _area(a: Sequence[float]) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0
