"""Labels of a drive's frames: `lane_labels` (learned lanes + drivable area) and `object_labels` (detector, GPU
pool, boxes placed on the road). Thin: the work is in `steps/`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import DRIVES_GROUP, RETRY, check, described, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.steps.lane_labels import LaneLabelsOptions
from rosbag_assets.steps.object_labels import ObjectLabelsOptions


class ObjectLabelsConfig(dg.Config, ObjectLabelsOptions):
    """Launchpad config of `object_labels`: exactly the step's options model."""


class LaneLabelsConfig(dg.Config, LaneLabelsOptions):
    """Launchpad config of `lane_labels`: exactly the step's options model."""


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"onnx", "parquet"},
    deps=[extracted_frames],
    retry_policy=RETRY,
    check_specs=[
        check("lanes_point_at_frames", "lane_labels", "Every lane row points at a committed frame"),
        check("lane_points_inside_image", "lane_labels", "Every lane point lies inside its image"),
    ],
    **described(
        "Lane polylines (ego pair marked left/right) and the drivable area per frame from the learned TwinLiteNet "
        "model shipped in the package (or another registered backend, e.g. opencv-hough).",
        "Asset configuration (Launchpad / run config)",
    ),
)
def lane_labels(
    context: dg.AssetExecutionContext,
    config: LaneLabelsConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"ultralytics", "parquet"},
    deps=[extracted_frames, lane_labels],
    retry_policy=RETRY,
    pool="gpu",
    check_specs=[
        check("labels_point_at_frames", "object_labels", "Every label row points at an existing frame"),
        check("boxes_inside_image", "object_labels", "Every box lies inside its image"),
    ],
    **described(
        "Object boxes for every colour frame from an Ultralytics YOLO detector, batched, each placed on the road "
        "(on_drivable, in_ego_lane, lateral_offset from lane_labels); model and weights recorded per row. What "
        "ran (model, weights, runtime, device, compute target) is in each materialization's metadata, including "
        "the bundled offline detector when it was used.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def object_labels(
    context: dg.AssetExecutionContext,
    config: ObjectLabelsConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)
