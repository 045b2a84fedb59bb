"""The `detector_model` and `detector_export` steps: close the loop from drives to a published detector.

`detector_model` downloads the CURRENT version of ``datasets/<dataset>/training_dataset``, fine-tunes
(`detector_model.train_detector`, epochs streamed to the log), evaluates against the base model and publishes
best.pt, metrics.json, results.csv and eval.json as a check-gated version of ``models/<dataset>/detector_model``:
a fine-tuned model worse than its base is kept for inspection but never becomes current.
`detector_export` exports the CURRENT detector_model to ONNX (and TFLite / TensorRT where possible), checks
each export's parity on the dataset's validation images and publishes ``models/<dataset>/detector_export``.
`resolve_asset_weights` lets `object_labels` run the current model (``weights: "asset"`` / ``"asset:<name>"``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import Field

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.detector_eval import evaluate_against_base, split_metadata
from rosbag_assets.steps.detector_export import (
    DetectorExportOptions,
    ExportFormat,
    ExportOutcome,
    dataset_images,
    export_detector,
    exports_metadata,
)
from rosbag_assets.steps.detector_model import (
    DetectorModelOptions,
    log_progress,
    outcome_metadata,
    resolve_base_weights,
    train_detector,
)
from rosbag_assets.vision.weights import default_cache_dir

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DATASET_FILES = ("data.yaml", "images/", "labels/")  # what training reads of a published dataset
ASSET_SCHEME = "asset"
SAGEMAKER_CHECKPOINTS = "/opt/ml/checkpoints"


class DetectorModelStepOptions(DetectorModelOptions):
    """`detector_model`'s options (also its Launchpad config): the training options plus what to train on."""

    dataset: str = Field(
        "default", pattern=NAME_PATTERN, description="Name of the training_dataset to train on."
    )
    eval_tolerance: float = Field(
        0.01, ge=0, description="The fine-tuned mAP50-95 may be at most this much below the base model's."
    )


class DetectorExportStepOptions(DetectorExportOptions):
    """`detector_export`'s options (also its Launchpad config)."""

    dataset: str = Field(
        "default", pattern=NAME_PATTERN, description="Name of the dataset whose model to export."
    )


def model_prefix(dataset: str) -> str:
    return join_key("models", dataset, "detector_model")


def export_prefix(dataset: str) -> str:
    return join_key("models", dataset, "detector_export")


def version_files(version: publish.Version) -> list[tuple[str, str]]:
    """(key, path relative to the version) of every file of a committed version."""
    start = len(version.prefix.rstrip("/")) + 1
    return [(f.key, f.key[start:]) for f in version.storage.list_files(version.prefix)]


def download_dataset(output: Storage, dataset: str, target: Path) -> tuple[Path, dict[str, Any]]:
    """The CURRENT training_dataset version's data.yaml/images/labels under `target`; (data.yaml, manifest)."""
    from rosbag_assets.steps.training_dataset.run import dataset_prefix

    version, manifest = publish.require_current(output, dataset_prefix(dataset))
    for key, rel in version_files(version):
        if rel == "data.yaml" or rel.startswith(DATASET_FILES[1:]):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            output.download_file(key, target / rel)
    data_yaml = target / "data.yaml"
    if not data_yaml.is_file():
        raise FileNotFoundError(f"{version.uri()} has no data.yaml: was it built with the yolo format?")
    return data_yaml, manifest


