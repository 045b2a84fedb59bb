"""The code location: assets, checks, the discovery sensor and resources, configured from the environment.

Environment (all optional): ROSBAG_ASSETS_LANDING_ROOT (default ./var/landing), ROSBAG_ASSETS_DRIVES_FILE,
ROSBAG_ASSETS_OUTPUT_ROOT (default ./var/output), ROSBAG_ASSETS_S3_ENDPOINT, ROSBAG_ASSETS_COMPUTE
(subprocess | in_process), ROSBAG_ASSETS_WEIGHTS, ROSBAG_ASSETS_ALLOW_FALLBACK=1, ROSBAG_ASSETS_WEIGHTS_CACHE,
ROSBAG_ASSETS_OUTPUT_URL (where the output root is served over HTTP), ROSBAG_ASSETS_DOCS_URL.
"""

import os

import dagster as dg

from rosbag_assets.compute.settings import compute_from_env
from rosbag_assets.defs.catalog import catalog, catalog_automation_sensor, catalog_removal_sensor
from rosbag_assets.defs.datasets import reviewed_labels, reviewed_labels_sensor, training_dataset
from rosbag_assets.defs.jobs import STEP_EXECUTOR, drive_assets, process_drive
from rosbag_assets.defs.models import detector_export, detector_model, models_automation_sensor
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.sensors import drive_discovery_sensor


def storage_from_env() -> DriveStorage:
    return DriveStorage(
        landing_root=os.environ.get("ROSBAG_ASSETS_LANDING_ROOT", os.path.abspath("var/landing")),
        drives_file=os.environ.get("ROSBAG_ASSETS_DRIVES_FILE") or None,
        output_root=os.environ.get("ROSBAG_ASSETS_OUTPUT_ROOT", os.path.abspath("var/output")),
        s3_endpoint_url=os.environ.get("ROSBAG_ASSETS_S3_ENDPOINT") or None,
        output_url=os.environ.get("ROSBAG_ASSETS_OUTPUT_URL") or None,
    )


defs = dg.Definitions(
    assets=[*drive_assets, reviewed_labels, training_dataset, detector_model, detector_export, catalog],
    jobs=[process_drive],
    executor=STEP_EXECUTOR,
    sensors=[
        drive_discovery_sensor,
        models_automation_sensor,
        reviewed_labels_sensor,
        catalog_automation_sensor,
        catalog_removal_sensor,
    ],
    resources={"storage": storage_from_env(), "compute": compute_from_env()},
)
