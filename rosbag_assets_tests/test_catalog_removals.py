"""`catalog_removal_sensor`: deleting drive partitions (which writes no asset event) requests one catalog
update; adding partitions, or nothing changing, requests none; the cursor carries the partitions across ticks."""

from __future__ import annotations

import dagster as dg

from rosbag_assets.defs.catalog import catalog_removal_sensor, decode_drives
from rosbag_assets.defs.definitions import defs


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    return catalog_removal_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_deleted_drive_partitions_request_one_catalog_update() -> None:
    sensor = defs.resolve_sensor_def("catalog_removal_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    job = defs.resolve_job_def(sensor.job_name)
    assert job.asset_layer.executable_asset_keys == {dg.AssetKey("catalog")}

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("drives", ["d1", "d2", "d3"])
    first = tick(instance, None)  # the first tick only remembers what exists
    assert not first.run_requests and decode_drives(first.cursor) == {"d1", "d2", "d3"}

    instance.add_dynamic_partitions("drives", ["d4"])  # new drives reach the catalog by automation
    added = tick(instance, first.cursor)
    assert not added.run_requests and decode_drives(added.cursor) == {"d1", "d2", "d3", "d4"}
    same = tick(instance, added.cursor)
    assert not same.run_requests and same.cursor == added.cursor

    instance.delete_dynamic_partition("drives", "d1")
    instance.delete_dynamic_partition("drives", "d3")
    instance.add_dynamic_partitions("drives", ["d5"])  # an addition in the same tick hides nothing
    removed = tick(instance, same.cursor)
    (request,) = removed.run_requests
    assert request.partition_key is None and request.tags["rosbag_assets/removed_drives"] == "d1, d3"
    assert decode_drives(removed.cursor) == {"d2", "d4", "d5"}
    assert not tick(instance, removed.cursor).run_requests  # handled: not again

    instance.delete_dynamic_partition("drives", "d2")  # the same drive name can go, come back and go again
    again = tick(instance, removed.cursor)
    assert len(again.run_requests) == 1
    instance.add_dynamic_partitions("drives", ["d2"])
    back = tick(instance, again.cursor)
    instance.delete_dynamic_partition("drives", "d2")
    assert len(tick(instance, back.cursor).run_requests) == 1


def test_the_cursor_of_thousands_of_drives_stays_small() -> None:
    instance = dg.DagsterInstance.ephemeral()
    names = [f"2024-05-{d % 28 + 1:02d}_vehicle{d % 37:02d}_drive_{d:05d}" for d in range(5000)]
    instance.add_dynamic_partitions("drives", names)
    first = tick(instance, None)
    assert decode_drives(first.cursor) == set(names)
    assert len(first.cursor) < sum(map(len, names)) / 4  # ~180 kB of names
    instance.delete_dynamic_partition("drives", names[1234])
    (request,) = tick(instance, first.cursor).run_requests
    assert request.tags["rosbag_assets/removed_drives"] == names[1234]
