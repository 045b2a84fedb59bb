"""One way to take a table in: a DataFrame, an Arrow table, or a Parquet file (local path or ``s3://``).

The timeline, scenes and catalog steps accept any of them, so tests and notebooks hand in DataFrames while
the steps hand in published Parquet files.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rosbag_assets.io.storage import storage_from_uri

Table = str | Path | pd.DataFrame | pa.Table


def read_table(table: Table, *, endpoint_url: str | None = None) -> pa.Table:
    """A DataFrame, an Arrow table, or a Parquet file (local path or ``s3://``) -> Arrow table."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    uri = str(table)
    folder, _, name = uri.rpartition("/")
    if not uri.startswith("s3://"):
        return pq.read_table(uri)
    return pq.read_table(io.BytesIO(storage_from_uri(folder, endpoint_url=endpoint_url).read_bytes(name)))
