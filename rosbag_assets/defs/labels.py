"""Labels of a drive's frames: `object_labels` (detector, GPU pool) and `lane_labels`. Thin: work in `steps/`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import DRIVES_GROUP, RETRY, check, described
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
    kinds={"ultralytics", "parquet"},
    deps=[extracted_frames],
    retry_policy=RETRY,
    pool="gpu",
    check_specs=[
        check("labels_point_at_frames", "object_labels", "Every label row points at an existing frame"),
        check("boxes_inside_image", "object_labels", "Every box lies inside its image"),
    ],
    **described(
        "Object boxes for every colour frame from an Ultralytics YOLO detector, batched; the model and weights "
        "are recorded per row. What ran (model, weights, runtime, device, compute target) is in each "
        "materialization's metadata, including the offline fallback detector when it was used.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def object_labels(
    context: dg.AssetExecutionContext,
    config: ObjectLabelsConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    params = storage.step_params(
        "object_labels", context.partition_key, context.run.run_id, config.model_dump(exclude_none=True)
    )
    return compute.for_asset("object_labels").run(context, params)


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"opencv", "parquet"},
    deps=[extracted_frames],
    retry_policy=RETRY,
    check_specs=[
        check("lanes_point_at_frames", "lane_labels", "Every lane row points at a committed frame"),
        check("lane_points_inside_image", "lane_labels", "Every lane point lies inside its image"),
    ],
    **described(
        "Lane polylines per frame from a pluggable backend (classical OpenCV Hough lines by default).",
        "Known limits",
    ),
)
def lane_labels(
    context: dg.AssetExecutionContext,
    config: LaneLabelsConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    params = storage.step_params(
        "lane_labels", context.partition_key, context.run.run_id, config.model_dump(exclude_none=True)
    )
    return compute.for_asset("lane_labels").run(context, params)
