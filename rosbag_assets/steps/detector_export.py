"""`detector_export`: the chosen detector .pt as ONNX, TFLite and TensorRT, each checked against PyTorch.

An export is only useful if it predicts what the PyTorch model predicts, so every export gets a parity check
on real (validation) images: boxes are matched one-to-one by class and IoU, and the check reports the recall
of the PyTorch boxes in the export (and of the export's boxes in PyTorch's), plus the largest confidence
difference of a matched pair. Reference boxes are those at ``conf`` or above; the other side may match with a
box down to ``conf - conf_slack``, so a box whose score sits right at the threshold (0.2501 vs 0.2499) does
not count as missing.

Formats: ONNX always (CPU; `detection.export_onnx`, the same cached export inference runs); TFLite when
Ultralytics' LiteRT exporter's package (``litert-torch``) is installed; TensorRT only with CUDA and the
``tensorrt`` package. A format that cannot run here is *skipped* with the reason, never silently dropped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rosbag_assets.steps import report
from rosbag_assets.steps.runtime import configure_ultralytics
from rosbag_assets.vision.detection import _precision_kwargs, export_onnx, pick_device

ExportFormat = Literal["onnx", "tflite", "engine"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ExportUnavailable(RuntimeError):
    """This format cannot be exported in this environment (no CUDA, a missing package); the export is skipped."""


class DetectorExportOptions(BaseModel):
    """Which formats, at which size, and how close an export must stay to PyTorch."""

    model_config = ConfigDict(extra="forbid")

    formats: list[str] = Field(
        default_factory=lambda: ["onnx", "tflite", "engine"],
        description="Export formats: onnx, tflite (needs litert-torch), engine (TensorRT, needs CUDA).",
    )
    imgsz: int = Field(640, ge=32, description="Export input size (pixels, square).")
    device: str | None = Field(
        None,
        description="Device of PyTorch reference predictions and TensorRT; default: cuda:0 if available.",
    )
    half: bool = Field(True, description="TensorRT engine in FP16.")
    parity_conf: float = Field(0.25, gt=0, lt=1, description="Reference boxes: PyTorch boxes at this conf+.")
    parity_conf_slack: float = Field(
        0.05, ge=0, lt=1, description="A matching box may score this much below parity_conf."
    )
    parity_iou: float = Field(0.9, gt=0, le=1, description="IoU a matched pair needs (same class).")
    parity_min_recall: float = Field(0.95, gt=0, le=1, description="Matched share needed both ways.")
    parity_max_conf_delta: float = Field(0.05, ge=0, description="Largest confidence gap of a matched pair.")
    parity_max_images: int = Field(50, ge=1, description="Validation images the parity check runs on.")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(get_args(ExportFormat)))
        if unknown:
            raise ValueError(f"unknown export formats {unknown}; known: {list(get_args(ExportFormat))}")
        return value


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


@dataclass
class ExportOutcome:
    """One format: exported (with its parity check), skipped (with why) or failed (with the error)."""

    format: str
    status: Literal["exported", "skipped", "failed"]
    path: Path | None = None
    reason: str = ""
    seconds: float = 0.0
    parity: ParityReport | None = None
    check: report.CheckOutcome | None = None  # exported: its parity; failed: a failing check; skipped: none


def dataset_images(data_yaml: Path, split: str = "val", limit: int | None = None) -> list[Path]:
    """The image files of a YOLO dataset split (sorted), e.g. to check parity on validation images."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(data.get("path") or Path(data_yaml).parent)
    root = root if root.is_absolute() else (Path(data_yaml).parent / root)
    entries = data.get(split)
    if not entries:
        raise FileNotFoundError(f"{data_yaml} defines no '{split}' split")
    found: list[Path] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        folder = root / entry
        found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return found[:limit] if limit else found


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


def _ultralytics_export(weights: Path, out_dir: Path, fmt: str, **kwargs: Any) -> Path:
    """Run Ultralytics' exporter on a copy of `weights` (it writes beside its input) and move the result."""
    from ultralytics import YOLO

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".export-{fmt}-") as tmp:
        local = Path(tmp) / weights.name
        shutil.copyfile(weights, local)
        exported = Path(YOLO(str(local), task="detect").export(format=fmt, verbose=False, **kwargs))
        target = out_dir / exported.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(exported, target)
    return target


