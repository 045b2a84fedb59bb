"""Where a step runs: locally, on AWS Batch, SageMaker or Kubernetes, each through a Dagster Pipes client."""
