"""Labels of a drive's frames: `lane_labels` (learned lanes + drivable area) and `object_labels` (detector, GPU
pool, boxes placed on the road). Thin: the work is in `steps/`."""

from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.policies import check, launchpad_config, step_asset
from rosbag_assets.steps.lane_labels_options import LaneLabelsOptions
from rosbag_assets.steps.object_labels_options import ObjectLabelsOptions

ObjectLabelsConfig = launchpad_config(ObjectLabelsOptions)
LaneLabelsConfig = launchpad_config(LaneLabelsOptions)

lane_labels = step_asset(
    "lane_labels",
    "Lane polylines (ego pair marked left/right) and the drivable area per frame from the learned TwinLiteNet "
    "model shipped in the package (or another registered backend, e.g. opencv-hough).",
    config=LaneLabelsConfig,
    kinds={"onnx", "parquet"},
    deps=(extracted_frames,),
    checks=(
        check("lanes_point_at_frames", "lane_labels", "Every lane row points at a committed frame"),
        check("lane_points_inside_image", "lane_labels", "Every lane point lies inside its image"),
    ),
)

object_labels = step_asset(
    "object_labels",
    "Object boxes for every colour frame from an Ultralytics YOLO detector, batched, each placed on the road "
    "(on_drivable, in_ego_lane, lateral_offset from lane_labels); model and weights recorded per row. What "
    "ran (model, weights, runtime, device, compute target) is in each materialization's metadata, including "
    "the bundled offline detector when it was used.",
    config=ObjectLabelsConfig,
    kinds={"ultralytics", "parquet"},
    deps=(extracted_frames, lane_labels),
    pool="gpu",
    checks=(
        check("labels_point_at_frames", "object_labels", "Every label row points at an existing frame"),
        check("boxes_inside_image", "object_labels", "Every box lies inside its image"),
    ),
)
