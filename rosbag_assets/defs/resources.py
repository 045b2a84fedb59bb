"""Resources: where drives and outputs live, and where jobs run. Chosen by configuration, not code."""

from typing import Any

import dagster as dg
from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external
from pydantic import Field

from rosbag_assets.io.drives import (
    drive_in_landing,
    drives_from_seed,
    validate_drive_name,
)
from rosbag_assets.io.storage import Storage, storage_from_uri
from rosbag_assets.steps import report


class DriveStorage(dg.ConfigurableResource):
    """Where drives come from (a landing root and/or a seed file) and where outputs are published."""

    landing_root: str | None = Field(
        default=None, description="Local folder or s3://bucket/prefix; each top-level folder is a drive."
    )
    drives_file: str | None = Field(
        default=None,
        description='JSON/YAML seed: {"drives_to_process": {"d1": {"bucket": ..., "prefix": ...}}}',
    )
    output_root: str = Field(description="Local folder or s3://bucket/prefix for every published output.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto, VPC)."
    )
    output_url: str | None = Field(
        default=None,
        description="http(s) address under which output_root is served; previews then show inline in the UI.",
    )

    def storage(self, uri: str) -> Storage:
        return storage_from_uri(uri, endpoint_url=self.s3_endpoint_url)

    def output(self) -> Storage:
        return self.storage(self.output_root)

    def landing(self) -> Storage | None:
        return self.storage(self.landing_root) if self.landing_root else None

    def drive_uri(self, drive: str) -> str:
        """The storage URI of one drive's recordings; the name is validated, never trusted as a path."""
        validate_drive_name(drive)
        if self.drives_file:
            seeded = drives_from_seed(self.drives_file, skipped=[])  # another drive's bad entry is not ours
            if drive in seeded:
                return seeded[drive].uri
        landing = self.landing()
        if landing is None:
            raise ValueError(f"drive {drive!r} is not in the seed file and no landing_root is configured")
        return drive_in_landing(landing, drive)

    def step_params(
        self, step: str, drive: str | None, run_id: str, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The plain parameters every compute target hands to the step entry point (`drive` None: not per drive)."""
        params = {
            "step": step,
            "drive": validate_drive_name(drive) if drive is not None else None,
            "output": self.output_root,
            "s3_endpoint_url": self.s3_endpoint_url,
            "run_id": run_id,
            "options": options or {},
        }
        if self.output_url:
            params["output_url"] = self.output_url
        if step in ("raw_bags", "extracted_frames", "topic_tables"):
            params["source"] = self.drive_uri(drive)
        if step == "reviewed_labels" and self.landing_root:  # a root its imported file may live under
            params["landing_root"] = self.landing_root
        return params


def result_to_dagster(res: report.StepResult) -> dg.MaterializeResult:
    """A job's plain result as Dagster's MaterializeResult, converted exactly as Pipes messages are."""
    return dg.MaterializeResult(
        metadata=metadata_map_from_external(res.metadata),
        data_version=dg.DataVersion(res.data_version) if res.data_version else None,
        check_results=[
            dg.AssetCheckResult(
                check_name=c.name,
                passed=c.passed,
                severity=dg.AssetCheckSeverity(c.severity),
                description=c.description,
                metadata=metadata_map_from_external(c.metadata),
            )
            for c in res.checks
        ],
    )


class ContextLog:
    """Job log that writes to the Dagster run's log."""

    def __init__(self, context: dg.AssetExecutionContext):
        self._log = context.log

    def info(self, msg: str) -> None:
        self._log.info(msg)

    def warning(self, msg: str) -> None:
        self._log.warning(msg)
