"""Small doubles several test modules share: a log that records, and one tick of the discovery sensor."""

from __future__ import annotations

import dagster as dg

from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.sensors import drive_discovery_sensor


class Log:
    """A `StepLog` that keeps what a step said, so tests can assert on warnings naming a file or topic."""

    def __init__(self) -> None:
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def info(self, msg: str) -> None:
        self.infos.append(msg)

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def tick(instance: dg.DagsterInstance, storage: DriveStorage, cursor: str | None) -> dg.SensorResult:
    """Evaluate the discovery sensor once and add the partitions it requests, as the daemon would."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
    result = drive_discovery_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result
