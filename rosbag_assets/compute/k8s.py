"""Kubernetes compute target: each asset's step runs the Pipes entry point in a pod (dagster-k8s Pipes).

dagster-k8s's `PipesK8sClient` creates the pod, streams its log (Pipes messages included) and waits for it.
This target builds the pod spec (GPU limits and GPU-node scheduling when ``gpus`` > 0), labels the pod with
its run, asset and partition, and owns the pod's end: it is deleted after success, failure or cancel, and a
non-zero exit becomes `PodFailed` with the exit code and log tail. A retry attaches to a live pod of the
same run, asset and partition (its log carries every message from the start) instead of starting another.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.errors import PodFailed
from rosbag_assets.compute.target import ENTRY_POINT, ComputeTarget, RunOutput

if TYPE_CHECKING:
    from dagster_k8s.client import DagsterK8sError

    from rosbag_assets.compute.k8s_client import AttachingPipesK8sClient

CONTAINER_NAME = "dagster-pipes-execution"
LABEL = "rosbag-assets.io"
LIVE_PHASES = ("Pending", "Running")


def _label(value: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63].strip("-_.") or "x"


class K8sCompute(ComputeTarget):
    """Runs steps as Kubernetes pods through dagster-k8s Pipes."""

    image: str = Field(description="Image of the job pod (see containers/README.md).")
    namespace: str | None = Field(default=None, description="Default: the kubeconfig's or current namespace.")
    service_account: str | None = Field(
        default=None, description="Service account (IRSA/workload identity for S3 access)."
    )
    cpu_request: str = "2"
    memory_request: str = "4Gi"
    memory_limit: str | None = "8Gi"
    gpus: int = Field(default=0, ge=0, description="nvidia.com/gpu per pod; > 0 also schedules on GPU nodes.")
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
    kube_context: str | None = None
    poll_interval_s: float = 10.0
    log_tail_lines: int = Field(default=20, ge=0, description="Log lines quoted when a pod fails.")

    def build_pod_spec(self) -> dict[str, Any]:
        """The pod spec (V1PodSpec attribute names, as dagster-k8s takes them) of one step's pod."""
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits: dict[str, str] = {}
        if self.memory_limit:
            limits["memory"] = max(self.memory_limit, self.memory_request, key=_bytes)
        if self.gpus:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(self.gpus)
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": self.image,
            "command": list(ENTRY_POINT),
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
        if self.gpus:
            spec["node_selector"] = dict(self.gpu_node_selector)
            spec["tolerations"] = [dict(t) for t in self.gpu_tolerations]
        return spec

    def pipes_client(self) -> AttachingPipesK8sClient:
        from rosbag_assets.compute.k8s_client import AttachingPipesK8sClient  # dagster-k8s: only when used

        return AttachingPipesK8sClient(
            load_incluster_config=self.load_incluster_config,
            kubeconfig_file=self.kubeconfig_file,
            kube_context=self.kube_context,
            poll_interval=self.poll_interval_s,
        )

    @staticmethod
    def identity_labels(context: dg.AssetExecutionContext, asset: str) -> dict[str, str]:
        """Labels naming the run, asset and partition of a pod (how a retry finds it)."""
        partition = context.partition_key if context.has_partition_key else ""
        return {
            f"{LABEL}/run": _label(context.run_id),
            f"{LABEL}/asset": _label(asset),
            f"{LABEL}/partition": hashlib.sha256(partition.encode()).hexdigest()[:16],
        }

    def run_step(self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any]) -> RunOutput:
        """Run ``params`` in a pod; same contract as ``LocalCompute.run``."""
        import kubernetes
        from dagster_k8s.client import DagsterK8sError
        from dagster_k8s.utils import detect_current_namespace

        client = self.pipes_client()
        client._load_k8s_config()
        core = kubernetes.client.CoreV1Api()
        namespace = self.namespace or detect_current_namespace(self.kubeconfig_file) or "default"
        identity = self.identity_labels(context, asset)
        live = self._live_pod(core, namespace, identity)
        step = uuid.uuid4().hex
        selector = {f"{LABEL}/step": step} if live is None else identity
        try:
            if live is not None:
                context.log.info(f"attached to pod {live}, left running by an earlier attempt of this step")
                invocation = client.attach(context=context, pod_name=live, namespace=namespace, extras=params)
            else:
                spec = self.build_pod_spec()
                meta = {
                    "labels": {**identity, f"{LABEL}/step": step},
                    "annotations": {
                        f"{LABEL}/partition": context.partition_key if context.has_partition_key else ""
                    },
                }
                invocation = client.run(
                    context=context,
                    image=self.image,
                    command=list(ENTRY_POINT),
                    namespace=namespace,
                    base_pod_meta=meta,
                    base_pod_spec=spec,
                    extras=params,
                    delete_pod_on_completion=False,  # deleted below, after reading why it failed
                )
        except DagsterK8sError as exc:
            raise self._failure(core, namespace, selector, exc) from exc
        finally:
            self._delete(context, core, namespace, selector)
        return invocation.get_results()

    def _pods(self, core: Any, namespace: str, labels: dict[str, str]) -> list[Any]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        return list(core.list_namespaced_pod(namespace, label_selector=selector).items)

    def _live_pod(self, core: Any, namespace: str, identity: dict[str, str]) -> str | None:
        import kubernetes

        try:
            pods = self._pods(core, namespace, identity)
        except kubernetes.client.ApiException:
            return None
        live = [
            p
            for p in pods
            if (p.status and p.status.phase) in LIVE_PHASES and not p.metadata.deletion_timestamp
        ]
        return live[0].metadata.name if live else None

    def _failure(self, core: Any, namespace: str, labels: dict[str, str], exc: DagsterK8sError) -> PodFailed:
        """`PodFailed` with the container's exit code, reason and last log lines (from the API, not the text)."""
        import kubernetes

        try:
            pods = self._pods(core, namespace, labels)
        except kubernetes.client.ApiException:
            pods = []
        if not pods:
            return PodFailed("(unknown pod)", str(exc).splitlines()[0], None)
        pod = pods[0]
        name = pod.metadata.name
        terminated = next(
            (
                s.state.terminated
                for s in (pod.status.container_statuses or [])
                if s.state and s.state.terminated
            ),
            None,
        )
        tail: list[str] = []
        if self.log_tail_lines:
            try:
                response = core.read_namespaced_pod_log(
                    name, namespace, tail_lines=self.log_tail_lines, _preload_content=False
                )  # raw bytes: for this text endpoint the client would hand back str(bytes)
                text = response.data.decode("utf-8", "replace")
                tail = [
                    line for line in text.splitlines() if line and not line.startswith('{"__dagster_pipes')
                ]
            except kubernetes.client.ApiException:
                pass
        if terminated is None:
            return PodFailed(name, str(exc).splitlines()[0], None, tail)
        reason = terminated.message or terminated.reason
        return PodFailed(name, reason, terminated.exit_code, tail)

    def _delete(self, context: Any, core: Any, namespace: str, labels: dict[str, str]) -> None:
        """Delete the step's pod whatever happened (success, failure, cancel); best effort, logged."""
        try:
            for pod in self._pods(core, namespace, labels):
                core.delete_namespaced_pod(pod.metadata.name, namespace)
                context.log.info(f"deleted pod {pod.metadata.name}")
        except Exception as exc:
            context.log.warning(f"could not delete the pod of this step ({labels}): {exc}")


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def _bytes(quantity: str) -> float:
    """A Kubernetes memory quantity in bytes (enough of the grammar for comparing settings)."""
    for unit in sorted(_UNITS, key=len, reverse=True):
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * _UNITS[unit]
    return float(quantity)
