"""Fine-tuning an Ultralytics YOLO detector on a YOLO-format dataset directory (the `detector_model` step's work).

The dataset is a folder with ``data.yaml`` (``path``, ``train``/``val``/``test``, ``names``) and
``images/<split>``, ``labels/<split>``. Training runs inside a *checkpoint directory* (Ultralytics' run dir
``<checkpoint_dir>/train``, hyperparameter search in ``<checkpoint_dir>/tune``): on SageMaker that is
``/opt/ml/checkpoints``, which survives a spot interruption, so a restarted job resumes from ``last.pt``
instead of starting over. Results land in ``out_dir``: ``best.pt``, ``metrics.json``, ``results.csv``.

Everything is offline-safe: the font is provided by `configure_ultralytics`, AMP on CPU is off (its check
would download a model), plots are off by default, and base weights come from `weights.resolve_weights`
(``yolo11n.yaml`` builds an untrained model from the architecture file, which needs no download at all).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbag_assets.steps import report, sagemaker_container
from rosbag_assets.steps.detector_tune import tune_hyperparameters, tuned_earlier
from rosbag_assets.steps.runtime import configure_ultralytics
from rosbag_assets.vision.detection import pick_device
from rosbag_assets.vision.weights import default_cache_dir, resolve_weights, sha256_file

if TYPE_CHECKING:
    from rosbag_assets.steps.detector_model import DetectorModelOptions

Progress = Callable[[dict[str, Any]], None]

# Ultralytics augmentation arguments per preset. Vertical flips stay off: dash-cam frames are never upside down.
AUGMENTATION_PRESETS: dict[str, dict[str, float]] = {
    "none": {
        **dict.fromkeys(("hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale", "shear"), 0.0),
        **dict.fromkeys(("perspective", "flipud", "fliplr", "mosaic", "mixup", "cutmix"), 0.0),
        "close_mosaic": 0,
    },
    "default": {},  # Ultralytics' own defaults (mosaic, HSV jitter, scale 0.5, translate 0.1, fliplr 0.5)
    "strong": {
        "hsv_h": 0.02,
        "hsv_s": 0.8,
        "hsv_v": 0.5,
        "degrees": 3.0,
        "translate": 0.2,
        "scale": 0.8,
        "shear": 2.0,
        "mixup": 0.1,
        "cutmix": 0.1,
        "flipud": 0.0,
    },
}


class DetectorTrainingError(RuntimeError):
    """Training could not run or produced no model; the message names the dataset/checkpoint involved."""


@dataclass
class TrainOutcome:
    """What `train_detector` produced; paths are inside ``out_dir``."""

    best_pt: Path
    metrics_json: Path
    results_csv: Path
    metrics: dict[str, Any]
    resumed_from: str | None = None
    tuned_hyperparameters: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def written(cls, out_dir: Path, metrics: dict[str, Any]) -> TrainOutcome:
        """Record `metrics` as ``out_dir/metrics.json`` beside ``best.pt``, and describe that folder."""
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        return cls(
            best_pt=out_dir / "best.pt",
            metrics_json=out_dir / "metrics.json",
            results_csv=out_dir / "results.csv",
            metrics=metrics,
            resumed_from=metrics.get("resumed_from"),
            tuned_hyperparameters=metrics.get("tuned_hyperparameters"),
            epochs=metrics.get("epochs") or [],
        )


def amp_arg(amp: str, device: str) -> bool | str:
    """Ultralytics' ``amp`` argument for the requested precision on `device`.

    CPU trains in fp32. Ultralytics' fp16 path first runs an AMP check that downloads ``yolo26n.pt`` unless it
    is already in its weights dir, so "auto" on CUDA picks bf16 (Ampere and newer: no check), else fp16 only
    when that file is present, else fp32. An explicit "fp16" accepts Ultralytics' check as it is.
    """
    if not device.startswith("cuda") or amp == "fp32":
        return False
    if amp == "bf16":
        return "bf16"
    if amp == "fp16":
        return True
    import torch
    from ultralytics.utils import WEIGHTS_DIR

    if torch.cuda.is_bf16_supported():
        return "bf16"
    return (WEIGHTS_DIR / "yolo26n.pt").is_file()


def training_args(options: DetectorModelOptions, data_yaml: Path, device: str) -> dict[str, Any]:
    """Keyword arguments for Ultralytics ``model.train`` / ``model.tune`` (without the run directory)."""
    args: dict[str, Any] = {
        "data": str(data_yaml),
        "epochs": options.epochs,
        "imgsz": options.imgsz,
        "batch": options.batch,
        "optimizer": options.optimizer,
        "patience": options.patience,
        "seed": options.seed,
        "device": device,
        "workers": options.workers,
        "amp": amp_arg(options.amp, device),
        "plots": options.plots,
        "verbose": False,
        **AUGMENTATION_PRESETS[options.augmentation],
        **options.hyperparameters,  # e.g. a SageMaker tuning trial's momentum or box gain
    }
    if options.lr0 is not None:
        args["lr0"] = options.lr0
    return args


class ProgressCallbacks:
    """Ultralytics callbacks that turn each finished epoch into one `progress` event.

    ``on_train_epoch_end`` carries the losses, the following ``on_fit_epoch_end`` the validation metrics.
    Ultralytics fires ``on_fit_epoch_end`` once more after training to report best.pt on val: without a
    preceding train-epoch event, that one is reported as ``{"event": "final"}``.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.events: list[dict[str, Any]] = []
        self._losses: dict[str, float] | None = None

    def attach(self, model: Any) -> None:
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)

    def on_train_epoch_end(self, trainer: Any) -> None:
        self._losses = {k.split("/", 1)[1]: v for k, v in trainer.label_loss_items(trainer.tloss).items()}

    def on_fit_epoch_end(self, trainer: Any) -> None:
        metrics = _metric_names(trainer.metrics or {})
        if self._losses is None:
            event = {"event": "final", "weights": "best.pt", "split": "val", **metrics}
        else:
            event = {
                "event": "epoch",
                "epoch": trainer.epoch + 1,
                "epochs": trainer.epochs,
                "losses": self._losses,
                **metrics,
                "seconds": round(float(trainer.epoch_time or 0.0), 3),
            }
            self._losses = None
        self.events.append(event)
        self.progress(event)


