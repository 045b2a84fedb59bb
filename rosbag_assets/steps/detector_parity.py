"""Parity of an exported detector with its PyTorch model: the same boxes on the same images.

Boxes are matched one-to-one by class and IoU; the check reports the recall of the PyTorch boxes in the export
(and of the export's boxes in PyTorch's), plus the largest confidence difference of a matched pair. Reference
boxes are those at ``conf`` or above; the other side may match with a box down to ``conf - conf_slack``, so a
box whose score sits right at the threshold (0.2501 vs 0.2499) does not count as missing.

`parity_picture` shows one parity image with both models' boxes, one above the other, so a person sees what
the numbers say; it draws the boxes the check already predicted (no extra inference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rosbag_assets.steps import report
from rosbag_assets.steps.runtime import configure_ultralytics
from rosbag_assets.vision import preview
from rosbag_assets.vision.detection import _precision_kwargs

if TYPE_CHECKING:
    from rosbag_assets.steps.detector_export import DetectorExportOptions


@dataclass
class ParityReport:
    """How well one model's boxes match another's on the same images."""

    images: int
    reference_boxes: int
    candidate_boxes: int
    matched: int
    recall: float | None  # matched / reference boxes (None without reference boxes)
    reverse_recall: float | None  # candidate boxes at >= conf matched by a reference box
    max_conf_delta: float | None
    min_iou: float | None


def predict_boxes(
    weights: Path, images: Sequence[Path], *, imgsz: int, conf: float, device: str = "cpu", half: bool = False
) -> list[np.ndarray]:
    """Per image an (N, 6) array ``x1, y1, x2, y2, conf, class`` in original-image pixels.

    Images are letterboxed to the full ``imgsz`` square (``rect=False``): fixed-shape exports (TFLite,
    TensorRT) only take that, and PyTorch would otherwise pad less, so the two would see different pixels.
    """
    configure_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    out = []
    for image in images:  # one at a time: fixed-batch exports (TFLite, TensorRT) take batch 1
        res = model.predict(
            str(image),
            imgsz=imgsz,
            conf=conf,
            device=device,
            rect=False,
            verbose=False,
            **_precision_kwargs(half),
        )[0]
        out.append(res.boxes.data.cpu().numpy().astype(np.float64)[:, :6])
    return out


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each row of `boxes`."""
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _match(ref: np.ndarray, cand: np.ndarray, iou_min: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, most confident reference box first: (ref row, cand row, IoU)."""
    pairs, used = [], np.zeros(len(cand), dtype=bool)
    for i in np.argsort(-ref[:, 4]) if len(ref) else []:
        same = (cand[:, 5] == ref[i, 5]) & ~used
        if not same.any():
            continue
        ious = np.where(same, _iou(ref[i], cand) if len(cand) else 0.0, -1.0)
        j = int(np.argmax(ious))
        if ious[j] >= iou_min:
            used[j] = True
            pairs.append((int(i), j, float(ious[j])))
    return pairs


def compare_predictions(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    *,
    conf: float,
    conf_slack: float,
    iou_min: float,
) -> ParityReport:
    """Match reference boxes (conf >= `conf`) to candidate boxes (conf >= `conf - conf_slack`), and back."""
    low = conf - conf_slack
    n_ref = n_cand = matched = back = 0
    deltas: list[float] = []
    ious: list[float] = []
    for ref, cand in zip(reference, candidate, strict=True):
        ref_hi, cand_lo = ref[ref[:, 4] >= conf], cand[cand[:, 4] >= low]
        pairs = _match(ref_hi, cand_lo, iou_min)
        n_ref += len(ref_hi)
        matched += len(pairs)
        deltas += [abs(ref_hi[i, 4] - cand_lo[j, 4]) for i, j, _ in pairs]
        ious += [iou for _, _, iou in pairs]
        cand_hi, ref_lo = cand[cand[:, 4] >= conf], ref[ref[:, 4] >= low]
        n_cand += len(cand_hi)
        back += len(_match(cand_hi, ref_lo, iou_min))
    return ParityReport(
        images=len(reference),
        reference_boxes=n_ref,
        candidate_boxes=n_cand,
        matched=matched,
        recall=matched / n_ref if n_ref else None,
        reverse_recall=back / n_cand if n_cand else None,
        max_conf_delta=max(deltas) if deltas else None,
        min_iou=min(ious) if ious else None,
    )


def parity_outcome(parity: ParityReport, fmt: str, options: DetectorExportOptions) -> report.CheckOutcome:
    """Pass when both recalls reach ``parity_min_recall`` and confidences agree within the tolerance.

    No reference box at all fails too: parity was not demonstrated (lower ``parity_conf`` or add images).
    """
    problems = []
    if parity.reference_boxes == 0:
        problems.append(
            f"the PyTorch model found no box at conf >= {options.parity_conf} on {parity.images} images"
        )
    for name, value in (("recall", parity.recall), ("reverse recall", parity.reverse_recall)):
        if value is not None and value < options.parity_min_recall:
            problems.append(f"{name} {value:.3f} < {options.parity_min_recall}")
    if parity.max_conf_delta is not None and parity.max_conf_delta > options.parity_max_conf_delta:
        problems.append(f"max confidence delta {parity.max_conf_delta:.4f} > {options.parity_max_conf_delta}")
    summary = (
        f"{fmt}: {parity.matched}/{parity.reference_boxes} PyTorch boxes matched (class + IoU >= "
        f"{options.parity_iou}) on {parity.images} images"
    )
    meta = {
        k: (report.number(v) if isinstance(v, float) else report.integer(v))
        for k, v in asdict(parity).items()
        if v is not None
    }
    return report.CheckOutcome(
        name=f"{fmt}_parity",
        passed=not problems,
        description=summary + (": " + "; ".join(problems) if problems else ""),
        metadata={
            **meta,
            "iou_min": report.number(options.parity_iou),
            "conf": report.number(options.parity_conf),
        },
    )


FORMAT_NAMES = {"onnx": "ONNX", "tflite": "TFLite", "engine": "TensorRT"}
PICTURE_WIDTH = 640  # two frames stacked; the UI's 320 px inline copy shows each as a contact-sheet tile


def telling_image(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    *,
    conf: float,
    conf_slack: float,
    iou_min: float,
) -> int:
    """The parity image most worth a look: the one with most unmatched boxes (either way), else most boxes."""

    def score(i: int) -> tuple[int, int]:
        r = compare_predictions(
            [reference[i]], [candidate[i]], conf=conf, conf_slack=conf_slack, iou_min=iou_min
        )
        unmatched_back = (
            round(r.candidate_boxes * (1 - r.reverse_recall)) if r.reverse_recall is not None else 0
        )
        return r.reference_boxes - r.matched + unmatched_back, r.reference_boxes

    return max(range(len(reference)), key=score)


def _rows(boxes: np.ndarray, names: Mapping[int, str], conf: float) -> list[dict]:
    """`preview.draw_boxes` rows of the boxes at `conf` or above."""
    return [
        {"x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "class_id": int(b[5]),
         "class_name": names.get(int(b[5]), str(int(b[5]))), "confidence": float(b[4])}
        for b in boxes[boxes[:, 4] >= conf]
    ]  # fmt: skip


def parity_picture(
    image: Path, reference: np.ndarray, candidate: np.ndarray, names: Mapping[int, str], fmt: str, conf: float
) -> bytes:
    """JPEG of `image` twice: PyTorch's boxes above, the `fmt` export's below (boxes at `conf` or above)."""
    frame = preview.thumbnail(Path(image).read_bytes())
    pytorch, exported = _rows(reference, names, conf), _rows(candidate, names, conf)

    def boxes(rows: list[dict]) -> str:
        return f"{len(rows)} box{'' if len(rows) == 1 else 'es'}"

    tiles = [
        preview.caption(preview.draw_boxes(frame, pytorch), f"PyTorch: {boxes(pytorch)} at conf >= {conf:g}"),
        preview.caption(
            preview.draw_boxes(frame, exported), f"{FORMAT_NAMES.get(fmt, fmt)}: {boxes(exported)}"
        ),
    ]
    return preview.jpeg_bytes(preview.contact_sheet(tiles, columns=1, tile_width=PICTURE_WIDTH), quality=85)
