"""The TuSimple lane metric, so lane backends can be scored on frames users label themselves.

Format (one JSON object per line): ``{"raw_file": str, "lanes": [[x, ...], ...], "h_samples": [y, ...]}``;
each lane gives its x at every h_sample, -2 where the lane is absent.

Scoring follows TuSimple's ``LaneEval.bench``: a point is correct when it lies within 20 px (at 1280 px
width; scaled to the image width here) divided by cos(the ground-truth lane's angle); a ground-truth lane
is matched when its best prediction gets >= 85 % of its points; FP = predictions - matched lanes, FN =
unmatched ground-truth lanes; with more than 4 ground-truth lanes the worst one is forgiven; more than
``len(gt) + 2`` predictions score 0 accuracy and FN 1. One difference by default (``official=False``):
a lane's accuracy counts only the rows the ground truth labels. Official LaneEval compares all
h_samples and counts a row where both sides are -2 as correct, which lets any short stub "match" a
short ground-truth lane; ``official=True`` reproduces LaneEval exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rosbag_assets.vision.lanes import Lane

__all__ = [
    "ImageScore",
    "TuSimpleError",
    "evaluate_lanes",
    "lanes_to_tusimple",
    "read_tusimple",
    "score_image",
    "score_records",
]

PIXEL_THRESH = 20.0  # at REFERENCE_WIDTH
REFERENCE_WIDTH = 1280
POINT_THRESH = 0.85


class TuSimpleError(ValueError):
    """A TuSimple label/prediction file or record is malformed."""


@dataclass(frozen=True)
class ImageScore:
    accuracy: float
    fp: float  # false-positive rate: unmatched predictions / predictions
    fn: float  # false-negative rate: unmatched ground-truth lanes / ground-truth lanes (at most 4)
    matched: int
    predicted: int
    labelled: int


def lanes_to_tusimple(
    lanes: Sequence[Lane | Sequence[tuple[float, float]]], h_samples: Sequence[int]
) -> list[list[float]]:
    """Each polyline's x at every h_sample it spans (linear between its points), -2 elsewhere."""
    hs = np.asarray(h_samples, float)
    out = []
    for lane in lanes:
        pts = np.asarray(lane.points if isinstance(lane, Lane) else lane, float).reshape(-1, 2)
        if len(pts) < 2:
            out.append([-2.0] * len(hs))
            continue
        pts = pts[np.argsort(pts[:, 1], kind="stable")]
        xs = np.interp(hs, pts[:, 1], pts[:, 0])
        inside = (hs >= pts[0, 1]) & (hs <= pts[-1, 1])
        out.append([round(float(x), 1) if ok else -2.0 for x, ok in zip(xs, inside, strict=True)])
    return out


def _angle(xs: np.ndarray, ys: np.ndarray) -> float:
    ok = xs >= 0
    if ok.sum() < 2:
        return 0.0
    return float(np.arctan(np.polyfit(ys[ok], xs[ok], 1)[0]))


def _line_accuracy(pred: np.ndarray, gt: np.ndarray, thresh: float, official: bool) -> float:
    if official:
        p, g = np.where(pred >= 0, pred, -100.0), np.where(gt >= 0, gt, -100.0)
        return float((np.abs(p - g) < thresh).sum() / len(g))
    labelled = gt >= 0
    if not labelled.any():
        return 0.0
    hit = (pred >= 0) & (np.abs(pred - gt) < thresh)
    return float((hit & labelled).sum() / labelled.sum())


def score_image(
    pred: Sequence[Sequence[float]],
    gt: Sequence[Sequence[float]],
    h_samples: Sequence[int],
    width: int = REFERENCE_WIDTH,
    official: bool = False,
) -> ImageScore:
    """TuSimple accuracy / FP / FN of one image (see the module docstring for the rules)."""
    ys = np.asarray(h_samples, float)
    pred_a = [np.asarray(p, float) for p in pred]
    gt_a = [np.asarray(g, float) for g in gt]
    if any(len(p) != len(ys) for p in pred_a) or any(len(g) != len(ys) for g in gt_a):
        raise TuSimpleError("every lane needs one x per h_sample")
    if len(gt_a) + 2 < len(pred_a):
        return ImageScore(0.0, 0.0, 1.0, 0, len(pred_a), len(gt_a))
    px = PIXEL_THRESH * width / REFERENCE_WIDTH
    accs: list[float] = []
    matched = fn = 0
    for g in gt_a:
        thresh = px / np.cos(_angle(g, ys))
        best = max((_line_accuracy(p, g, thresh, official) for p in pred_a), default=0.0)
        accs.append(best)
        if best < POINT_THRESH:
            fn += 1
        else:
            matched += 1
    fp = len(pred_a) - matched
    total = sum(accs)
    if len(gt_a) > 4:
        total -= min(accs)
        fn = max(0, fn - 1)
    denom = max(min(4.0, len(gt_a)), 1.0)
    return ImageScore(
        accuracy=total / denom,
        fp=fp / len(pred_a) if pred_a else 0.0,
        fn=fn / denom,
        matched=matched,
        predicted=len(pred_a),
        labelled=len(gt_a),
    )


def read_tusimple(path: str | Path) -> list[dict[str, Any]]:
    """Records of a TuSimple JSON-lines file, checked for the fields the metric needs."""
    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TuSimpleError(f"{path}:{n}: not JSON: {exc}") from exc
        missing = {"raw_file", "lanes", "h_samples"} - set(rec)
        if missing:
            raise TuSimpleError(f"{path}:{n}: missing {sorted(missing)}")
        records.append(rec)
    return records


def score_records(
    labels: Sequence[dict[str, Any]],
    predictions: dict[str, Sequence[Sequence[float]]],
    widths: dict[str, int] | None = None,
    official: bool = False,
) -> dict[str, Any]:
    """Mean accuracy / FP / FN over labelled images; ``predictions`` maps raw_file -> TuSimple lanes."""
    scores = {}
    for rec in labels:
        pred = predictions.get(rec["raw_file"], [])
        width = (widths or {}).get(rec["raw_file"], REFERENCE_WIDTH)
        scores[rec["raw_file"]] = score_image(pred, rec["lanes"], rec["h_samples"], width, official)
    n = max(1, len(scores))
    return {
        "images": len(scores),
        "accuracy": sum(s.accuracy for s in scores.values()) / n,
        "fp": sum(s.fp for s in scores.values()) / n,
        "fn": sum(s.fn for s in scores.values()) / n,
        "per_image": {k: vars(s) for k, s in scores.items()},
    }


def evaluate_lanes(
    labels_jsonl: str | Path,
    predict_fn: Callable[[np.ndarray], Sequence[Lane]],
    image_root: str | Path | None = None,
    official: bool = False,
) -> dict[str, Any]:
    """Run ``predict_fn`` (BGR image -> lanes) on every labelled frame and score it.

    Images are read from ``raw_file`` relative to ``image_root`` (default: the labels file's folder).
    Returns ``{"images", "accuracy", "fp", "fn", "per_image": {raw_file: {...}}}``.
    """
    labels_jsonl = Path(labels_jsonl)
    root = Path(image_root) if image_root is not None else labels_jsonl.parent
    labels = read_tusimple(labels_jsonl)
    predictions, widths = {}, {}
    for rec in labels:
        path = root / rec["raw_file"]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise TuSimpleError(f"{labels_jsonl}: cannot read image {path}")
        predictions[rec["raw_file"]] = lanes_to_tusimple(list(predict_fn(image)), rec["h_samples"])
        widths[rec["raw_file"]] = image.shape[1]
    return score_records(labels, predictions, widths, official)
