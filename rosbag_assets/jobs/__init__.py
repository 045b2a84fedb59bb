"""Plain-Python job code: reads bags, decodes, encodes, detects, finds lanes.

Nothing in this package imports Dagster; `entrypoint` speaks dagster-pipes so the very same
code runs in-process, as a local subprocess, or inside a container on Batch/SageMaker/K8s.
"""
