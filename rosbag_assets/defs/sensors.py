"""Discovery: new drives become partitions and get processed; changed drives are re-processed; a drive whose
last run failed (a crash, a download that gave up, a blocking check such as a partly read bag) is retried a
bounded number of times even when its bags did not change."""

import json
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from rosbag_assets.defs.jobs import process_drive
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.up_to_date import up_to_date
from rosbag_assets.io.drives import drives_from_seed, scan_drive, scan_landing_root
from rosbag_assets.io.storage import redact

MAX_ATTEMPTS = 3  # runs per drive and fingerprint: the first and two retries
FINGERPRINT_TAG = "rosbag_assets/drive_fingerprint"
ATTEMPT_TAG = "rosbag_assets/attempt"
LOOKBACK_S = 120.0  # failures are looked for since the previous tick, with this overlap


def discover(
    storage: DriveStorage, log: Any = None, previous: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """{drive: fingerprint} for every configured drive that holds bags, plus rejected folder names.

    A bad seed entry, or a seeded drive that cannot be listed right now, is skipped with a warning (a
    drive that cannot be listed keeps its `previous` fingerprint, so it does not look removed and re-added).
    """
    found: dict[str, str] = {}
    rejected: list[str] = []
    landing = storage.landing()
    if landing is not None:
        found, rejected = scan_landing_root(landing)
        for key, why in getattr(landing, "refused", []):
            _warn(log, f"{landing.root_uri}/{key}: skipped, {why}")
    if storage.drives_file:
        skipped: list[tuple[str, str]] = []
        seeded = drives_from_seed(storage.drives_file, skipped=skipped)
        for name, why in skipped:
            _warn(log, f"seed file {storage.drives_file}: entry {name!r} skipped: {why}")
        for name, location in seeded.items():
            try:
                fingerprint = scan_drive(location, endpoint_url=storage.s3_endpoint_url)
            except Exception as exc:
                _warn(
                    log, f"drive {name} ({redact(location.uri)}) cannot be listed, skipped this tick: {exc}"
                )
                fingerprint = (previous or {}).get(name)
            if fingerprint:
                found[name] = fingerprint
    return found, rejected


def _warn(log: Any, msg: str) -> None:
    if log is not None:
        log.warning(msg)


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    """``{"drives": {name: fingerprint}, "attempts": {name: n}, "checked_at": t}``; the first format (a flat
    ``{name: fingerprint}``) is read as ``drives``."""
    data = json.loads(cursor) if cursor else {}
    if "drives" not in data:
        data = {"drives": data}
    data.setdefault("attempts", {})
    data.setdefault("checked_at", None)
    return data


def failed_drives(
    instance: dg.DagsterInstance, since: float | None, found: dict[str, str]
) -> dict[str, dg.DagsterRun]:
    """Drives whose latest discovery run failed since `since` (one query, plus one per failed drive), for
    the fingerprint they still have; runs started by hand are left to whoever started them."""
    filters = dg.RunsFilter(
        job_name=process_drive.name,
        statuses=[dg.DagsterRunStatus.FAILURE],
        updated_after=datetime.fromtimestamp(since - LOOKBACK_S, tz=UTC) if since else None,
    )
    failed: dict[str, dg.DagsterRun] = {}
    for run in instance.get_runs(filters=filters, limit=1000):
        drive = run.tags.get("dagster/partition")
        if drive in found and drive not in failed and run.tags.get(FINGERPRINT_TAG) == found[drive]:
            latest = instance.get_runs(
                filters=dg.RunsFilter(job_name=process_drive.name, tags={"dagster/partition": drive}), limit=1
            )
            if latest and latest[0].run_id == run.run_id:
                failed[drive] = run
    return failed


@dg.sensor(
    job=process_drive,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for every new drive and runs the whole chain for new or changed drives; "
    f"retries a drive whose last run failed, up to {MAX_ATTEMPTS} runs per fingerprint.",
)
def drive_discovery_sensor(context: dg.SensorEvaluationContext, storage: DriveStorage) -> dg.SensorResult:
    state = _load_cursor(context.cursor)
    seen: dict[str, str] = state["drives"]
    now = time.time()
    found, rejected = discover(storage, context.log, seen)
    for name in rejected:
        context.log.warning(
            f"folder {name!r} is not a valid drive name (letters, digits, '.', '_', '-'); skipped"
        )
    existing = set(context.instance.get_dynamic_partitions(drives.name))
    # skip drives whose latest raw_bags already saw these bags, whoever materialized them (UI, backfill)
    changed = {name: fp for name, fp in found.items() if seen.get(name) != fp}
    done = up_to_date(context.instance, {n: fp for n, fp in changed.items() if n in existing})
    new_partitions = sorted(set(found) - existing)
    # runs so far for each unchanged drive's fingerprint (kept only when above 1, to keep the cursor small)
    attempts = {n: a for n, a in state["attempts"].items() if seen.get(n) == found.get(n)}
    run_requests = [
        _request(
            name, fingerprint, f"{name}:{fingerprint}", "new drive" if name not in seen else "bags changed", 1
        )
        for name, fingerprint in sorted(changed.items())
        if name not in done
    ]
    retryable = {n: fp for n, fp in found.items() if seen.get(n) == fp and attempts.get(n, 1) < MAX_ATTEMPTS}
    if retryable:
        for name, run in sorted(failed_drives(context.instance, state["checked_at"], retryable).items()):
            if int(run.tags.get(ATTEMPT_TAG, "1")) < attempts.get(name, 1):
                continue  # a retry was already requested after this run
            attempt = attempts[name] = attempts.get(name, 1) + 1
            context.log.warning(
                f"drive {name}: run {run.run_id} failed; retrying (attempt {attempt} of {MAX_ATTEMPTS})"
            )
            key = f"{name}:{found[name]}:attempt{attempt}"
            run_requests.append(_request(name, found[name], key, "last run failed", attempt))
    if run_requests:
        context.log.info(f"requesting runs for {len(run_requests)} new, changed or failed drives")
    cursor = {"drives": found, "attempts": attempts, "checked_at": now}
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[drives.build_add_request(new_partitions)] if new_partitions else [],
        cursor=json.dumps(cursor, sort_keys=True, separators=(",", ":")),
    )


def _request(name: str, fingerprint: str, run_key: str, reason: str, attempt: int) -> dg.RunRequest:
    return dg.RunRequest(
        partition_key=name,
        run_key=run_key,
        tags={FINGERPRINT_TAG: fingerprint, ATTEMPT_TAG: str(attempt), "rosbag_assets/reason": reason},
    )
