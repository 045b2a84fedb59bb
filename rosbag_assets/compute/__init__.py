"""Compute targets: where a job runs. Local (subprocess or in-process) by default; chosen per asset by configuration.

Every target runs the same entry point, ``python -m rosbag_assets.steps.entrypoint``, with the same parameters.
"""

import sys
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.batch import BatchCompute
from rosbag_assets.compute.k8s import K8sCompute
from rosbag_assets.compute.sagemaker import SageMakerCompute
from rosbag_assets.defs.resources import ContextLog, result_to_dagster
from rosbag_assets.steps.entrypoint import run_step

JOB_COMMAND = [sys.executable, "-m", "rosbag_assets.steps.entrypoint"]
RunOutput = dg.MaterializeResult | Sequence[dg.MaterializeResult | dg.AssetCheckResult]


class ComputeTarget(Protocol):
    def run(self, context: dg.AssetExecutionContext, params: dict[str, Any]) -> RunOutput: ...


class LocalCompute(dg.ConfigurableResource):
    """Runs jobs on this machine: as a Pipes subprocess (the container code path) or in-process."""

    mode: Literal["subprocess", "in_process"] = Field(
        default="subprocess",
        description="subprocess: the same Pipes entry point containers run; in_process: no process start-up.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for subprocess jobs.")

    def run(self, context: dg.AssetExecutionContext, params: dict[str, Any]) -> RunOutput:
        params = {**params, "target": f"local-{self.mode}"}  # reported as the `target` metadata entry
        if self.mode == "in_process":
            return result_to_dagster(run_step(params, log=ContextLog(context)))
        client = dg.PipesSubprocessClient(env=dict(self.env) or None)
        return client.run(context=context, command=JOB_COMMAND, extras=params).get_results()


class ComputeTargets(dg.ConfigurableResource):
    """Which target runs each asset's job: ``default`` for all, ``per_asset`` to override one asset."""

    default: Literal["local", "batch"] = Field(
        default="local", description="Target for assets not in per_asset."
    )
    per_asset: dict[str, str] = Field(default_factory=dict, description='e.g. {"object_labels": "batch"}')
    local: LocalCompute | None = Field(default=None, description="Local target (subprocess when unset).")
    batch: BatchCompute | None = Field(default=None, description="AWS Batch target.")
    sagemaker: SageMakerCompute | None = Field(
        default=None, description="SageMaker Processing/Training target."
    )
    k8s: K8sCompute | None = Field(default=None, description="Kubernetes pod target (dagster-k8s Pipes).")

    def target_name(self, asset: str) -> str:
        return self.per_asset.get(asset, self.default)

    def for_asset(self, asset: str) -> ComputeTarget:
        name = self.target_name(asset)
        if name == "local":
            return self.local or LocalCompute()
        target = getattr(self, name, None)
        if target is None:
            raise ValueError(f"asset {asset}: compute target {name!r} is not configured")
        return target
