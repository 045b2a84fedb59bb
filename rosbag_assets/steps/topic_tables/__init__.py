"""`topic_tables`: every non-image topic of a drive's bags as Parquet tables (see `write` for the layout).

Names below are imported from their module on first use, so that the code location, which imports
`options` (the Launchpad config), loads without pandas, pyarrow and the like.
"""

from rosbag_assets.steps.lazy import lazy_exports

_EXPORTS = {
    "IMAGE_MSGTYPES": "options",
    "TopicTablesOptions": "options",
    "HEADER_STAMP": "plan",
    "LOG_TIME": "plan",
    "UnsupportedFieldError": "plan",
    "TopicTable": "summary",
    "TopicTablesSummary": "summary",
    "topic_slug": "write",
    "write_bag_tables": "write",
    "write_drive_topic_tables": "write",
    "write_topic_tables": "write",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
