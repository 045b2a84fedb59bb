"""`catalog`: one DuckDB database across all drives, updated one drive at a time, for `rosbag-assets search`.

Layout: `schema` (tables and how their columns grow), `db` (connections, the writer lock, replacing or
removing one drive's rows, Parquet export), `hits` (the derived tables a search scans: `hits`,
`scene_frames`), `run` (the step: which drives changed or are gone, the update, its checks).
"""

from rosbag_assets.steps.catalog.db import (
    UpsertReport,
    connect,
    export_drive,
    export_key,
    remove_drive,
    upsert_drive,
    writer,
)
from rosbag_assets.steps.catalog.hits import rebuild_derived
from rosbag_assets.steps.catalog.schema import (
    DERIVED_TABLES,
    HITS,
    SCENE_FRAMES,
    SOURCE_TABLES,
    TABLES,
    CatalogError,
    evolve,
    existing_tables,
    table_columns,
)

__all__ = [
    "DERIVED_TABLES",
    "HITS",
    "SCENE_FRAMES",
    "SOURCE_TABLES",
    "TABLES",
    "CatalogError",
    "UpsertReport",
    "connect",
    "evolve",
    "existing_tables",
    "export_drive",
    "export_key",
    "rebuild_derived",
    "remove_drive",
    "table_columns",
    "upsert_drive",
    "writer",
]
