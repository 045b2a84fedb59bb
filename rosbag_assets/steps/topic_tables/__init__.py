"""`topic_tables`: every non-image topic of a drive's bags as Parquet tables (see `write` for the layout)."""

from rosbag_assets.steps.topic_tables.options import IMAGE_MSGTYPES, TopicTablesOptions
from rosbag_assets.steps.topic_tables.plan import HEADER_STAMP, LOG_TIME, UnsupportedFieldError
from rosbag_assets.steps.topic_tables.summary import TopicTable, TopicTablesSummary
from rosbag_assets.steps.topic_tables.write import (
    topic_slug,
    write_bag_tables,
    write_drive_topic_tables,
    write_topic_tables,
)

__all__ = [
    "HEADER_STAMP",
    "IMAGE_MSGTYPES",
    "LOG_TIME",
    "TopicTable",
    "TopicTablesOptions",
    "TopicTablesSummary",
    "UnsupportedFieldError",
    "topic_slug",
    "write_bag_tables",
    "write_drive_topic_tables",
    "write_topic_tables",
]
