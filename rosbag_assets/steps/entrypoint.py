"""The one entry point every compute target runs: ``python -m rosbag_assets.steps.entrypoint``.

Launched by Dagster (in a subprocess, a Batch/SageMaker job or a K8s pod) it speaks dagster-pipes: the job
name and parameters come from the Pipes context's extras, logs/metadata/check results go back as Pipes
messages. Run by hand, ``--params params.json`` runs the job without Dagster and prints its result as JSON.

Parameters: ``{"step": <asset name>, "drive": ..., "source": <drive uri>,
"output": <output root uri>, "s3_endpoint_url": ..., "run_id": ..., "options": {...}}`` plus, for
``extract``, ``version``/``bag_names``/``commit`` to split work across array children.
"""

from __future__ import annotations

import argparse
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
from rosbag_assets.steps import report
from rosbag_assets.steps.runtime import configure_runtime

STEPS = ("raw_bags", "extracted_frames", "object_labels", "lane_labels")


def run_step(params: Mapping[str, Any], log: report.StepLog | None = None) -> report.StepResult:
    """Run one step, named after its asset, with plain parameters (no Dagster involved); every check result
    names the drive it is about."""
    return report.traceable(_run_step(params, log), validate_drive_name(params["drive"]))


def _run_step(params: Mapping[str, Any], log: report.StepLog | None = None) -> report.StepResult:
    configure_runtime()
    step = params.get("step")
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {STEPS}")
    drive = validate_drive_name(params["drive"])
    endpoint = params.get("s3_endpoint_url")
    output = storage_from_uri(params["output"], endpoint_url=endpoint)
    common = {
        "drive": drive,
        "output": output,
        "options": params.get("options") or {},
        "run_id": params.get("run_id"),
        "log": log or report.default_log(),
    }
    if step == "raw_bags":
        from rosbag_assets.steps.raw_bags import run_raw_bags

        common.pop("options")
        return run_raw_bags(source=storage_from_uri(params["source"], endpoint_url=endpoint), **common)
    if step == "extracted_frames":
        from rosbag_assets.steps.extracted_frames import run_extracted_frames

        return run_extracted_frames(
            source=storage_from_uri(params["source"], endpoint_url=endpoint),
            version=params.get("version"),
            bag_names=params.get("bag_names"),
            commit=params.get("commit", True),
            **common,
        )
    if step == "object_labels":
        from rosbag_assets.steps.object_labels import run_object_labels

        return run_object_labels(**common)
    from rosbag_assets.steps.lane_labels import run_lane_labels

    return run_lane_labels(**common)


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

    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes(**_pipes_loaders()) as pipes:
        params = dict(pipes.extras)
        params.setdefault("run_id", pipes.run_id)
        if params.get("array_bags") and "AWS_BATCH_JOB_ARRAY_INDEX" in os.environ:
            params["bag_names"] = [params["array_bags"][int(os.environ["AWS_BATCH_JOB_ARRAY_INDEX"])]]
            params["commit"] = False
        result = run_step(params, log=pipes.log)
        report_to_pipes(pipes, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
