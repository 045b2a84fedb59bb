"""`drive_report`: the self-contained HTML page of a drive. Thin: the work is in `steps/drive_report.py`."""

from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.policies import step_asset

drive_report = step_asset(
    "drive_report",
    "One HTML page per drive (`<output>/<drive>/report/index.html`): topic timeline, bags, per-class and "
    "per-side counts, and frames of every camera with their boxes and lanes, pictures embedded.",
    section="Using it",
    kinds={"html"},
    deps=(raw_bags, extracted_frames, object_labels, lane_labels),
)
