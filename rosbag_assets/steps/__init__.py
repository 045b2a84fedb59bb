"""The plain-Python work of each asset, one module per asset and named after it; no Dagster.

`entrypoint` is the single command every compute target runs (in-process, subprocess, Batch, SageMaker, K8s).
"""
