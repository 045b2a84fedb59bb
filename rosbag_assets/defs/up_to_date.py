"""Which drives are already processed for the bags they hold now, whoever materialized them.

The discovery sensor's cursor only knows what the sensor itself requested; a drive materialized from the UI,
a backfill or a fresh sensor cursor would otherwise be run again. `raw_bags` records the drive fingerprint
(`rosbag_assets.io.drives.drive_fingerprint`, the same function the sensor uses) in its metadata, so the
latest materialization says which files it saw.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._core.events import DagsterEventType

RAW_BAGS = dg.AssetKey("raw_bags")
FINGERPRINT = "drive_fingerprint"


def materialized_fingerprints(instance: dg.DagsterInstance, drives: Iterable[str]) -> dict[str, str]:
    """{drive: fingerprint recorded by its latest `raw_bags` materialization}, for drives that have one.

    Two queries whatever the number of drives: the latest event id per partition, then those events.
    """
    wanted = set(drives)
    if not wanted:
        return {}
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        RAW_BAGS, DagsterEventType.ASSET_MATERIALIZATION, wanted
    )
    if not latest:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_BAGS, storage_ids=list(latest.values())), limit=len(latest)
    ).records
    found: dict[str, str] = {}
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get(FINGERPRINT) if materialization else None
        if record.partition_key and value is not None:
            found[record.partition_key] = str(getattr(value, "value", value))
    return found


def up_to_date(instance: dg.DagsterInstance, fingerprints: dict[str, str]) -> set[str]:
    """The drives of `fingerprints` ({drive: current fingerprint}) whose latest materialization saw them."""
    recorded = materialized_fingerprints(instance, fingerprints)
    return {name for name, fingerprint in fingerprints.items() if recorded.get(name) == fingerprint}
