"""Atomic publication of an asset partition's outputs.

Every materialization writes into a fresh version folder ``<drive>/<asset>/versions/<id>/`` that nobody
reads yet, then commits by writing the small pointer ``<drive>/<asset>/CURRENT.json`` last (an atomic
rename locally, a single PUT on S3). A killed run leaves only an unreferenced version folder, never a
partition that looks done; readers always resolve the pointer; a rerun publishes a new, equal version.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rosbag_assets.io.storage import Storage, join_key

POINTER = "CURRENT.json"
KEEP_VERSIONS = 2


@dataclass
class Staging:
    """A version folder being written; call `commit` once everything is in place."""

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

    def write_bytes(self, relative: str, data: bytes) -> str:
        key = self.key(relative)
        self.storage.write_bytes(key, data)
        return key

    def write_parquet(self, relative: str, frame: pd.DataFrame) -> str:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return self.write_bytes(relative, buf.getvalue())

    def read_parquet(self, relative: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.storage.read_bytes(self.key(relative))))

    def commit(self, manifest: dict[str, Any]) -> str:
        """Write the manifest into the version, then flip the pointer to it; prune old versions."""
        body = {"version": self.version, "committed_at": time.time(), **manifest}
        self.storage.write_bytes(self.key("manifest.json"), json.dumps(body, indent=2, default=str).encode())
        self.storage.write_bytes(join_key(self.asset_prefix, POINTER), json.dumps(body, default=str).encode())
        prune_versions(self.storage, self.asset_prefix, keep=KEEP_VERSIONS)
        return self.uri()

    def abort(self) -> None:
        """Remove the uncommitted version folder."""
        self.storage.delete_prefix(self.prefix)


def new_version_id(run_id: str | None = None) -> str:
    """Sortable, unique version id: UTC time plus a run/random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    suffix = (run_id or uuid.uuid4().hex)[:8]
    return f"{stamp}-{suffix}-{uuid.uuid4().hex[:4]}"


def begin(storage: Storage, asset_prefix: str, run_id: str | None = None) -> Staging:
    """Start writing a new version of `asset_prefix` (e.g. ``drive1/extracted_frames``)."""
    return Staging(storage, asset_prefix, new_version_id(run_id))


def current(storage: Storage, asset_prefix: str) -> dict[str, Any] | None:
    """The committed manifest of `asset_prefix`, or None when nothing has been published yet."""
    key = join_key(asset_prefix, POINTER)
    if not storage.exists(key):
        return None
    return json.loads(storage.read_bytes(key))


def require_current(storage: Storage, asset_prefix: str) -> tuple[Staging, dict[str, Any]]:
    """The committed version of an upstream asset, with a clear error when it was never materialized."""
    manifest = current(storage, asset_prefix)
    if manifest is None:
        raise FileNotFoundError(
            f"{storage.uri(asset_prefix)} has no committed version: materialize the upstream asset first"
        )
    return Staging(storage, asset_prefix, manifest["version"]), manifest


def prune_versions(storage: Storage, asset_prefix: str, keep: int = KEEP_VERSIONS) -> list[str]:
    """Delete all but the newest `keep` versions, never the committed one. Returns what was deleted."""
    committed = (current(storage, asset_prefix) or {}).get("version")
    versions = sorted(storage.list_dirs(join_key(asset_prefix, "versions")))
    survivors = set(versions[-keep:]) | {committed}
    doomed = [v for v in versions if v not in survivors]
    for version in doomed:
        storage.delete_prefix(join_key(asset_prefix, "versions", version))
    return doomed
