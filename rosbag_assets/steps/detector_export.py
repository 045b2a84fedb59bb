"""The `detector_export` step: the current detector_model as ONNX, TFLite and TensorRT, each checked for parity.

An export is only useful if it predicts what the PyTorch model predicts, so every export gets a parity check
on the dataset's validation images (`detector_parity`). ONNX parity blocks publication of
``models/<dataset>/detector_export`` (object_labels runs the ONNX); the other formats warn.

Formats: ONNX always (CPU; `detection.export_onnx`, the same cached export inference runs); TFLite when
Ultralytics' LiteRT exporter's package (``litert-torch``) is installed; TensorRT only with CUDA and the
``tensorrt`` package. A format that cannot run here is *skipped* with the reason, never silently dropped.
The version also holds ``pytorch_vs_onnx.jpg`` (the asset's picture): one parity image with both models' boxes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from rosbag_assets.io import publish
from rosbag_assets.io.storage import join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.detector_data import class_names, dataset_images, fetch_dataset, present_splits
from rosbag_assets.steps.detector_export_options import DetectorExportOptions, ExportFormat
from rosbag_assets.steps.detector_model import model_prefix
from rosbag_assets.steps.detector_parity import (
    FORMAT_NAMES,
    ParityReport,
    compare_predictions,
    parity_outcome,
    parity_picture,
    predict_boxes,
    telling_image,
)
from rosbag_assets.steps.runtime import configure_ultralytics
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision.detection import _precision_kwargs, export_onnx, pick_device


class ExportUnavailable(RuntimeError):
    """This format cannot be exported in this environment (no CUDA, a missing package); the export is skipped."""


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
    # exported: per parity image, the image with PyTorch's and the export's boxes (what the picture draws)
    predictions: list[tuple[Path, np.ndarray, np.ndarray]] | None = None


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
            ExportOutcome(
                fmt, "exported", path, seconds=round(seconds, 2), parity=parity, check=check,
                predictions=list(zip(images, reference, candidate, strict=True)),
            )
        )  # fmt: skip
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


def parity_comparison(
    outcomes: Sequence[ExportOutcome], names: dict[int, str], options: DetectorExportOptions
) -> tuple[str, bytes] | None:
    """The format shown and `parity_picture` of it: ONNX (what object_labels runs), else the first exported
    format; the parity image with the most disagreement, drawn from the boxes the check predicted."""
    shown = sorted((o for o in outcomes if o.predictions), key=lambda o: o.format != "onnx")
    if not shown:
        return None
    fmt, pairs = shown[0].format, shown[0].predictions or []
    i = telling_image(
        [r for _, r, _ in pairs], [c for _, _, c in pairs], conf=options.parity_conf,
        conf_slack=options.parity_conf_slack, iou_min=options.parity_iou,
    )  # fmt: skip
    image, reference, candidate = pairs[i]
    return fmt, parity_picture(image, reference, candidate, names, fmt, options.parity_conf)


def export_prefix(dataset: str) -> str:
    return join_key("models", dataset, "detector_export")


def export_checks(outcomes: list[ExportOutcome]) -> list[report.CheckOutcome]:
    """One parity check per known format (the asset declares all three, so each must be reported).

    ONNX blocks (object_labels runs it); TFLite and TensorRT warn, and a skipped or unrequested format is
    reported as a WARN failure saying why: parity was not shown, and where the build ran must not block.
    """
    by_format = {o.format: o for o in outcomes}
    checks = []
    for fmt in get_args(ExportFormat):
        o = by_format.get(fmt)
        check = o.check if o is not None else None
        if check is None:
            why = f"skipped: {o.reason}" if o is not None else "not in the requested formats"
            check = report.CheckOutcome(f"{fmt}_parity", passed=False, description=f"{fmt} {why}")
        check.severity = "ERROR" if fmt == "onnx" else "WARN"
        checks.append(check)
    return checks


@step_runner(DetectorExportOptions)
def run_detector_export(step: Step[DetectorExportOptions]) -> report.StepResult:
    """Export the current detector_model version; publish the exports with their parity checks.

    ONNX parity blocks publication (object_labels runs the ONNX); other formats warn: they are skipped
    wherever their toolchain is missing, and a version must not depend on where it was built.
    """
    output, opts, log = step.output, step.options, step.log
    model, model_manifest = publish.require_current(output, model_prefix(opts.dataset))
    with tempfile.TemporaryDirectory(prefix="detector-export-") as tmp:
        work = Path(tmp)
        best = work / "model" / "best.pt"
        best.parent.mkdir(parents=True)
        output.download_file(model.key("best.pt"), best)
        data_yaml, _ = fetch_dataset(output, opts.dataset, work / "dataset")
        split = "val" if "val" in present_splits(data_yaml) else "train"
        images = dataset_images(data_yaml, split, limit=opts.parity_max_images)
        outcomes = export_detector(best, work / "exports", images, opts, log=log)
        draft = publish.begin(output, export_prefix(opts.dataset), step.run_id)
        files: dict[str, str] = {}
        for o in outcomes:
            if o.status == "exported" and o.path is not None:
                paths = [o.path] if o.path.is_file() else sorted(p for p in o.path.rglob("*") if p.is_file())
                for p in paths:
                    rel = p.relative_to(o.path.parent).as_posix()
                    output.upload_file(p, draft.key(rel))
                files[o.format] = o.path.name
        pictures: dict[str, report.MetadataValue] = {}
        compared = parity_comparison(outcomes, class_names(data_yaml), opts)
        if compared is not None:  # written before commit: the picture (and its inline copy) is in the version
            fmt, data = compared
            key = draft.write_bytes(f"pytorch_vs_{fmt}.jpg", data)
            alt = f"{opts.dataset}: PyTorch vs {FORMAT_NAMES[fmt]} boxes"
            pictures[f"pytorch_vs_{fmt}"] = report.picture(data, alt, key, storage=output)
    checks = export_checks(outcomes)
    rejected = report.blocking_failures(checks)
    manifest = {
        "dataset": opts.dataset,
        "model_version": model.version,
        "model_sha256": model_manifest.get("best_pt_sha256"),
        "files": files,
        "formats": {o.format: {"status": o.status, "reason": o.reason} for o in outcomes},
        "parity_images": len(images),
        "options": opts.model_dump(),
    }
    uri = draft.commit(manifest, rejected)
    metadata = {
        **exports_metadata(outcomes),
        "model_version": report.text(model.version),
        "export_version": report.text(draft.version),
        "export_uri": report.uri_value(uri),
        **pictures,
        **report.publication(uri, rejected),
    }
    return report.StepResult(metadata=metadata, checks=checks)
