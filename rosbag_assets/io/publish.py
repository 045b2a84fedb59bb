"""Atomic, check-gated publication of an asset partition's outputs.

Every materialization writes into a fresh version folder ``<drive>/<asset>/versions/<id>/`` (a `Draft`)
that nobody reads yet. Committing writes the version's ``manifest.json`` and then the small pointer
``<drive>/<asset>/CURRENT.json`` last (an atomic rename locally, a single PUT on S3) — but only when every
blocking check passed; otherwise the version is kept, marked ``rejected``, and the previous one stays current.
A killed run leaves only an unreferenced draft, never a partition that looks done; readers always resolve
the pointer (`require_current` returns a read-only `Version`).

Pruning counts committed versions only and never touches the current one, the previous committed one, or a
draft whose lease (refreshed while it is written) is younger than the grace period, so overlapping runs of
one partition cannot delete each other's work; abandoned drafts go once their lease is stale.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rosbag_assets.io.storage import Storage, join_key

POINTER = "CURRENT.json"
MANIFEST = "manifest.json"
LEASE = "_lease.json"
KEEP_VERSIONS = 2
LEASE_REFRESH_S = 300.0
ABANDONED_AFTER_S = 6 * 3600.0  # a draft whose lease is older than this belongs to a dead run


@dataclass
class Version:
    """One version folder of an asset partition, read-only."""

    storage: Storage
    asset_prefix: str
    version: str

    @property
    def prefix(self) -> str:
        return join_key(self.asset_prefix, "versions", self.version)

    def key(self, relative: str) -> str:
        return join_key(self.prefix, relative)

    def uri(self, relative: str = "") -> str:
        return self.storage.uri(self.key(relative)) if relative else self.storage.uri(self.prefix)

    def read_parquet(self, relative: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.storage.read_bytes(self.key(relative))))


@dataclass
class Draft(Version):
    """A version being written: call `commit` once everything is in place, `abort` to drop it."""

    run_id: str | None = None
    _lease_at: float = field(default=0.0, repr=False)

    def renew_lease(self, force: bool = False) -> None:
        """Tell concurrent pruners this draft is alive (cheap: at most one small write per few minutes)."""
        now = time.time()
        if force or now - self._lease_at > LEASE_REFRESH_S:
            self._lease_at = now
            body = {"run_id": self.run_id, "renewed_at": now}
            self.storage.write_bytes(self.key(LEASE), json.dumps(body).encode())

    def write_bytes(self, relative: str, data: bytes) -> str:
        self.renew_lease()
        key = self.key(relative)
        self.storage.write_bytes(key, data)
        return key

    def write_parquet(self, relative: str, frame: pd.DataFrame) -> str:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return self.write_bytes(relative, buf.getvalue())

    def commit(self, manifest: dict[str, Any], blocking_failures: list[str] | None = None) -> str:
        """Seal the version; make it current unless a blocking check failed. Returns the version's URI.

        With `blocking_failures`, the manifest records them, the version is kept for inspection and the
        pointer is left where it was: a version whose blocking checks fail is never made current.
        """
        rejected = list(blocking_failures or [])
        body = {
            "version": self.version,
            "committed_at": time.time(),
            "status": "rejected" if rejected else "current",
            "failed_blocking_checks": rejected,
            **manifest,
        }
        data = json.dumps(body, indent=2, default=str).encode()
        self.storage.write_bytes(self.key(MANIFEST), data)
        if not rejected:
            self.storage.write_bytes(join_key(self.asset_prefix, POINTER), data)
        try:  # the version is sealed: a failed clean-up must not make it look failed (the next commit retries)
            self.storage.delete(self.key(LEASE))
            prune_versions(self.storage, self.asset_prefix, keep=KEEP_VERSIONS)
        except Exception as exc:
            logging.getLogger(__name__).warning(
                f"{self.uri()}: committed; removing its lease or old versions failed ({exc})"
            )
        return self.uri()

    def abort(self) -> None:
        """Remove the uncommitted version folder."""
        self.storage.delete_prefix(self.prefix)


def new_version_id(run_id: str | None = None) -> str:
    """Sortable, unique version id: UTC time plus a run/random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    suffix = (run_id or uuid.uuid4().hex)[:8]
    return f"{stamp}-{suffix}-{uuid.uuid4().hex[:4]}"


def begin(
    storage: Storage, asset_prefix: str, run_id: str | None = None, version: str | None = None
) -> Draft:
    """Start (or, with `version`, join) writing a version of `asset_prefix` (e.g. ``drive1/extracted_frames``)."""
    draft = Draft(storage, asset_prefix, version or new_version_id(run_id), run_id=run_id)
    draft.renew_lease(force=True)
    return draft


def current(storage: Storage, asset_prefix: str) -> dict[str, Any] | None:
    """The committed manifest of `asset_prefix`, or None when nothing has been published yet."""
    key = join_key(asset_prefix, POINTER)
    if not storage.exists(key):
        return None
    return json.loads(storage.read_bytes(key))


def require_current(storage: Storage, asset_prefix: str) -> tuple[Version, dict[str, Any]]:
    """The committed version of an upstream asset, with a clear error when it was never materialized."""
    manifest = current(storage, asset_prefix)
    if manifest is None:
        raise FileNotFoundError(
            f"{storage.uri(asset_prefix)} has no committed version: materialize the upstream asset first"
        )
    return Version(storage, asset_prefix, manifest["version"]), manifest


def _read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_bytes(key))
    except (FileNotFoundError, ValueError):
        return None


def prune_versions(
    storage: Storage,
    asset_prefix: str,
    keep: int = KEEP_VERSIONS,
    abandoned_after_s: float = ABANDONED_AFTER_S,
) -> list[str]:
    """Delete old committed versions and abandoned drafts; returns what was deleted.

    Kept: the current version, the newest `keep` committed versions (so the previous one survives a bad
    publish), and every draft whose lease is younger than `abandoned_after_s` (another run may be writing it).
    """
    committed_now = (current(storage, asset_prefix) or {}).get("version")
    now = time.time()
    committed: list[str] = []
    abandoned: list[str] = []
    for version in sorted(storage.list_dirs(join_key(asset_prefix, "versions"))):
        base = join_key(asset_prefix, "versions", version)
        if storage.exists(join_key(base, MANIFEST)):
            committed.append(version)
            continue
        lease = _read_json(storage, join_key(base, LEASE))
        if lease is None:  # a draft that never wrote its lease is judged by its id's timestamp
            try:
                started = time.mktime(time.strptime(version[:15], "%Y%m%dT%H%M%S")) - time.timezone
            except ValueError:
                continue
            renewed = started
        else:
            renewed = float(lease.get("renewed_at", 0))
        if now - renewed > abandoned_after_s:
            abandoned.append(version)
    survivors = set(committed[-keep:]) | {committed_now}
    doomed = [v for v in committed if v not in survivors] + abandoned
    for version in doomed:
        storage.delete_prefix(join_key(asset_prefix, "versions", version))
    return doomed