def _metric_names(metrics: dict[str, Any]) -> dict[str, float]:
    """``metrics/mAP50-95(B)`` -> ``mAP50-95``; validation losses keep a ``val_`` prefix."""
    out = {}
    for key, value in metrics.items():
        name = key.split("/", 1)[-1].removesuffix("(B)")
        out[f"val_{name}" if key.startswith("val/") else name] = round(float(value), 5)
    return out


SUMMARY = ("mAP50", "mAP50-95", "precision", "recall")


def sagemaker_metrics(event: dict[str, Any]) -> dict[str, float]:
    """The SageMaker metrics of a progress event: ``train:<loss>`` and ``val:<metric>`` per epoch, and
    ``best:<metric>`` (best.pt on val) once at the end: the objective a SageMaker tuning job maximises."""
    if event["event"] == "epoch":
        losses = {f"train:{k}": v for k, v in event["losses"].items()}
        return losses | {f"val:{k}": event[k] for k in SUMMARY if k in event}
    if event["event"] == "final":
        return {f"best:{k}": event[k] for k in SUMMARY if k in event}
    return {}


def log_progress(log: report.StepLog) -> Progress:
    """A `progress` function writing one line per event (what a Pipes run streams to the Dagster UI); in a
    SageMaker Training job also a metric line for the job's MetricDefinitions."""

    def emit(event: dict[str, Any]) -> None:
        if event["event"] == "epoch":
            losses = " ".join(f"{k}={v:.3f}" for k, v in event["losses"].items())
            log.info(
                f"epoch {event['epoch']}/{event['epochs']}: {losses} mAP50={event.get('mAP50', 0):.4f} "
                f"mAP50-95={event.get('mAP50-95', 0):.4f} ({event['seconds']:.1f} s)"
            )
        else:
            log.info(f"{event['event']}: {json.dumps(event)}")
        sagemaker_container.emit_metrics(sagemaker_metrics(event))

    return emit


