"""Drives are dynamic partitions: added by the discovery sensor, the UI, or `dagster` CLI."""

import dagster as dg

drives = dg.DynamicPartitionsDefinition(name="drives")