def export_tflite(weights: Path, out_dir: Path, imgsz: int) -> Path:
    """FP32 TFLite through Ultralytics' LiteRT exporter (needs ``litert-torch``; never auto-installed)."""
    if importlib.util.find_spec("litert_torch") is None:
        raise ExportUnavailable(
            "Python package litert-torch is not installed (Ultralytics' TFLite exporter needs it)"
        )
    return _ultralytics_export(weights, out_dir, "litert", imgsz=imgsz)


def export_tensorrt(weights: Path, out_dir: Path, imgsz: int, *, device: str, half: bool) -> Path:
    """A TensorRT engine for this GPU (engines are specific to the GPU model and TensorRT version)."""
    import torch

    if not torch.cuda.is_available() or not device.startswith("cuda"):
        raise ExportUnavailable(f"TensorRT needs a CUDA device (device={device}, CUDA available: "
                                f"{torch.cuda.is_available()})")  # fmt: skip
    if importlib.util.find_spec("tensorrt") is None:
        raise ExportUnavailable("Python package tensorrt is not installed")
    return _ultralytics_export(
        weights, out_dir, "engine", imgsz=imgsz, device=device, **_precision_kwargs(half)
    )


def _export_one(fmt: str, weights: Path, out_dir: Path, options: DetectorExportOptions, device: str) -> Path:
    if fmt == "onnx":
        return export_onnx(weights, out_dir, options.imgsz)
    if fmt == "tflite":
        return export_tflite(weights, out_dir, options.imgsz)
    return export_tensorrt(weights, out_dir, options.imgsz, device=device, half=options.half)


def export_detector(
    weights: Path,
    out_dir: Path,
    images: Sequence[Path],
    options: DetectorExportOptions | None = None,
    *,
    log: report.StepLog | None = None,
) -> list[ExportOutcome]:
    """Export `weights` to each configured format and check each export's parity on `images`."""
    configure_ultralytics()
    options = options or DetectorExportOptions()
    log = log or report.default_log()
    weights, out_dir = Path(weights).resolve(), Path(out_dir).resolve()
    device = pick_device(options.device)
    images = list(images)[: options.parity_max_images]
    low = max(options.parity_conf - options.parity_conf_slack, 1e-4)
    reference: list[np.ndarray] | None = None  # PyTorch's boxes, predicted once an export needs them
    outcomes = []
    for fmt in options.formats:
        started = time.monotonic()
        try:
            path = _export_one(fmt, weights, out_dir, options, device)
        except ExportUnavailable as exc:
            log.info(f"{fmt} export skipped: {exc}")
            outcomes.append(ExportOutcome(fmt, "skipped", reason=str(exc)))
            continue
        except Exception as exc:
            log.warning(f"{fmt} export of {weights.name} failed: {type(exc).__name__}: {exc}")
            reason = f"{type(exc).__name__}: {exc}"
            check = report.CheckOutcome(
                name=f"{fmt}_parity", passed=False, description=f"{fmt} export failed: {reason}"
            )
            outcomes.append(ExportOutcome(fmt, "failed", reason=reason, check=check))
            continue
        seconds = time.monotonic() - started
        if reference is None:
            reference = predict_boxes(weights, images, imgsz=options.imgsz, conf=low, device=device)
        run_device = "cpu" if fmt in {"onnx", "tflite"} else device
        candidate = predict_boxes(path, images, imgsz=options.imgsz, conf=low, device=run_device)
        parity = compare_predictions(
            reference, candidate, conf=options.parity_conf, conf_slack=options.parity_conf_slack,
            iou_min=options.parity_iou,
        )  # fmt: skip
        check = parity_outcome(parity, fmt, options)
        log.info(check.description)
        outcomes.append(
            ExportOutcome(fmt, "exported", path, seconds=round(seconds, 2), parity=parity, check=check)
        )
    return outcomes


def exports_metadata(outcomes: Sequence[ExportOutcome]) -> dict[str, report.MetadataValue]:
    """One table row per format (status, file, reason, parity numbers) for the Dagster UI."""
    rows = [
        {
            "format": o.format,
            "status": o.status,
            "path": str(o.path or ""),
            "reason": o.reason,
            "seconds": o.seconds,
            "recall": o.parity.recall if o.parity else None,
            "max_conf_delta": o.parity.max_conf_delta if o.parity else None,
        }
        for o in outcomes
    ]
    columns = [("format", "string"), ("status", "string"), ("path", "string"), ("reason", "string"),
               ("seconds", "float"), ("recall", "float"), ("max_conf_delta", "float")]  # fmt: skip
    return {"exports": report.table(rows, columns)}
