"""The job the discovery sensor and backfills run: the whole chain for one drive."""

import dagster as dg

from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.report import drive_report

drive_assets = [raw_bags, extracted_frames, object_labels, lane_labels, drive_report]
process_drive = dg.define_asset_job(
    "process_drive",
    selection=dg.AssetSelection.assets(*drive_assets),
    description="Inventory, extract, label objects and lanes, and write the HTML report of one drive.",
)