def _checkpoint_epoch(path: Path) -> int:
    """The epoch a last.pt was saved after; -1 for a finished run (Ultralytics strips it, setting -1)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return int(ckpt.get("epoch", -1)) if ckpt.get("optimizer") is not None else -1


def find_resume_checkpoint(checkpoint_dir: Path) -> Path | None:
    """An unfinished ``last.pt`` in ``checkpoint_dir`` (``train/weights/last.pt`` or ``last.pt``), else None."""
    for candidate in (checkpoint_dir / "train" / "weights" / "last.pt", checkpoint_dir / "last.pt"):
        if candidate.is_file() and _checkpoint_epoch(candidate) >= 0:
            return candidate
    return None


def _finished_run(run_dir: Path) -> bool:
    """True when an earlier attempt already completed training here (best.pt and a stripped last.pt)."""
    last = run_dir / "weights" / "last.pt"
    return (run_dir / "weights" / "best.pt").is_file() and last.is_file() and _checkpoint_epoch(last) < 0


def resolve_base_weights(options: DetectorModelOptions, *, s3_client: Any = None) -> str:
    """A local file for ``options.base_weights``; an architecture ``.yaml`` name passes through (no weights)."""
    spec = options.base_weights
    if spec.endswith((".yaml", ".yml")) and not Path(spec).is_file():
        return spec  # Ultralytics ships the architecture files (e.g. yolo11n.yaml) inside the wheel
    cache = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
    return str(resolve_weights(spec, cache, s3_client=s3_client))


def train_detector(
    data_yaml: Path,
    out_dir: Path,
    options: DetectorModelOptions,
    *,
    checkpoint_dir: Path | None = None,
    progress: Progress | None = None,
    log: report.StepLog | None = None,
    s3_client: Any = None,
) -> TrainOutcome:
    """Fine-tune (or resume fine-tuning) and write best.pt, metrics.json and results.csv into ``out_dir``."""
    configure_ultralytics()
    from ultralytics import YOLO

    log = log or report.default_log()
    data_yaml, out_dir = Path(data_yaml).resolve(), Path(out_dir).resolve()
    if not data_yaml.is_file():
        raise DetectorTrainingError(f"dataset description {data_yaml} does not exist")
    checkpoint_dir = Path(checkpoint_dir or out_dir / "checkpoints").resolve()
    run_dir = checkpoint_dir / "train"
    device = pick_device(options.device)
    callbacks = ProgressCallbacks(progress or log_progress(log))
    args = training_args(options, data_yaml, device)
    started = time.monotonic()
    base = resolve_base_weights(options, s3_client=s3_client)
    resume = find_resume_checkpoint(checkpoint_dir)
    tuned = None
    if resume is not None:
        log.info(f"resuming from {resume} (an earlier attempt was interrupted)")
        model = YOLO(str(resume))
        callbacks.attach(model)
        model.train(
            resume=str(resume),
            data=str(data_yaml),
            device=device,
            workers=options.workers,
            plots=options.plots,
            save_dir=str(run_dir),
        )
        tuned = tuned_earlier(checkpoint_dir / "tune")
    elif _finished_run(run_dir):
        log.info(f"training in {run_dir} already finished; collecting its outputs")
        tuned = tuned_earlier(checkpoint_dir / "tune")
    else:
        if options.tune:
            tuned = tune_hyperparameters(
                base, args, options, checkpoint_dir / "tune", callbacks.progress, log
            )
            args = {**args, **tuned}
            if (
                args["optimizer"] == "auto"
            ):  # model.tune searched with AdamW; 'auto' would ignore the tuned lr0
                args["optimizer"] = "AdamW"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a run that died before its first checkpoint
        model = YOLO(base, task="detect")
        callbacks.attach(model)
        model.train(**args, save_dir=str(run_dir))
    return _collect_outputs(
        run_dir, out_dir, callbacks.events, options, base, resume, tuned, time.monotonic() - started, device
    )


def _collect_outputs(
    run_dir: Path,
    out_dir: Path,
    events: list[dict[str, Any]],
    options: DetectorModelOptions,
    base: str,
    resume: Path | None,
    tuned: dict[str, Any] | None,
    seconds: float,
    device: str,
) -> TrainOutcome:
    """Copy best.pt and results.csv out of the run directory and write metrics.json beside them."""
    best, csv = run_dir / "weights" / "best.pt", run_dir / "results.csv"
    for needed in (best, csv):
        if not needed.is_file():
            raise DetectorTrainingError(f"training in {run_dir} finished without writing {needed.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, out_dir / "best.pt")
    shutil.copyfile(csv, out_dir / "results.csv")
    epochs = [e for e in events if e["event"] == "epoch"]
    final = next((e for e in reversed(events) if e["event"] == "final"), None)
    final_file = run_dir / "final_val.json"  # best.pt on val, kept for an attempt that only collects
    if final is not None:
        final_file.write_text(json.dumps(final))
    elif final_file.is_file():
        final = json.loads(final_file.read_text())
    metrics = {
        "best_val": {k: v for k, v in (final or {}).items() if k not in {"event", "weights", "split"}},
        "epochs_run_this_attempt": len(epochs),
        "epochs_recorded": _csv_rows(csv),
        "seconds_this_attempt": round(seconds, 2),
        "seconds_per_epoch": round(sum(e["seconds"] for e in epochs) / len(epochs), 3) if epochs else None,
        "device": device,
        "resumed_from": str(resume) if resume else None,
        "tuned_hyperparameters": tuned,
        "base_weights": options.base_weights,
        "base_weights_sha256": sha256_file(Path(base)) if Path(base).is_file() else None,
        "best_pt_sha256": sha256_file(out_dir / "best.pt"),
        "options": options.model_dump(),
        "epochs": epochs,
    }
    return TrainOutcome.written(out_dir, metrics)


def _csv_rows(csv: Path) -> int:
    """Epochs recorded in Ultralytics' results.csv (header excluded), across resumed attempts."""
    return max(0, len(csv.read_text().strip().splitlines()) - 1)


def outcome_metadata(outcome: TrainOutcome) -> dict[str, report.MetadataValue]:
    """Dagster metadata for the materialization (plain values in Pipes wire format)."""
    best = outcome.metrics["best_val"]
    meta = {
        "best_pt": report.path(str(outcome.best_pt)),
        "val_mAP50": report.number(best.get("mAP50", 0.0)),
        "val_mAP50_95": report.number(best.get("mAP50-95", 0.0)),
        "epochs_recorded": report.integer(outcome.metrics["epochs_recorded"]),
        "seconds_per_epoch": report.number(outcome.metrics["seconds_per_epoch"] or 0.0),
        "metrics": report.json_value({k: v for k, v in outcome.metrics.items() if k != "epochs"}),
    }
    if outcome.resumed_from:
        meta["resumed_from"] = report.path(outcome.resumed_from)
    return meta
