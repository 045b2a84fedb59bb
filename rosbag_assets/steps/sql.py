"""SQL that users write (scene rules, search queries) is parsed by DuckDB (`json_serialize_sql`) before it
runs; this reads the parse tree. Kept apart, and free of heavy imports, so `rosbag-assets search` starts fast."""

from __future__ import annotations

from typing import Any


def column_refs(tree: Any) -> set[str]:
    """Names of the columns referenced anywhere in a `json_serialize_sql` tree."""
    found: set[str] = set()
    if isinstance(tree, dict):
        if tree.get("class") == "COLUMN_REF":
            found.add(tree["column_names"][-1])
        for value in tree.values():
            found |= column_refs(value)
    elif isinstance(tree, list):
        for value in tree:
            found |= column_refs(value)
    return found
