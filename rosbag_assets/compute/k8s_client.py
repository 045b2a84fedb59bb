"""Kubernetes Pipes client: dagster-k8s's :class:`PipesK8sClient`, re-exported with the pod-log reader.

The pod's stdout carries the Pipes messages (the default ``PipesK8sPodLogsMessageReader``), so no
bucket is needed; the context goes in through the environment (no size cap on pod env values).
"""

from dagster_k8s import PipesK8sClient
from dagster_k8s.pipes import PipesK8sPodLogsMessageReader

__all__ = ["PipesK8sClient", "PipesK8sPodLogsMessageReader", "k8s_client"]


def k8s_client(
    *,
    load_incluster_config: bool | None = None,
    kubeconfig_file: str | None = None,
    poll_interval: float = 10.0,
) -> PipesK8sClient:
    """A PipesK8sClient: in-cluster config when ``KUBERNETES_SERVICE_HOST`` is set, else kubeconfig."""
    return PipesK8sClient(
        load_incluster_config=load_incluster_config,
        kubeconfig_file=kubeconfig_file,
        poll_interval=poll_interval,
    )
