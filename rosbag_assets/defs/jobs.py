"""The job the discovery sensor and backfills run: the whole chain for one drive; and how steps are executed.

Every step's work runs in its own process already (a Pipes subprocess, container or pod), so the Dagster side
of a step only launches and waits. Dagster's default executor would still start one more Python process per
step that imports the whole code location again (seconds per step). Instead, single materializations from the
UI run their steps in the run's own process (`STEP_EXECUTOR`), and the whole-drive job forks its steps from a
preloaded fork server (`DRIVE_EXECUTOR`) so independent steps (topic_tables beside extracted_frames,
anonymized_frames beside drive_report and drive_timeline) still run at once. Starting that server costs a run
one more import of the code location (8-11 s on the loaded 2-core VM); after that a step's orchestration costs
1-2 s there (`python -m bench.overhead`, BENCHMARKS.md).
"""

import dagster as dg

from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.privacy import anonymized_frames
from rosbag_assets.defs.report import drive_report
from rosbag_assets.defs.topics import drive_timeline, foxglove, scenes, topic_tables

drive_assets = [
    raw_bags,
    extracted_frames,
    object_labels,
    lane_labels,
    anonymized_frames,
    drive_report,
    topic_tables,
    drive_timeline,
    scenes,
    foxglove,
]
STEP_EXECUTOR = dg.in_process_executor
# The fork server preloads the code location *and* what a step needs to open the instance (`defs.preload`):
# with the default (the code location only) every forked step still spent seconds importing Dagster's storage.
DRIVE_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": ["rosbag_assets.defs.preload"]}}}
)
process_drive = dg.define_asset_job(
    "process_drive",
    selection=dg.AssetSelection.assets(*drive_assets),
    executor_def=DRIVE_EXECUTOR,
    description="Inventory, extract, find lanes, label objects, anonymize frames, write the HTML report, "
    "tabulate topics, build the timeline, find scenes and write the Foxglove MCAP of one drive.",
)
