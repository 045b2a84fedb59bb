"""The `training_dataset` step: read the chosen drives' published frames and labels, build, publish a version.

The builder (`build.py`) works on a local folder; this module feeds it from the output root (local or S3) and
publishes the folder as one check-gated version of ``datasets/<name>/training_dataset``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report
from rosbag_assets.steps.reviewed_labels.run import read_current
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.steps.training_dataset.build import build_dataset
from rosbag_assets.steps.training_dataset.options import TrainingDatasetOptions


def dataset_prefix(name: str) -> str:
    return join_key("datasets", name, "training_dataset")


def published_drives(output: Storage, frames_from: str) -> list[str]:
    """Drives under the output root that have committed frames (of `frames_from`) and object labels."""
    return [
        d
        for d in output.list_dirs("")
        if d not in ("datasets", "models")
        and publish.current(output, join_key(d, frames_from)) is not None
        and publish.current(output, join_key(d, "object_labels")) is not None
    ]


def _drive_tables(output: Storage, drive: str, frames_from: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drive's frame index (from `frames_from`, same frame keys either way) and its object labels."""
    frames_version, _ = publish.require_current(output, join_key(drive, frames_from))
    labels_version, _ = publish.require_current(output, join_key(drive, "object_labels"))
    return frames_version.read_parquet("index.parquet"), labels_version.read_parquet("labels.parquet")


def _reviewed(output: Storage, drives: list[str]) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """The current `reviewed_labels` rows of the drives that have any, and which version each came from."""
    found = {d: got for d in drives if (got := read_current(output, d)) is not None}
    if not found:
        return None, {}
    rows = pd.concat([table for table, _ in found.values()], ignore_index=True)
    return rows, {d: version for d, (_, version) in found.items()}


@step_runner(TrainingDatasetOptions)
def run_training_dataset(
    step: Step[TrainingDatasetOptions], endpoint_url: str | None = None
) -> report.StepResult:
    """Build the dataset `options.name` from `options.drives` (default: every drive with labels) and publish it."""
    output, opts, log = step.output, step.options, step.log
    drives = opts.drives or published_drives(output, opts.frames_from)
    if not drives:
        raise ValueError(
            f"{output.root_uri}: no drive has committed {opts.frames_from} and object_labels yet"
        )
    tables = [_drive_tables(output, d, opts.frames_from) for d in drives]
    index = pd.concat([t[0] for t in tables], ignore_index=True)
    labels = pd.concat([t[1] for t in tables], ignore_index=True)
    reviewed, reviewed_versions = _reviewed(output, drives) if opts.use_reviewed else (None, {})
    log.info(
        f"training_dataset {opts.name}: {len(index)} frames, {len(labels)} labels from {len(drives)} drives"
        + (f"; reviewed labels of {sorted(reviewed_versions)}" if reviewed_versions else "")
    )

    def read_bytes(row: dict[str, Any]) -> bytes:
        return frames.read_indexed_bytes(row, endpoint_url=endpoint_url)

    with tempfile.TemporaryDirectory(prefix="training-dataset-") as tmp:
        folder = Path(tmp) / "dataset"
        draft = publish.begin(output, dataset_prefix(opts.name), step.run_id)
        # Ground Truth / Label Studio reference images where they are published, not the build folder
        built_opts = (
            opts if opts.source_ref_prefix else opts.model_copy(update={"source_ref_prefix": draft.uri()})
        )
        result = build_dataset(index, labels, read_bytes, built_opts, folder, reviewed=reviewed, log=log.info)
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            draft.renew_lease()
            output.upload_file(path, draft.key(path.relative_to(folder).as_posix()))
        # reads the preview sheets before the folder goes; their inline copies go in before the commit
        built = result.metadata(draft.key, output)
    train = result.images[result.images["split"] == "train"] if len(result.images) else result.images
    checks = [
        report.CheckOutcome(
            "dataset_has_training_data",
            passed=len(train) > 0 and len(result.boxes) > 0,
            description=f"dataset {opts.name}: the train split holds images with boxes",
            metadata={"train_images": report.integer(len(train)), "boxes": report.integer(len(result.boxes))},
        )
    ]
    rejected = report.blocking_failures(checks)
    uri = draft.commit(
        {
            "name": opts.name,
            "drives": drives,
            "reviewed_labels_versions": reviewed_versions,
            "options": opts.model_dump(),
        },
        rejected,
    )
    metadata = {
        **built,
        "reviewed_frames": report.integer(result.selection.get("reviewed_frames", 0)),
        "reviewed_labels_versions": report.json_value(reviewed_versions),
        "dataset_uri": report.uri_value(uri),
        "data_yaml": report.uri_value(draft.uri("data.yaml")),
        "drives": report.json_value(drives),
        **report.publication(uri, rejected),
    }
    return report.StepResult(metadata=metadata, checks=checks)
