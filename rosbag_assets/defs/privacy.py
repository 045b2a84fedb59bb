"""Privacy: `anonymized_frames`, the drive's frames with faces and plates hidden. Thin: work in `steps/`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.labels import object_labels
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import DRIVES_GROUP, RETRY, check, described, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.steps.anonymized_frames import AnonymizedFramesOptions


class AnonymizedFramesConfig(dg.Config, AnonymizedFramesOptions):
    """Launchpad config of `anonymized_frames`: exactly the step's options model."""


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"onnx", "parquet"},
    deps=[extracted_frames, object_labels],
    retry_policy=RETRY,
    check_specs=[
        check(
            "every_frame_anonymized",
            "anonymized_frames",
            "Every chosen frame was read, anonymized and stored; otherwise nothing is published",
        ),
    ],
    **described(
        "The drive's colour frames with faces (CenterFace) and licence plates (PP-OCR text detector on "
        "object_labels' vehicle boxes) blurred or pixelated, regions carried over a few frames per topic; tar "
        "shards and an index like extracted_frames (same frame keys) plus regions.parquet; models and hashes "
        "recorded.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def anonymized_frames(
    context: dg.AssetExecutionContext,
    config: AnonymizedFramesConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)
