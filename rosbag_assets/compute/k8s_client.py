"""`AttachingPipesK8sClient`: dagster-k8s's Pipes client, able to follow a pod an earlier attempt started.

Kept apart from `rosbag_assets.compute.k8s` so that configuring the target (a code location that only runs
locally, too) never imports dagster-k8s and the Kubernetes client (seconds of start-up).
"""

from __future__ import annotations

from typing import Any

from dagster._core.pipes.client import PipesClientCompletedInvocation
from dagster._core.pipes.utils import open_pipes_session
from dagster_k8s import PipesK8sClient
from dagster_k8s.client import DagsterKubernetesClient, WaitForPodState


class AttachingPipesK8sClient(PipesK8sClient):
    """`PipesK8sClient` that can also follow a pod an earlier attempt created (`attach`)."""

    def attach(
        self, *, context: Any, pod_name: str, namespace: str, extras: dict[str, Any] | None = None
    ) -> PipesClientCompletedInvocation:
        """Read `pod_name`'s log from its start (Pipes messages included) and wait for it to terminate."""
        self._load_k8s_config()
        client = DagsterKubernetesClient.production_client()
        with (
            open_pipes_session(
                context=context,
                extras=extras,
                context_injector=self.context_injector,
                message_reader=self.message_reader,
            ) as session,
            self.consume_pod_logs(context=context, client=client, namespace=namespace, pod_name=pod_name),
        ):
            client.wait_for_pod(
                pod_name,
                namespace,
                wait_for_state=WaitForPodState.Terminated,
                wait_time_between_attempts=self.poll_interval,
            )
        return PipesClientCompletedInvocation(session)
