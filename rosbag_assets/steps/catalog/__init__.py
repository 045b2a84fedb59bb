"""`catalog`: one DuckDB database across all drives, updated one drive at a time, for `rosbag-assets search`.

Layout: `schema` (tables, opening the database, how columns grow; DuckDB only, so search starts fast),
`db` (the writer lock, replacing or removing one drive's rows, Parquet export), `hits` (the derived tables a
search scans: `hits`, `scene_frames`), `run` (the step: which drives changed or are gone, the update, its
checks). Import from the module you need: this package imports nothing, so a search does not pay for
pandas and pyarrow.
"""
