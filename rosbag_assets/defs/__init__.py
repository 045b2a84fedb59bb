"""Dagster only: partitions, one module per asset family, checks, sensors, resources and the Definitions."""
