"""`catalog`: all drives' tables in one DuckDB database for `rosbag-assets search`. Not partitioned: one
database across drives, updated incrementally (only drives whose upstream versions changed). Thin: the work
is in `steps/catalog_step.py`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.labels import lane_labels, object_labels
from rosbag_assets.defs.policies import RETRY, described, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.topics import drive_timeline, scenes
from rosbag_assets.steps.catalog_step import CatalogOptions

CATALOG_GROUP = "catalog"


class CatalogConfig(dg.Config, CatalogOptions):
    """Launchpad config of `catalog`: exactly the step's options model."""


@dg.asset(
    group_name=CATALOG_GROUP,
    kinds={"duckdb", "parquet"},
    deps=[raw_bags, extracted_frames, object_labels, lane_labels, drive_timeline, scenes],
    retry_policy=RETRY,
    **described(
        "One DuckDB database across drives (`<output>/catalog/catalog.duckdb`: drives, bags, topics, frames, "
        "labels, lanes, timeline, scenes and the derived `hits`), updated only for drives whose upstream "
        "versions changed; each updated drive is also exported as hive Parquet under `catalog/<table>/`. "
        "Query it with `rosbag-assets search`.",
        "Asset configuration (Launchpad / run config)",
    ),
)
def catalog(
    context: dg.AssetExecutionContext,
    config: CatalogConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)
