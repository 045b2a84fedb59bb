"""Evaluation of a fine-tuned detector against its base model, on the dataset's val and test splits.

"Base" means the base weights *as a model for this dataset's classes*: Ultralytics' class-name remapping
(the same one fine-tuning starts from) keeps the base head's rows for class names the base knows, so a COCO
model scores its own ``car``/``person`` predictions against the dataset's labels. Classes the base does not
know get a head row that never fires: the base honestly scores 0 there. The check "fine-tuned is not worse
than base on test" then compares like with like.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from rosbag_assets.steps import report
from rosbag_assets.steps.runtime import configure_ultralytics
from rosbag_assets.vision.detection import _precision_kwargs, pick_device

SUMMARY_KEYS = ("mAP50", "mAP50-95", "precision", "recall")
NOT_WORSE_CHECK = "fine_tuned_not_worse_than_base"


class DetectorEvaluationError(RuntimeError):
    """A model or dataset split could not be evaluated; the message names which."""


def dataset_names(data_yaml: Path) -> dict[int, str]:
    """Class id -> name from a YOLO ``data.yaml`` (``names`` as a list or a mapping)."""
    names = yaml.safe_load(Path(data_yaml).read_text()).get("names")
    if not names:
        raise DetectorEvaluationError(f"{data_yaml} has no 'names'")
    return dict(enumerate(names)) if isinstance(names, list) else {int(k): str(v) for k, v in names.items()}


def evaluate_detector(
    weights: Path,
    data_yaml: Path,
    *,
    splits: Sequence[str] = ("val", "test"),
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    half: bool | None = None,
) -> dict[str, dict[str, Any]]:
    """Per split: mAP50, mAP50-95, precision, recall overall and per class (``model.val(split=...)``).

    Every class in ``data.yaml`` gets a row; classes without labels in a split have ``instances == 0`` and
    ``None`` metrics. Splits missing from data.yaml raise DetectorEvaluationError.
    """
    configure_ultralytics()
    from ultralytics import YOLO

    data = yaml.safe_load(Path(data_yaml).read_text())
    names = dataset_names(data_yaml)
    device = pick_device(device)
    half = device.startswith("cuda") if half is None else half
    model = YOLO(str(weights), task="detect")
    report: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="detector-eval-") as tmp:
        for split in splits:
            if not data.get(split):
                raise DetectorEvaluationError(f"{data_yaml} defines no '{split}' split")
            try:
                metrics = model.val(
                    data=str(data_yaml),
                    split=split,
                    imgsz=imgsz,
                    batch=batch,
                    device=device,
                    plots=False,
                    verbose=False,
                    save_json=False,
                    project=tmp,
                    name=split,
                    exist_ok=True,
                    **_precision_kwargs(half),
                )
            except Exception as exc:
                msg = f"evaluating {Path(weights).name} on {data_yaml} split {split!r} failed"
                raise DetectorEvaluationError(f"{msg}: {type(exc).__name__}: {exc}") from exc
            report[split] = _split_report(metrics, names)
    return report


def _split_report(metrics: Any, names: dict[int, str]) -> dict[str, Any]:
    """Overall and per-class numbers from Ultralytics' DetMetrics."""
    box = metrics.box
    counts = metrics.nt_per_class if metrics.nt_per_class is not None else [0] * len(names)
    images = metrics.nt_per_image if metrics.nt_per_image is not None else [0] * len(names)
    rows: dict[int, dict[str, Any]] = {
        cid: {"class_id": cid, "class_name": name, "images": int(images[cid]), "instances": int(counts[cid])}
        | dict.fromkeys(SUMMARY_KEYS)
        for cid, name in names.items()
    }
    for i, cid in enumerate(metrics.ap_class_index):
        p, rec, ap50, ap = box.class_result(i)
        rows[int(cid)].update({"precision": p, "recall": rec, "mAP50": ap50, "mAP50-95": ap})
    return {
        "mAP50": float(box.map50),
        "mAP50-95": float(box.map),
        "precision": float(box.mp),
        "recall": float(box.mr),
        "instances": int(sum(counts)),
        "per_class": [
            {k: (round(float(v), 5) if isinstance(v, float) else v) for k, v in row.items()}
            for row in rows.values()
        ],
    }


