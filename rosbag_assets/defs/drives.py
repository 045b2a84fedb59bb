"""The drive's recordings: `raw_bags` (inventory) and `extracted_frames`. Thin: the work is in `steps/`."""

from rosbag_assets.defs.policies import check, launchpad_config, step_asset
from rosbag_assets.steps.extracted_frames.options import ExtractedFramesOptions

ExtractedFramesConfig = launchpad_config(ExtractedFramesOptions)

raw_bags = step_asset(
    "raw_bags",
    "Inventory of every bag in the drive: format, bytes, time span, topics with types and counts, and a "
    "timeline of message rates per topic read from the bags' indexes.",
    section="Using it",
    kinds={"ros", "parquet"},
    checks=(check("all_bags_readable", "raw_bags", "Every bag opens and its index reads", blocking=False),),
)

extracted_frames = step_asset(
    "extracted_frames",
    "Camera frames from one streaming pass over each bag, in tar shards with a Parquet index; a contact "
    "sheet per camera topic.",
    config=ExtractedFramesConfig,
    kinds={"ros", "opencv", "parquet"},
    deps=(raw_bags,),
    checks=(
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
    ),
)
