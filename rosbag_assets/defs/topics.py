"""A drive's non-image topics, its timeline and scenes, and its Foxglove MCAP: `topic_tables`,
`drive_timeline`, `scenes`, `foxglove`. Thin: the work is in `steps/`."""

import copy

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import DRIVES_GROUP, RETRY, check, described, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.steps.drive_timeline.options import DriveTimelineOptions, SignalRule
from rosbag_assets.steps.foxglove import FoxgloveOptions
from rosbag_assets.steps.scenes import ScenesOptions
from rosbag_assets.steps.topic_tables import TopicTablesOptions


class TopicTablesConfig(dg.Config, TopicTablesOptions):
    """Launchpad config of `topic_tables`: exactly the step's options model."""


class SignalRuleConfig(dg.Config, SignalRule):
    """One per-signal rule of `drive_timeline` in the Launchpad: exactly the step's rule model."""


class DriveTimelineConfig(dg.Config, DriveTimelineOptions):
    """Launchpad config of `drive_timeline`: exactly the step's options model. Dagster types a nested value
    only when it is a `dg.Config`, so `rules` is the step's own field (default, description, validation)
    with its values typed as `SignalRuleConfig`."""

    rules: dict[str, SignalRuleConfig] = copy.copy(DriveTimelineOptions.model_fields["rules"])


class ScenesConfig(dg.Config, ScenesOptions):
    """Launchpad config of `scenes`: exactly the step's options model."""


class FoxgloveConfig(dg.Config, FoxgloveOptions):
    """Launchpad config of `foxglove`: exactly the step's options model."""


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"parquet"},
    deps=[raw_bags],
    retry_policy=RETRY,
    check_specs=[
        check("all_bags_read", "topic_tables", "Every readable bag was read to its end", blocking=False),
        check("no_skipped_messages", "topic_tables", "Every message became a row", blocking=False),
    ],
    **described(
        "Every non-image topic of the drive's bags as Parquet, one folder per topic with one file per bag "
        "(`<drive>/topic_tables/versions/<id>/topics/<topic>/<bag>.parquet`), plus `tables.parquet` "
        "(rows, skipped messages and bytes per topic and bag).",
        "Asset configuration (Launchpad / run config)",
    ),
)
def topic_tables(
    context: dg.AssetExecutionContext,
    config: TopicTablesConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"parquet"},
    deps=[topic_tables, extracted_frames, object_labels, lane_labels],
    retry_policy=RETRY,
    check_specs=[
        check("grid_is_regular", "drive_timeline", "One row per grid step, in time order"),
        check(
            "speed_meets_frames",
            "drive_timeline",
            "A chosen speed source has values where camera frames are, or the drive has none (blocks when "
            "speed and frames lie on two clocks; warns when speed is only missing at the frames)",
        ),
    ],
    **described(
        "The drive's speed, IMU, GPS and per-frame object/lane summaries on one fixed time grid "
        "(`timeline.parquet`, default 100 ms); missing signals are NULL, never extrapolated.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def drive_timeline(
    context: dg.AssetExecutionContext,
    config: DriveTimelineConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"duckdb", "parquet"},
    deps=[drive_timeline],
    retry_policy=RETRY,
    **described(
        "Time ranges where a scene rule (a DuckDB SQL expression over the timeline; shipped defaults plus "
        "`rules_file`) holds: `scenes.parquet` with rule, start/end and the frame keys inside.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def scenes(
    context: dg.AssetExecutionContext,
    config: ScenesConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)


@dg.asset(
    partitions_def=drives,
    group_name=DRIVES_GROUP,
    kinds={"mcap"},
    deps=[extracted_frames, object_labels, lane_labels, scenes, drive_timeline],
    retry_policy=RETRY,
    **described(
        "The drive as one MCAP for Foxglove (`<drive>/foxglove/versions/<id>/drive.mcap`): camera frames "
        "with box and lane annotations, scenes as events and log lines, the timeline for Plot panels.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def foxglove(
    context: dg.AssetExecutionContext,
    config: FoxgloveConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)