def checkpoint_dir(opts: DetectorModelStepOptions, dataset_version: str, work: Path) -> Path:
    """Where Ultralytics keeps last.pt: under a surviving root when there is one, else the temp dir.

    The root is ROSBAG_ASSETS_CHECKPOINT_DIR, else SageMaker's ``/opt/ml/checkpoints`` (synced to S3 when the
    Training job has a CheckpointConfig), so a retried or Spot-interrupted job resumes. The subfolder is keyed
    by dataset version and options: a job for another dataset or configuration never resumes this one's run.
    """
    root = os.environ.get("ROSBAG_ASSETS_CHECKPOINT_DIR") or (
        SAGEMAKER_CHECKPOINTS if Path(SAGEMAKER_CHECKPOINTS).is_dir() else None
    )
    if root is None:
        return work / "checkpoints"
    digest = hashlib.sha256(json.dumps(opts.model_dump(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / opts.dataset / f"{dataset_version}-{digest}"


def _present_splits(data_yaml: Path) -> list[str]:
    data = yaml.safe_load(data_yaml.read_text())
    return [s for s in ("val", "test") if data.get(s)]


def run_detector_model(
    *,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.StepLog | None = None,
    s3_client: Any = None,
) -> report.StepResult:
    """Fine-tune on the current dataset version, evaluate against base, publish a check-gated model version."""
    log = log or report.default_log()
    opts = DetectorModelStepOptions.model_validate(dict(options or {}))
    train_opts = DetectorModelOptions.model_validate(opts.model_dump(exclude={"dataset", "eval_tolerance"}))
    with tempfile.TemporaryDirectory(prefix="detector-model-") as tmp:
        work = Path(tmp)
        data_yaml, ds_manifest = download_dataset(output, opts.dataset, work / "dataset")
        splits = _present_splits(data_yaml)
        if not splits:
            raise ValueError(
                f"dataset {opts.dataset} version {ds_manifest['version']} has no val or test split"
            )
        log.info(f"detector_model {opts.dataset}: training on dataset version {ds_manifest['version']}")
        checkpoints = checkpoint_dir(opts, ds_manifest["version"], work)
        outcome = train_detector(
            data_yaml, work / "out", train_opts, checkpoint_dir=checkpoints, progress=log_progress(log),
            log=log, s3_client=s3_client,
        )  # fmt: skip
        base = resolve_base_weights(train_opts, s3_client=s3_client)
        evaluation, check = evaluate_against_base(
            outcome.best_pt, base, data_yaml, work / "eval", imgsz=opts.imgsz, batch=max(opts.batch, 1),
            device=opts.device, tolerance=opts.eval_tolerance, seed=opts.seed, splits=splits,
        )  # fmt: skip
        log.info(check.description)
        (work / "out" / "eval.json").write_text(json.dumps(evaluation, indent=2))
        draft = publish.begin(output, model_prefix(opts.dataset), run_id)
        for name in ("best.pt", "metrics.json", "results.csv", "eval.json"):
            output.upload_file(work / "out" / name, draft.key(name))
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
        **report.publication(uri, rejected),
    }
    return report.StepResult(metadata=metadata, checks=checks)


def run_detector_export(
    *,
    output: Storage,
    options: dict[str, Any] | None = None,
    run_id: str | None = None,
    log: report.StepLog | None = None,
) -> report.StepResult:
    """Export the current detector_model version; publish the exports with their parity checks.

    ONNX parity blocks publication (object_labels runs the ONNX); other formats warn: they are skipped
    wherever their toolchain is missing, and a version must not depend on where it was built.
    """
    log = log or report.default_log()
    opts = DetectorExportStepOptions.model_validate(dict(options or {}))
    export_opts = DetectorExportOptions.model_validate(opts.model_dump(exclude={"dataset"}))
    model, model_manifest = publish.require_current(output, model_prefix(opts.dataset))
    with tempfile.TemporaryDirectory(prefix="detector-export-") as tmp:
        work = Path(tmp)
        best = work / "model" / "best.pt"
        best.parent.mkdir(parents=True)
        output.download_file(model.key("best.pt"), best)
        data_yaml, _ = download_dataset(output, opts.dataset, work / "dataset")
        split = "val" if "val" in _present_splits(data_yaml) else "train"
        images = dataset_images(data_yaml, split, limit=opts.parity_max_images)
        outcomes = export_detector(best, work / "exports", images, export_opts, log=log)
        draft = publish.begin(output, export_prefix(opts.dataset), run_id)
        files: dict[str, str] = {}
        for o in outcomes:
            if o.status == "exported" and o.path is not None:
                paths = [o.path] if o.path.is_file() else sorted(p for p in o.path.rglob("*") if p.is_file())
                for p in paths:
                    rel = p.relative_to(o.path.parent).as_posix()
                    output.upload_file(p, draft.key(rel))
                files[o.format] = o.path.name
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
        **report.publication(uri, rejected),
    }
    return report.StepResult(metadata=metadata, checks=checks)


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


def is_asset_spec(spec: str | None) -> bool:
    return spec is not None and (spec == ASSET_SCHEME or spec.startswith(f"{ASSET_SCHEME}:"))


def resolve_asset_weights(output: Storage, spec: str, cache_dir: Path | None = None) -> tuple[Path, str]:
    """``"asset"`` / ``"asset:<dataset>"`` -> (local weights file, URI naming the model asset version).

    Prefers the current detector_export's ONNX when it was exported from the current detector_model (a
    stale export is ignored), else the model's best.pt. The URI is ``asset:models/<d>/detector_model@<v>``,
    plus ``+detector_export@<v>`` when the ONNX runs, so each label row names the exact model it came from.
    """
    dataset = spec.partition(":")[2] or "default"
    model, _ = publish.require_current(output, model_prefix(dataset))
    uri = f"{ASSET_SCHEME}:{model_prefix(dataset)}@{model.version}"
    key = model.key("best.pt")
    exported = publish.current(output, export_prefix(dataset))
    if exported and exported.get("model_version") == model.version and "onnx" in exported.get("files", {}):
        export = publish.Version(output, export_prefix(dataset), exported["version"])
        key = export.key(exported["files"]["onnx"])
        uri += f"+detector_export@{export.version}"
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    local = cache / "assets" / key
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(local.name + ".part")
        output.download_file(key, part)
        part.replace(local)
    return local, uri
