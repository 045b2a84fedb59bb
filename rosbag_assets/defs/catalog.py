"""`catalog`: all drives' tables in one DuckDB database for `rosbag-assets search`. Not partitioned: one
database across drives, updated incrementally (only drives whose upstream versions changed; drives that
are gone are dropped). Thin: the work is in `steps/catalog/`.

It updates itself: after any drive's upstream asset is materialized (and no run of an upstream is still
in progress, so one drive's whole chain causes one update), `catalog_automation_sensor` requests a run; after
a drive partition is deleted (no asset event says so), `catalog_removal_sensor` does.
"""

import base64
import json
import zlib

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import RETRY, check, described, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.topics import drive_timeline, scenes
from rosbag_assets.steps.catalog.options import CatalogOptions

CATALOG_GROUP = "catalog"

# `eager()` would wait while any partition of any upstream is missing, which with thousands of drives
# (some never labelled) is forever; the catalog handles a drive without labels or scenes itself.
CATALOG_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("drive outputs changed, none being written")


class CatalogConfig(dg.Config, CatalogOptions):
    """Launchpad config of `catalog`: exactly the step's options model."""


@dg.asset(
    group_name=CATALOG_GROUP,
    kinds={"duckdb", "parquet"},
    deps=[raw_bags, extracted_frames, object_labels, lane_labels, drive_timeline, scenes],
    retry_policy=RETRY,
    automation_condition=CATALOG_AUTOMATION,
    check_specs=[
        check(
            "catalog_has_current_versions",
            "catalog",
            "Every drive is in the catalog from its current upstream versions, and no drive that is gone",
            blocking=False,
        ),
        check(
            "every_label_searchable_once",
            "catalog",
            "Each drive's hits (what search reads) have exactly one row per label",
            blocking=False,
        ),
    ],
    **described(
        "One DuckDB database across drives (`<output>/catalog/catalog.duckdb`: drives, bags, topics, frames, "
        "labels, lanes, timeline, scenes and the derived `hits` and `scene_frames`), updated only for drives "
        "whose upstream versions changed, without drives whose partition was deleted or whose outputs are "
        "gone; each updated drive is also exported as hive Parquet under `catalog/<table>/`. Query it with "
        "`rosbag-assets search`.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def catalog(
    context: dg.AssetExecutionContext,
    config: CatalogConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    partitions = context.instance.get_dynamic_partitions(drives.name)
    return run_step(context, storage, compute, config, extra_params={"drives": partitions})


# Dagster's `default_automation_condition_sensor` starts stopped; this one runs from the start, so a new or
# changed drive reaches the catalog without anyone toggling a sensor.
catalog_automation_sensor = dg.AutomationConditionSensorDefinition(
    "catalog_automation_sensor",
    target=dg.AssetSelection.assets(catalog),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Updates the catalog after drives' outputs change (one update per finished drive run).",
)


def encode_drives(keys: set[str]) -> str:
    """The drive partitions as a sensor cursor: thousands of similar names compress ~10x."""
    return base64.b64encode(zlib.compress(json.dumps(sorted(keys)).encode(), 9)).decode()


def decode_drives(cursor: str) -> set[str]:
    return set(json.loads(zlib.decompress(base64.b64decode(cursor))))


# Deleting a dynamic partition writes no asset event and Dagster has no automation condition that sees it,
# so the catalog would keep a deleted drive until some other drive changed. This sensor remembers the
# partitions it saw and asks for one catalog update whenever any of them is gone.
@dg.sensor(
    target=[catalog],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Updates the catalog when drive partitions were deleted (it drops those drives): one run per "
    "tick that finds any partition gone since the last tick; adding partitions requests nothing.",
)
def catalog_removal_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    current = set(context.instance.get_dynamic_partitions(drives.name))
    cursor = encode_drives(current)
    if context.cursor is None:
        return dg.SensorResult(skip_reason=f"remembering {len(current)} drive partitions", cursor=cursor)
    removed = sorted(decode_drives(context.cursor) - current)
    if not removed:
        return dg.SensorResult(skip_reason="no drive partition was deleted", cursor=cursor)
    shown = ", ".join(removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
    context.log.info(f"drive partitions deleted: {shown}; requesting a catalog update")
    request = dg.RunRequest(tags={"rosbag_assets/removed_drives": shown[:200]})
    return dg.SensorResult(run_requests=[request], cursor=cursor)
