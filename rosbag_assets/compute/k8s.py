"""Kubernetes compute target: each asset's job runs the Pipes entry point in a pod (dagster-k8s Pipes)."""

from typing import Any

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.k8s_client import k8s_client

CONTAINER_COMMAND = ["python", "-m", "rosbag_assets.steps.entrypoint"]
GPU_ASSETS = ("object_labels", "lane_labels")


class K8sCompute(dg.ConfigurableResource):
    """Runs jobs as Kubernetes pods; GPU assets get ``nvidia.com/gpu`` limits and GPU-node scheduling."""

    image: str = Field(description="Default image for every asset.")
    images: dict[str, str] = Field(default_factory=dict, description="Per-asset image override.")
    namespace: str | None = Field(default=None, description="Default: the current namespace.")
    service_account: str | None = Field(
        default=None, description="Service account (IRSA/workload identity for S3 access)."
    )
    cpu_request: str = "2"
    memory_request: str = "4Gi"
    memory_limit: str | None = "8Gi"
    gpu_assets: list[str] = Field(default_factory=lambda: list(GPU_ASSETS))
    gpus: int = Field(default=1, ge=0, description="nvidia.com/gpu per GPU pod.")
    gpu_cpu_request: str = "4"
    gpu_memory_request: str = "16Gi"
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Node labels of GPU nodes (GPU feature discovery label by default).",
    )
    gpu_tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    env: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[str] = Field(default_factory=list)
    active_deadline_s: int | None = Field(default=24 * 3600, description="Kill pods running longer.")
    load_incluster_config: bool | None = None
    kubeconfig_file: str | None = None
    poll_interval_s: float = 10.0

    def build_pod_spec(self, asset: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The pod spec (V1PodSpec attribute names, as dagster-k8s takes them) for one asset's job.

        ``params`` is accepted for per-job sizing; the job's parameters themselves travel in the Pipes context.
        """
        gpu = asset in self.gpu_assets and self.gpus > 0
        requests = {
            "cpu": self.gpu_cpu_request if gpu else self.cpu_request,
            "memory": self.gpu_memory_request if gpu else self.memory_request,
        }
        limits: dict[str, str] = {}
        if self.memory_limit:
            limits["memory"] = max(self.memory_limit, requests["memory"], key=_bytes)
        if gpu:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(self.gpus)
        container: dict[str, Any] = {
            "name": "dagster-pipes-execution",
            "image": self.images.get(asset, self.image),
            "command": CONTAINER_COMMAND,
            "resources": {"requests": requests, "limits": limits},
            "env": [{"name": k, "value": v} for k, v in {"PYTHONUNBUFFERED": "1", **self.env}.items()],
        }
        spec: dict[str, Any] = {"restart_policy": "Never", "containers": [container]}
        if self.service_account:
            spec["service_account_name"] = self.service_account
        if self.active_deadline_s:
            spec["active_deadline_seconds"] = self.active_deadline_s
        if self.image_pull_secrets:
            spec["image_pull_secrets"] = [{"name": n} for n in self.image_pull_secrets]
        if gpu:
            spec["node_selector"] = dict(self.gpu_node_selector)
            spec["tolerations"] = [dict(t) for t in self.gpu_tolerations]
        return spec

    def run(self, context: dg.AssetExecutionContext, params: dict[str, Any]) -> Any:
        """Run ``params`` in a pod; same contract as ``LocalCompute.run``."""
        asset = context.asset_key.path[-1]
        spec = self.build_pod_spec(asset, params)
        container = spec["containers"][0]
        client = k8s_client(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            poll_interval=self.poll_interval_s,
        )
        return client.run(
            context=context,
            image=container["image"],
            command=container["command"],
            namespace=self.namespace,
            base_pod_meta={"labels": {"rosbag-assets/asset": asset.replace("_", "-")}},
            base_pod_spec=spec,
            extras=params,
        ).get_results()


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _bytes(quantity: str) -> float:
    """A Kubernetes memory quantity in bytes (enough of the grammar for comparing settings)."""
    for unit in sorted(_UNITS, key=len, reverse=True):
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * _UNITS[unit]
    return float(quantity)
