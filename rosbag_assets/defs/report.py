"""`drive_report`: the self-contained HTML page of a drive. Thin: the work is in `steps/drive_report.py`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import DRIVES_GROUP, RETRY, described, run_step
from rosbag_assets.defs.resources import DriveStorage


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"html"},
    deps=[raw_bags, extracted_frames, object_labels, lane_labels],
    retry_policy=RETRY,
    **described(
        "One HTML page per drive (`<output>/<drive>/report/index.html`): topic timeline, bags, per-class and "
        "per-side counts, and frames of every camera with their boxes and lanes, pictures embedded.",
        "Using it",
    ),
)
def drive_report(context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets):
    return run_step(context, storage, compute)
