"""Dagster Pipes clients for remote compute (AWS Batch)."""

from rosbag_assets.pipes.batch import (
    DagsterExternalExecutionError,
    PipesBatchClient,
    console_url,
    log_url,
    retry_strategy,
)
from rosbag_assets.pipes.cloudwatch import BATCH_LOG_GROUP, CloudWatchTail, PipesBatchLogsMessageReader

__all__ = [
    "BATCH_LOG_GROUP",
    "CloudWatchTail",
    "DagsterExternalExecutionError",
    "PipesBatchClient",
    "PipesBatchLogsMessageReader",
    "console_url",
    "log_url",
    "retry_strategy",
]
