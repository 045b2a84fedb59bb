"""Compute targets: where a step runs. Local by default; chosen per asset by configuration, not code.

Every target runs the same entry point, ``python -m rosbag_assets.steps.entrypoint``, with the same
parameters. `ComputeTargets` is the Dagster resource that routes each asset to a target;
`rosbag_assets.compute.settings.compute_from_env` builds it from the environment and a deployment file.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.batch import BatchCompute
from rosbag_assets.compute.k8s import K8sCompute
from rosbag_assets.compute.local import LocalCompute
from rosbag_assets.compute.sagemaker import SageMakerCompute
from rosbag_assets.compute.target import ComputeSettingsError, ComputeTarget, RunOutput

TARGETS: dict[str, type[ComputeTarget]] = {
    "local": LocalCompute,
    "batch": BatchCompute,
    "sagemaker": SageMakerCompute,
    "k8s": K8sCompute,
}

__all__ = [
    "TARGETS",
    "BatchCompute",
    "ComputeSettingsError",
    "ComputeTarget",
    "ComputeTargets",
    "K8sCompute",
    "LocalCompute",
    "RunOutput",
    "SageMakerCompute",
]


class ComputeTargets(dg.ConfigurableResource):
    """Which target runs each asset's step: ``default`` for all, ``assets`` to route one asset elsewhere."""

    default: str = Field(
        default="local", description=f"Target of assets not in `assets`: one of {list(TARGETS)}."
    )
    assets: dict[str, str] = Field(default_factory=dict, description='e.g. {"object_labels": "sagemaker"}')
    local: LocalCompute | None = Field(default=None, description="Local target (a subprocess when unset).")
    batch: BatchCompute | None = Field(default=None, description="AWS Batch target.")
    sagemaker: SageMakerCompute | None = Field(
        default=None, description="SageMaker Processing/Training target."
    )
    k8s: K8sCompute | None = Field(default=None, description="Kubernetes pod target (dagster-k8s Pipes).")

    def target_name(self, asset: str) -> str:
        return self.assets.get(asset, self.default)

    def for_asset(self, asset: str) -> ComputeTarget:
        """The configured target of `asset` (its ``run`` applies the target's per-asset settings)."""
        name = self.target_name(asset)
        if name not in TARGETS:
            raise ComputeSettingsError(
                f"asset {asset}: unknown compute target {name!r}; one of {list(TARGETS)}"
            )
        if name == "local":
            return self.local or LocalCompute()
        target = getattr(self, name)
        if target is None:
            raise ComputeSettingsError(f"asset {asset}: compute target {name!r} is not configured")
        return target
