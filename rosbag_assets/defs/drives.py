"""The drive's recordings: `raw_bags` (inventory) and `extracted_frames`. Thin: the work is in `steps/`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import DRIVES_GROUP, RETRY, check, described, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.steps.extracted_frames import ExtractedFramesOptions


class ExtractedFramesConfig(dg.Config, ExtractedFramesOptions):
    """Launchpad config of `extracted_frames`: exactly the step's options model."""


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"ros", "parquet"},
    retry_policy=RETRY,
    check_specs=[
        check("all_bags_readable", "raw_bags", "Every bag opens and its index reads", blocking=False)
    ],
    **described(
        "Inventory of every bag in the drive: format, bytes, time span, topics with types and counts, and a "
        "timeline of message rates per topic read from the bags' indexes.",
        "Using it",
    ),
)
def raw_bags(context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets):
    return run_step(context, storage, compute)


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"ros", "opencv", "parquet"},
    deps=[raw_bags],
    retry_policy=RETRY,
    check_specs=[
        check(
            "every_image_topic_has_frames",
            "extracted_frames",
            "Every image topic with messages produced frames",
        ),
        check(
            "all_bags_extracted",
            "extracted_frames",
            "Every bag of the drive was read to its end. Fails naming each unreadable or partly read bag; "
            "only with allow_partial does the step get this far, and then the version is still made current.",
        ),
        check(
            "no_extraction_errors",
            "extracted_frames",
            "No bag failed to read and no message failed to decode (skipped messages are counted per topic)",
            blocking=False,
        ),
    ],
    **described(
        "Camera frames from one streaming pass over each bag, in tar shards with a Parquet index; a contact "
        "sheet per camera topic.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def extracted_frames(
    context: dg.AssetExecutionContext,
    config: ExtractedFramesConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)
