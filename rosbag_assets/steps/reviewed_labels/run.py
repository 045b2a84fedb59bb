"""The `reviewed_labels` step: import a file's reviews of one drive (see the package)."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import PurePosixPath

import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import Storage, join_key, redact
from rosbag_assets.steps import report
from rosbag_assets.steps.reviewed_labels.options import ASSET, ReviewedLabelsOptions
from rosbag_assets.steps.reviewed_labels.picture import model_labels, preview_sheet
from rosbag_assets.steps.reviewed_labels.source import (
    assign_to_drive,
    parse_file,
    resolve_file,
)
from rosbag_assets.steps.step import Step, step_runner
from rosbag_assets.steps.training_dataset.reviewed import REVIEWED_COLUMNS

ROW_COLUMNS = [*REVIEWED_COLUMNS, "labeling_job_arn", "import_file", "imported_at"]


@step_runner(ReviewedLabelsOptions)
def run_reviewed_labels(
    step: Step[ReviewedLabelsOptions], roots: list[str] | None = None, endpoint_url: str | None = None
) -> report.StepResult:
    """Import the configured file's reviews of `drive` and publish ``<drive>/reviewed_labels``."""
    drive, output, opts, log = step.drive, step.output, step.options, step.log
    store, key = resolve_file(opts.file, roots or [output.root_uri], endpoint_url)
    where = redact(store.uri(key))
    try:
        data = store.read_bytes(key)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: reviewed labels file not found") from exc
    rows, fmt = parse_file(data, where, opts)
    frames_version, index = frames.committed_frames(output, drive)
    mine, other = assign_to_drive(rows, drive, index, output.list_dirs(""), where)
    if other:
        log.info(f"{where}: {sum(other.values())} rows of other drives left to them: {dict(other)}")
    imported_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    mine = mine.assign(labeling_job_arn=opts.labeling_job_arn, import_file=where, imported_at=imported_at)
    mine = mine[ROW_COLUMNS]

    prefix = join_key(drive, ASSET)
    previous = publish.current(output, prefix)
    kept = pd.DataFrame(columns=ROW_COLUMNS)
    if previous is not None and not opts.replace:
        old = publish.Version(output, prefix, previous["version"]).read_parquet("reviewed.parquet")
        kept = old[~old["frame_key"].isin(set(mine["frame_key"]))]
    table = pd.concat([df for df in (kept, mine) if len(df)], ignore_index=True)[ROW_COLUMNS]
    table = table.sort_values(["frame_key", "imported_at"], kind="stable", ignore_index=True)

    model = model_labels(output, drive)
    sheet = preview_sheet(output, drive, mine, model, opts.preview_frames)
    draft = publish.begin(output, prefix, step.run_id)
    draft.write_parquet("reviewed.parquet", table)
    draft.write_bytes(f"source/{PurePosixPath(key).name}", data)
    draft.write_bytes("preview.jpg", sheet)
    boxes = mine[mine["class_name"].notna()]
    jobs = sorted(set(mine["job"].astype(str)))
    this_import = {
        "file": where,
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": fmt,
        "jobs": jobs,
        "labeling_job_arn": opts.labeling_job_arn,
        "imported_at": imported_at,
        "frames": int(mine["frame_key"].nunique()),
        "boxes": len(boxes),
    }
    imports = [] if previous is None or opts.replace else list(previous.get("imports", []))
    uri = draft.commit(
        {
            "drive": drive,
            "frames_version": frames_version.version,
            "imports": [*imports, this_import],
            "frames": int(table["frame_key"].nunique()),
            "rows": len(table),
        }
    )
    on_reviewed = model[model["frame_key"].isin(set(mine["frame_key"]))] if len(model) else model
    log.info(f"committed reviews of {this_import['frames']} frames of {drive} from {where} at {uri}")
    per_class = Counter(boxes["class_name"])
    metadata = {
        "frames_reviewed": report.integer(this_import["frames"]),
        "boxes_reviewed": report.integer(len(boxes)),
        "frames_reviewed_empty": report.integer(
            int(mine.groupby("frame_key")["class_name"].apply(lambda s: s.isna().all()).sum())
        ),
        "model_boxes_on_reviewed_frames": report.integer(len(on_reviewed)),
        "frames_reviewed_total": report.integer(int(table["frame_key"].nunique())),
        "rows_of_other_drives": report.json_value(dict(other)),
        "per_class": report.table(
            [{"class_name": c, "boxes": n} for c, n in sorted(per_class.items())],
            [("class_name", "string"), ("boxes", "int")],
        ),
        "file": report.uri_value(where),
        "format": report.text(fmt),
        "jobs": report.json_value(jobs),
        "labeling_job_arn": report.text(opts.labeling_job_arn or ""),
        "reviewed_at": report.text(str(max(mine["reviewed_at"].dropna().astype(str), default=""))),
        "imports": report.integer(len(imports) + 1),
        "frames_version": report.text(frames_version.version),
        "reviewed_uri": report.uri_value(draft.uri("reviewed.parquet")),
        "preview": report.picture(
            sheet,
            f"{drive}: reviewed (green) vs model (orange)",
            draft.key("preview.jpg"),
            storage=draft.storage,
        ),
        "elapsed_s": step.elapsed(),
        **report.publication(uri, []),
    }
    digest = pd.util.hash_pandas_object(
        table[["frame_key", "class_name", "x1", "y1", "x2", "y2"]], index=False
    )
    return report.StepResult(
        metadata=metadata, data_version=hashlib.sha256(digest.values.tobytes()).hexdigest()[:16]
    )


def read_current(output: Storage, drive: str) -> tuple[pd.DataFrame, str] | None:
    """The drive's current reviewed rows and their version, or None when nothing was imported."""
    manifest = publish.current(output, join_key(drive, ASSET))
    if manifest is None:
        return None
    version = publish.Version(output, join_key(drive, ASSET), manifest["version"])
    return version.read_parquet("reviewed.parquet"), version.version
