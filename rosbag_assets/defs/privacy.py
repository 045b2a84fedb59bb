"""Privacy: `anonymized_frames`, the drive's frames with faces and plates hidden. Thin: work in `steps/`."""

from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.labels import object_labels
from rosbag_assets.defs.policies import check, launchpad_config, step_asset
from rosbag_assets.steps.anonymized_frames_options import AnonymizedFramesOptions

AnonymizedFramesConfig = launchpad_config(AnonymizedFramesOptions)

anonymized_frames = step_asset(
    "anonymized_frames",
    "The drive's colour frames with faces (CenterFace) and licence plates (PP-OCR text detector on "
    "object_labels' vehicle boxes) blurred or pixelated, regions carried over a few frames per topic; tar "
    "shards and an index like extracted_frames (same frame keys) plus regions.parquet; models and hashes "
    "recorded.",
    config=AnonymizedFramesConfig,
    kinds={"onnx", "parquet"},
    deps=(extracted_frames, object_labels),
    checks=(
        check(
            "every_frame_anonymized",
            "anonymized_frames",
            "Every chosen frame was read, anonymized and stored; otherwise nothing is published",
        ),
    ),
)