def base_model_for_dataset(
    base_weights: str | Path, data_yaml: Path, out_path: Path, *, seed: int = 0
) -> Path:
    """Save the base model with its head remapped by class name to ``data.yaml``'s classes, as an Ultralytics .pt.

    ``base_weights`` is a local .pt or an architecture .yaml (an untrained model, seeded with ``seed``).
    """
    configure_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    names = dataset_names(data_yaml)
    torch.manual_seed(seed)
    base_weights = str(base_weights)
    if base_weights.endswith((".yaml", ".yml")):
        model = DetectionModel(base_weights, nc=len(names), verbose=False)
        model.names = names
        unknown = list(names)
    else:
        src, _ = load_checkpoint(base_weights)
        model = DetectionModel(src.yaml, nc=len(names), verbose=False)
        model.names = names  # before load(): the head rows are remapped by these names
        model.load(src, verbose=False)
        known = {str(n).strip().lower() for n in src.names.values()}
        unknown = [cid for cid, n in names.items() if n.strip().lower() not in known]
    _silence_classes(model, unknown)
    model.args = {"imgsz": 640, "task": "detect"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half().eval(), "train_args": {"task": "detect"}, "epoch": -1}, out_path)
    return out_path


def _silence_classes(model: Any, class_ids: Sequence[int]) -> None:
    """Make the head's logits for `class_ids` a constant -20 (score ~2e-9): the base cannot detect them."""
    import torch

    if not class_ids:
        return
    head = model.model[-1]
    idx = torch.as_tensor(list(class_ids))
    with torch.no_grad():
        for attr in ("cv3", "one2one_cv3"):  # YOLO26 heads also have a one-to-one branch
            for branch in getattr(head, attr, None) or ():
                branch[-1].weight[idx] = 0.0
                branch[-1].bias[idx] = -20.0


def compare_to_base(
    fine_tuned: dict[str, dict[str, Any]],
    base: dict[str, dict[str, Any]],
    *,
    split: str = "test",
    metric: str = "mAP50-95",
    tolerance: float = 0.01,
    severity: str = "ERROR",
) -> report.CheckOutcome:
    """Passes when the fine-tuned ``metric`` on ``split`` is at least base's minus ``tolerance`` (absolute)."""
    tuned_value, base_value = fine_tuned[split][metric], base[split][metric]
    delta = tuned_value - base_value
    passed = delta >= -tolerance
    per_class = [
        {
            "class_name": t["class_name"],
            "instances": t["instances"],
            "fine_tuned": t[metric],
            "base": b[metric],
        }
        for t, b in zip(fine_tuned[split]["per_class"], base[split]["per_class"], strict=True)
    ]
    verdict = "not worse than" if passed else "worse than"
    return report.CheckOutcome(
        name=NOT_WORSE_CHECK,
        passed=passed,
        severity=severity,
        description=(
            f"fine-tuned {metric} on {split} = {tuned_value:.4f} is {verdict} base {base_value:.4f} "
            f"(delta {delta:+.4f}, tolerance {tolerance})"
        ),
        metadata={
            "split": report.text(split),
            "metric": report.text(metric),
            "fine_tuned": report.number(tuned_value),
            "base": report.number(base_value),
            "delta": report.number(delta),
            "tolerance": report.number(tolerance),
            "per_class": report.table(
                per_class,
                [("class_name", "string"), ("instances", "int"), ("fine_tuned", "float"), ("base", "float")],
            ),
        },
    )


def evaluate_against_base(
    fine_tuned_weights: Path,
    base_weights: str | Path,
    data_yaml: Path,
    work_dir: Path,
    *,
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    tolerance: float = 0.01,
    seed: int = 0,
    splits: Sequence[str] = ("val", "test"),
) -> tuple[dict[str, Any], report.CheckOutcome]:
    """Evaluate fine-tuned and base on `splits`; return ``({"fine_tuned": .., "base": ..}, check)``.

    The check compares the last split (test by default: the one training never selected on).
    """
    base_pt = base_model_for_dataset(
        base_weights, data_yaml, Path(work_dir) / "base_for_dataset.pt", seed=seed
    )
    kwargs = {"imgsz": imgsz, "batch": batch, "device": device, "splits": tuple(splits)}
    report = {
        "fine_tuned": evaluate_detector(fine_tuned_weights, data_yaml, **kwargs),
        "base": evaluate_detector(base_pt, data_yaml, **kwargs),
    }
    check = compare_to_base(report["fine_tuned"], report["base"], split=splits[-1], tolerance=tolerance)
    return report, check


def split_metadata(evaluation: dict[str, Any], prefix: str = "") -> dict[str, report.MetadataValue]:
    """Flat Dagster metadata (``val_mAP50`` ...) plus a per-class table per split."""
    meta: dict[str, report.MetadataValue] = {}
    for split, numbers in evaluation.items():
        for key in SUMMARY_KEYS:
            meta[f"{prefix}{split}_{key.replace('-', '_')}"] = report.number(numbers[key])
        meta[f"{prefix}{split}_per_class"] = report.table(
            numbers["per_class"],
            [("class_name", "string"), ("instances", "int")] + [(k, "float") for k in SUMMARY_KEYS],
        )
    return meta
