"""The one entry point every compute target runs: ``python -m rosbag_assets.steps.entrypoint``.

Launched by Dagster (in a subprocess, a Batch/SageMaker job or a K8s pod) it speaks dagster-pipes: the job
name and parameters come from the Pipes context's extras, logs/metadata/check results go back as Pipes
messages. Run by hand, ``--params params.json`` runs the job without Dagster and prints its result as JSON.

Parameters: ``{"step": <asset name>, "drive": ..., "source": <drive uri>,
"output": <output root uri>, "s3_endpoint_url": ..., "run_id": ..., "options": {...}}`` plus, for
``extract``, ``version``/``bag_names``/``commit`` to split work (see `steps.fanout`), and for ``catalog``,
``drives`` (the drives that exist; others are dropped from it); an AWS Batch array child runs part
``AWS_BATCH_JOB_ARRAY_INDEX`` of the plan in its extras.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rosbag_assets.io.drives import validate_drive_name
from rosbag_assets.io.storage import storage_from_uri
from rosbag_assets.steps import fanout, report, sagemaker_container
from rosbag_assets.steps.runtime import configure_runtime, where_running

DRIVE_STEPS = (
    "raw_bags",
    "extracted_frames",
    "object_labels",
    "lane_labels",
    "anonymized_frames",
    "reviewed_labels",
    "drive_report",
    "topic_tables",
    "drive_timeline",
    "scenes",
    "foxglove",
)
MODEL_STEPS = ("detector_model", "detector_export")
STEPS = (*DRIVE_STEPS, "training_dataset", "catalog", *MODEL_STEPS)


def run_step(params: Mapping[str, Any], log: report.StepLog | None = None) -> report.StepResult:
    """Run one step, named after its asset, with plain parameters (no Dagster involved); its metadata
    says where it ran (``target``) and every check result names the drive it is about."""
    result = _run_step(params, log)
    result.metadata.setdefault("target", report.text(where_running(params.get("target"))))
    drive = params.get("drive")
    return report.traceable(result, validate_drive_name(drive)) if drive else result


# Each step's plain-Python runner, imported only when that step runs (a step's process pays for its own imports).
RUNNERS = {
    "raw_bags": "rosbag_assets.steps.raw_bags:run_raw_bags",
    "extracted_frames": "rosbag_assets.steps.extracted_frames.run:run_extracted_frames",
    "object_labels": "rosbag_assets.steps.object_labels:run_object_labels",
    "lane_labels": "rosbag_assets.steps.lane_labels:run_lane_labels",
    "anonymized_frames": "rosbag_assets.steps.anonymized_frames:run_anonymized_frames",
    "reviewed_labels": "rosbag_assets.steps.reviewed_labels.run:run_reviewed_labels",
    "drive_report": "rosbag_assets.steps.drive_report:run_drive_report",
    "topic_tables": "rosbag_assets.steps.topic_tables.run:run_topic_tables",
    "drive_timeline": "rosbag_assets.steps.drive_timeline.run:run_drive_timeline",
    "scenes": "rosbag_assets.steps.scenes:run_scenes",
    "foxglove": "rosbag_assets.steps.foxglove:run_foxglove",
    "training_dataset": "rosbag_assets.steps.training_dataset.run:run_training_dataset",
    "catalog": "rosbag_assets.steps.catalog.run:run_catalog",
    "detector_model": "rosbag_assets.steps.detector_model:run_detector_model",
    "detector_export": "rosbag_assets.steps.detector_export:run_detector_export",
}
READS_SOURCE = ("raw_bags", "extracted_frames", "topic_tables")  # steps that read the drive's bags
READS_S3_DIRECTLY = (
    "training_dataset",
    "catalog",
    "reviewed_labels",
)  # steps that open s3:// locations themselves


def _run_step(params: Mapping[str, Any], log: report.StepLog | None = None) -> report.StepResult:
    configure_runtime()
    if params.get("output_url"):  # where the output root is served over HTTP: pictures show inline
        os.environ[report.OUTPUT_URL_ENV] = params["output_url"]
    step = params.get("step")
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {STEPS}")
    endpoint = params.get("s3_endpoint_url")
    kwargs: dict[str, Any] = {
        "output": storage_from_uri(params["output"], endpoint_url=endpoint),
        "options": params.get("options") or {},
        "run_id": params.get("run_id"),
        "log": log or report.default_log(),
    }
    if step in DRIVE_STEPS:
        kwargs["drive"] = validate_drive_name(params["drive"])
    if step in READS_SOURCE:
        kwargs["source"] = storage_from_uri(params["source"], endpoint_url=endpoint)
    if step in READS_S3_DIRECTLY:
        kwargs["endpoint_url"] = endpoint
    if step == "reviewed_labels":  # reads the file it imports only from under these roots
        kwargs["roots"] = [
            params["output"],
            *([params["landing_root"]] if params.get("landing_root") else []),
        ]
    if step == "catalog":  # only these drives' rows (an automation tick), or every drive
        kwargs["drives"] = params.get("drives")
    if step == "extracted_frames":  # a share of a split run (see steps.fanout)
        kwargs.update(
            version=params.get("version"),
            bag_names=params.get("bag_names"),
            commit=params.get("commit", True),
        )
    module, name = RUNNERS[step].split(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def report_to_pipes(pipes: Any, result: report.StepResult) -> None:
    """Send a StepResult over an open dagster-pipes context."""
    pipes.report_asset_materialization(metadata=result.metadata, data_version=result.data_version)
    for check in result.checks:
        pipes.report_asset_check(
            check_name=check.name,
            passed=check.passed,
            severity=check.severity,
            metadata={"description": report.text(check.description), **check.metadata},
        )


def _pipes_loaders() -> dict[str, Any]:
    """S3 context/message transport when the launcher asks for it (SageMaker caps env values at 256 chars)."""
    bucket = os.environ.get("ROSBAG_ASSETS_PIPES_BUCKET")
    if not bucket:
        return {}
    import boto3
    from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter

    client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))
    return {"context_loader": PipesS3ContextLoader(client), "message_writer": PipesS3MessageWriter(client)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", help="run without Dagster: a JSON file (or '-') with the job parameters")
    parser.add_argument(
        "mode",
        nargs="?",
        choices=["train"],
        help="SageMaker starts a training image with 'train'; without a Pipes context that is a tuning trial",
    )
    args = parser.parse_args(argv)
    if args.params:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        text = sys.stdin.read() if args.params == "-" else Path(args.params).read_text()
        res = run_step(json.loads(text))
        print(
            json.dumps(
                {
                    "metadata": res.metadata,
                    "checks": [asdict(c) for c in res.checks],
                    "data_version": res.data_version,
                },
                default=str,
                indent=2,
            )
        )
        return 0

    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    if args.mode == "train" and not os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR):
        from rosbag_assets.steps.tuning_trial import run_trial

        return run_trial()
    try:
        with open_dagster_pipes(**_pipes_loaders()) as pipes:
            params = dict(pipes.extras)
            array_index = os.environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
            if array_index is not None and fanout.PARTS_KEY in params:  # one child of a fanned-out step
                params = fanout.part_params(params, int(array_index))
            params.setdefault("run_id", pipes.run_id)
            result = run_step(params, log=pipes.log)
            report_to_pipes(pipes, result)
    except BaseException as exc:
        sagemaker_container.record_failure(exc)  # a SageMaker job's FailureReason names the error
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
