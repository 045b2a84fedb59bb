"""The `detector_model` step: fine-tune a YOLO detector on a training_dataset version and publish it check-gated.

It trains on a ``datasets/<dataset>/training_dataset`` version (`detector_training.train_detector`, epochs
streamed to the log), evaluates fine-tuned against base (`detector_eval`) and publishes best.pt,
metrics.json, results.csv, eval.json and training_curves.png (loss and mAP per epoch, the asset's picture) as
a version of ``models/<dataset>/detector_model``: a model worse than its base is kept for inspection but never
becomes current. In a SageMaker Training job the dataset comes from the ``dataset`` input channel, metrics
are printed for the job's MetricDefinitions and the model files also go to ``/opt/ml/model`` (the job's model
artefact); a tuning trial only trains (`run_detector_trial`), and the chosen trial's artefact is then
evaluated and published (``trained_model``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key, storage_from_uri
from rosbag_assets.steps import report, sagemaker_container
from rosbag_assets.steps.detector_data import DATASET_CHANNEL, dataset_version, fetch_dataset, present_splits
from rosbag_assets.steps.detector_eval import evaluate_against_base, split_metadata
from rosbag_assets.steps.detector_model_options import DetectorModelOptions
from rosbag_assets.steps.detector_training import (
    DetectorTrainingError,
    TrainOutcome,
    log_progress,
    outcome_metadata,
    resolve_base_weights,
    train_detector,
)
from rosbag_assets.steps.detector_tune import TUNE_SPACE
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.vision.training_curves import training_curves_png
from rosbag_assets.vision.weights import default_cache_dir, resolve_weights, sha256_file

MODEL_FILES = ("best.pt", "metrics.json", "results.csv")  # what training writes (and a model.tar.gz holds)
CURVES = "training_curves.png"  # results.csv drawn: train/val loss, val mAP per epoch
# Options a SageMaker tuning range may set (others are where/what to train, not how).
TUNABLE_OPTIONS = ("epochs", "imgsz", "batch", "optimizer", "lr0", "augmentation", "patience", "seed")


def model_prefix(dataset: str) -> str:
    return join_key("models", dataset, "detector_model")


def checkpoint_dir(opts: DetectorModelOptions, dataset_version: str, work: Path) -> Path:
    """Where Ultralytics keeps last.pt: under a surviving root when there is one, else the temp dir.

    The root is ROSBAG_ASSETS_CHECKPOINT_DIR, else SageMaker's ``/opt/ml/checkpoints`` (synced to S3 when the
    Training job has a CheckpointConfig), so a retried or Spot-interrupted job resumes. The subfolder is keyed
    by dataset version and options: a job for another dataset or configuration never resumes this one's run.
    """
    root = os.environ.get("ROSBAG_ASSETS_CHECKPOINT_DIR") or sagemaker_container.checkpoints_dir()
    if root is None:
        return work / "checkpoints"
    digest = hashlib.sha256(json.dumps(opts.model_dump(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / opts.dataset / f"{dataset_version}-{digest}"


def input_channels(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """For a SageMaker Training job: the parameters with the dataset version pinned, and the input channel
    holding that version (so the job reads exactly the version the launcher saw)."""
    opts = DetectorModelOptions.model_validate(dict(params.get("options") or {}))
    output = storage_from_uri(params["output"], endpoint_url=params.get("s3_endpoint_url"))
    version, _ = dataset_version(output, opts.dataset, opts.dataset_version)
    options = {**dict(params.get("options") or {}), "dataset_version": version.version}
    return {**params, "options": options}, {DATASET_CHANNEL: version.uri().rstrip("/") + "/"}


def adopt_trained_model(spec: str, out_dir: Path, opts: DetectorModelOptions, s3_client: Any) -> TrainOutcome:
    """Unpack a model.tar.gz written by a detector_model Training job (e.g. the best tuning trial)."""
    cache = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
    archive = resolve_weights(spec, cache, s3_client=s3_client)
    if not tarfile.is_tarfile(archive):
        raise DetectorTrainingError(f"trained_model {spec} is not a model.tar.gz")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        names = {Path(n).name: m for n, m in ((m.name, m) for m in tar.getmembers()) if m.isfile()}
        missing = [f for f in MODEL_FILES if f not in names]
        if missing:
            raise DetectorTrainingError(f"trained_model {spec} lacks {missing} (has {sorted(names)})")
        for name in MODEL_FILES:
            with tar.extractfile(names[name]) as src, (out_dir / name).open("wb") as dst:  # type: ignore[union-attr]
                shutil.copyfileobj(src, dst)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    if metrics.get("best_pt_sha256") != sha256_file(out_dir / "best.pt"):
        raise DetectorTrainingError(f"trained_model {spec}: best.pt does not match its metrics.json")
    metrics["trained_model"] = spec
    return TrainOutcome.written(out_dir, metrics)


def _to_model_dir(folder: Path, names: tuple[str, ...]) -> None:
    """Inside a SageMaker Training job, copy the model files into /opt/ml/model (the job's model.tar.gz)."""
    target = sagemaker_container.model_dir()
    if target is not None:
        for name in names:
            shutil.copyfile(folder / name, target / name)


def _train(
    opts: DetectorModelOptions, data_yaml: Path, version: str, work: Path, log: report.StepLog, s3_client: Any
) -> TrainOutcome:
    if opts.trained_model:
        log.info(f"detector_model {opts.dataset}: evaluating trained model {opts.trained_model}")
        return adopt_trained_model(opts.trained_model, work / "out", opts, s3_client)
    return train_detector(
        data_yaml, work / "out", opts, checkpoint_dir=checkpoint_dir(opts, version, work),
        progress=log_progress(log), log=log, s3_client=s3_client,
    )  # fmt: skip


@step_runner(DetectorModelOptions)
def run_detector_model(step: Step[DetectorModelOptions], s3_client: Any = None) -> report.StepResult:
    """Fine-tune on the dataset version, evaluate against base, publish a check-gated model version."""
    output, opts, log = step.output, step.options, step.log
    with tempfile.TemporaryDirectory(prefix="detector-model-") as tmp:
        work = Path(tmp)
        data_yaml, ds_manifest = fetch_dataset(output, opts.dataset, work / "dataset", opts.dataset_version)
        splits = present_splits(data_yaml)
        if not splits:
            raise ValueError(
                f"dataset {opts.dataset} version {ds_manifest['version']} has no val or test split"
            )
        log.info(f"detector_model {opts.dataset}: dataset version {ds_manifest['version']}")
        outcome = _train(opts, data_yaml, ds_manifest["version"], work, log, s3_client)
        base = resolve_base_weights(opts, s3_client=s3_client)
        evaluation, check = evaluate_against_base(
            outcome.best_pt, base, data_yaml, work / "eval", imgsz=opts.imgsz, batch=max(opts.batch, 1),
            device=opts.device, tolerance=opts.eval_tolerance, seed=opts.seed, splits=splits,
        )  # fmt: skip
        log.info(check.description)
        compared = evaluation["fine_tuned"][splits[-1]]
        sagemaker_container.emit_metrics({f"{splits[-1]}:{k}": compared[k] for k in ("mAP50", "mAP50-95")})
        (work / "out" / "eval.json").write_text(json.dumps(evaluation, indent=2))
        _to_model_dir(work / "out", (*MODEL_FILES, "eval.json"))
        draft = publish.begin(output, model_prefix(opts.dataset), step.run_id)
        for name in (*MODEL_FILES, "eval.json"):
            output.upload_file(work / "out" / name, draft.key(name))
        with outcome.results_csv.open(newline="") as f:
            curves = training_curves_png(list(csv.DictReader(f)))  # every epoch, across resumed attempts
        draft.write_bytes(CURVES, curves)
        picture = report.picture(  # its inline copy too is written before the version is sealed
            curves, f"{opts.dataset}: loss and mAP per epoch", draft.key(CURVES), "image/png", output
        )
        meta = outcome_metadata(outcome)
    checks = [check]
    rejected = report.blocking_failures(checks)
    manifest = {
        "dataset": opts.dataset,
        "dataset_version": ds_manifest["version"],
        "base_weights": opts.base_weights,
        "base_weights_sha256": outcome.metrics["base_weights_sha256"],
        "best_pt_sha256": outcome.metrics["best_pt_sha256"],
        "epochs": outcome.metrics["epochs_recorded"],
        "compared_on": splits[-1],
        "metrics": {k: {s: v for s, v in evaluation[k].items()} for k in evaluation},
        "options": opts.model_dump(),
    }
    uri = draft.commit(manifest, rejected)
    meta.pop("best_pt")
    metadata = {
        **meta,
        **split_metadata(evaluation["fine_tuned"]),
        **split_metadata(evaluation["base"], prefix="base_"),
        "dataset_version": report.text(ds_manifest["version"]),
        "model_version": report.text(draft.version),
        "model_uri": report.uri_value(uri),
        "best_pt": report.uri_value(draft.uri("best.pt")),
        "training_curves": picture,
        **report.publication(uri, rejected),
    }
    return report.StepResult(metadata=metadata, checks=checks)


def trial_options(options: Mapping[str, Any], tuned: Mapping[str, str]) -> DetectorModelOptions:
    """The options of one SageMaker tuning trial: the asset's options with the trial's tuned values."""
    if options.get("trained_model"):
        raise ValueError("a tuning trial trains: trained_model must not be set with a SageMaker tuning job")
    merged = {**options, "hyperparameters": dict(options.get("hyperparameters") or {})}
    for name, value in tuned.items():
        if name in TUNABLE_OPTIONS:
            merged[name] = value
        elif name in TUNE_SPACE:
            merged["hyperparameters"][name] = float(value)
        else:
            raise ValueError(
                f"tuning range {name!r} is neither a tunable detector_model option {list(TUNABLE_OPTIONS)} "
                f"nor an Ultralytics argument of TUNE_SPACE {sorted(TUNE_SPACE)}"
            )
    return DetectorModelOptions.model_validate(merged)


def run_detector_trial(
    *,
    output: Storage,
    options: Mapping[str, Any],
    tuned: Mapping[str, str],
    log: report.StepLog | None = None,
    s3_client: Any = None,
) -> dict[str, Any]:
    """One trial of a SageMaker tuning job: train with the tuned values and leave the model in /opt/ml/model.

    Nothing is published and there is no base comparison: the tuning job ranks trials by the ``best:*``
    metric lines, and only the winner is evaluated and published (``trained_model``).
    """
    opts = trial_options(options, tuned)
    if sagemaker_container.model_dir() is None:
        raise DetectorTrainingError("a tuning trial runs in a SageMaker Training job (no /opt/ml/model here)")
    with tempfile.TemporaryDirectory(prefix="detector-trial-") as tmp:
        work = Path(tmp)
        data_yaml, manifest = fetch_dataset(output, opts.dataset, work / "dataset", opts.dataset_version)
        log.info(f"tuning trial on dataset version {manifest['version']} with {dict(tuned)}")
        outcome = _train(opts, data_yaml, manifest["version"], work, log, s3_client)
        _to_model_dir(work / "out", MODEL_FILES)
    return outcome.metrics
