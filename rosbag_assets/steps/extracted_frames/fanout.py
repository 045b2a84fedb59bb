"""How ``extracted_frames`` splits: one part per readable bag of the drive's committed ``raw_bags``.

Every part writes its bag's frames and index part into one shared, uncommitted version (``commit=False``);
the finish step merges the parts into ``index.parquet``, evaluates the checks and commits the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rosbag_assets.io import publish
from rosbag_assets.io.storage import join_key, storage_from_uri
from rosbag_assets.steps.fanout import FanOut


def readable_bags(params: Mapping[str, Any]) -> list[str]:
    """Names of the readable bags in the drive's committed ``raw_bags`` inventory."""
    storage = storage_from_uri(params["output"], endpoint_url=params.get("s3_endpoint_url"))
    _, manifest = publish.require_current(storage, join_key(params["drive"], "raw_bags"))
    return [b["name"] for b in manifest["bags"] if b.get("ok")]


def plan(params: Mapping[str, Any]) -> FanOut | None:
    """One part per bag and a merge/commit step; None for fewer than two bags (nothing to split)."""
    bags = readable_bags(params)
    if len(bags) < 2:
        return None
    version = params.get("version") or publish.new_version_id(params.get("run_id"))
    parts = [{**params, "version": version, "bag_names": [bag], "commit": False} for bag in bags]
    return FanOut(parts=parts, finish={**params, "version": version, "bag_names": [], "commit": True})
