"""A drive's non-image topics, its timeline and scenes, and its Foxglove MCAP: `topic_tables`,
`drive_timeline`, `scenes`, `foxglove`. Thin: the work is in `steps/`."""

import copy

import dagster as dg

from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.policies import check, launchpad_config, step_asset
from rosbag_assets.steps.drive_timeline.options import DriveTimelineOptions, SignalRule
from rosbag_assets.steps.foxglove_options import FoxgloveOptions
from rosbag_assets.steps.scenes_options import ScenesOptions
from rosbag_assets.steps.topic_tables.options import TopicTablesOptions

TopicTablesConfig = launchpad_config(TopicTablesOptions)
ScenesConfig = launchpad_config(ScenesOptions)
FoxgloveConfig = launchpad_config(FoxgloveOptions)


class SignalRuleConfig(dg.Config, SignalRule):
    """One per-signal rule of `drive_timeline` in the Launchpad: exactly the step's rule model."""


class DriveTimelineConfig(dg.Config, DriveTimelineOptions):
    """Launchpad config of `drive_timeline`: exactly the step's options model. Dagster types a nested value
    only when it is a `dg.Config`, so `rules` is the step's own field (default, description, validation)
    with its values typed as `SignalRuleConfig`."""

    rules: dict[str, SignalRuleConfig] = copy.copy(DriveTimelineOptions.model_fields["rules"])


topic_tables = step_asset(
    "topic_tables",
    "Every non-image topic of the drive's bags as Parquet, one folder per topic with one file per bag "
    "(`<drive>/topic_tables/versions/<id>/topics/<topic>/<bag>.parquet`), plus `tables.parquet` "
    "(rows, skipped messages and bytes per topic and bag).",
    config=TopicTablesConfig,
    kinds={"parquet"},
    deps=(raw_bags,),
    checks=(
        check("all_bags_read", "topic_tables", "Every readable bag was read to its end", blocking=False),
        check("no_skipped_messages", "topic_tables", "Every message became a row", blocking=False),
    ),
)

drive_timeline = step_asset(
    "drive_timeline",
    "The drive's speed, IMU, GPS and per-frame object/lane summaries on one fixed time grid "
    "(`timeline.parquet`, default 100 ms); missing signals are NULL, never extrapolated.",
    config=DriveTimelineConfig,
    kinds={"parquet"},
    deps=(topic_tables, extracted_frames, object_labels, lane_labels),
    checks=(
        check("grid_is_regular", "drive_timeline", "One row per grid step, in time order"),
        check(
            "speed_meets_frames",
            "drive_timeline",
            "A chosen speed source has values where camera frames are, or the drive has none (blocks when "
            "speed and frames lie on two clocks; warns when speed is only missing at the frames)",
        ),
    ),
)

scenes = step_asset(
    "scenes",
    "Time ranges where a scene rule (a DuckDB SQL expression over the timeline; shipped defaults plus "
    "`rules_file`) holds: `scenes.parquet` with rule, start/end and the frame keys inside.",
    config=ScenesConfig,
    kinds={"duckdb", "parquet"},
    deps=(drive_timeline,),
)

foxglove = step_asset(
    "foxglove",
    "The drive as one MCAP for Foxglove (`<drive>/foxglove/versions/<id>/drive.mcap`): camera frames "
    "with box and lane annotations, scenes as events and log lines, the timeline for Plot panels.",
    config=FoxgloveConfig,
    kinds={"mcap"},
    deps=(extracted_frames, object_labels, lane_labels, scenes, drive_timeline),
)
