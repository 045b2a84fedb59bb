"""Discovery: new drives become partitions and get processed; changed drives are re-processed."""

import json

import dagster as dg

from rosbag_assets.defs.jobs import process_drive
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.up_to_date import up_to_date
from rosbag_assets.io.drives import scan_drive, scan_landing_root


def discover(storage: DriveStorage) -> tuple[dict[str, str], list[str]]:
    """{drive: fingerprint} for every configured drive that holds bags, plus rejected folder names."""
    found: dict[str, str] = {}
    rejected: list[str] = []
    landing = storage.landing()
    if landing is not None:
        found, rejected = scan_landing_root(landing)
    if storage.drives_file:
        from rosbag_assets.io.drives import drives_from_seed

        for name, location in drives_from_seed(storage.drives_file).items():
            fingerprint = scan_drive(location, endpoint_url=storage.s3_endpoint_url)
            if fingerprint:
                found[name] = fingerprint
    return found, rejected


@dg.sensor(
    job=process_drive,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for every new drive and runs the whole chain for new or changed drives.",
)
def drive_discovery_sensor(context: dg.SensorEvaluationContext, storage: DriveStorage) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    found, rejected = discover(storage)
    for name in rejected:
        context.log.warning(
            f"folder {name!r} is not a valid drive name (letters, digits, '.', '_', '-'); skipped"
        )
    existing = set(context.instance.get_dynamic_partitions(drives.name))
    # skip drives whose latest raw_bags already saw these bags, whoever materialized them (UI, backfill)
    changed = {name: fp for name, fp in found.items() if seen.get(name) != fp}
    done = up_to_date(context.instance, {n: fp for n, fp in changed.items() if n in existing})
    new_partitions = sorted(set(found) - existing)
    run_requests = [
        dg.RunRequest(
            partition_key=name,
            run_key=f"{name}:{fingerprint}",
            tags={
                "rosbag_assets/drive_fingerprint": fingerprint,
                "rosbag_assets/reason": "new drive" if name not in seen else "bags changed",
            },
        )
        for name, fingerprint in sorted(changed.items())
        if name not in done
    ]
    if run_requests:
        context.log.info(f"requesting runs for {len(run_requests)} new or changed drives")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[drives.build_add_request(new_partitions)] if new_partitions else [],
        cursor=json.dumps(found, sort_keys=True, separators=(",", ":")),
    )
