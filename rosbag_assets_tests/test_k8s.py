"""K8s target end to end against a fake cluster (kmock's API emulator + a local kubelet, `k8s_fakes`).

The real dagster-k8s `PipesK8sClient` creates the pod over HTTP, waits for it, follows its log; the pod's
container is the real entry point run locally with the pod's environment, so the asset's metadata and
check results arrive as Pipes messages in the pod log. The pod is deleted after success, failure and cancel.
"""

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster_k8s.client import DagsterKubernetesClient
from k8s_fakes import LocalCluster

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.compute.k8s import K8sCompute
from rosbag_assets.defs.drives import raw_bags
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.demo.sample_drive import ROS2_BAG, write_sample_drive

pytestmark = pytest.mark.timeout(60)
IMAGE = "registry.example/rosbag-assets-extract:1"
ENTRY_POINT = ["python", "-m", "rosbag_assets.steps.entrypoint"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster() as fake:
        yield fake


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    write_sample_drive(root / "d1", seconds=1.0, width=160, height=90)
    shutil.rmtree(root / "d1" / ROS2_BAG)
    return root


def _compute(cluster: LocalCluster, tmp_path: Path, **kw: Any) -> K8sCompute:
    return K8sCompute(
        image=IMAGE,
        kubeconfig_file=str(cluster.kubeconfig(tmp_path / "kubeconfig", namespace="rosbag")),
        service_account="rosbag-jobs",
        poll_interval_s=0.1,
        **kw,
    )


def _materialize(assets: list, landing: Path, out: Path, compute: K8sCompute) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(drives.name, ["d1"])
    return dg.materialize(
        assets,
        partition_key="d1",
        instance=instance,
        resources={
            "storage": DriveStorage(landing_root=str(landing), output_root=str(out)),
            "compute": ComputeTargets(default="k8s", k8s=compute, local=LocalCompute()),
        },
        raise_on_error=False,
    )


def test_raw_bags_runs_in_a_pod(cluster: LocalCluster, landing: Path, tmp_path: Path) -> None:
    compute = _compute(cluster, tmp_path, per_asset={"raw_bags": {"gpus": 1, "memory_limit": "2Gi"}})
    result = _materialize([raw_bags], landing, tmp_path / "out", compute)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    (body,) = cluster.created
    assert ("rosbag", body["metadata"]["name"]) in cluster.pods  # the kubeconfig's namespace
    spec = body["spec"]
    (container,) = spec["containers"]
    assert container["image"] == IMAGE and container["command"] == ENTRY_POINT
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert limits["nvidia.com/gpu"] == requests["nvidia.com/gpu"] == "1"
    assert limits["memory"] == "4Gi"  # a limit below the request is raised to the request
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["restartPolicy"] == "Never" and spec["serviceAccountName"] == "rosbag-jobs"
    labels = body["metadata"]["labels"]
    assert labels["rosbag-assets.io/run"] == result.run_id and labels["rosbag-assets.io/asset"] == "raw_bags"

    (pod,) = cluster.pods.values()
    assert pod.exit_code == 0 and "DAGSTER_PIPES_CONTEXT" in pod.env
    assert any('"report_asset_materialization"' in line for _, line in pod.lines)  # Pipes over the log
    assert cluster.deleted == [pod.name]  # deleted after success
    mat = result.asset_materializations_for_node("raw_bags")[0]
    assert mat.metadata["bags"].value == 1  # reported by the entry point inside the pod
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"all_bags_readable": True}


def test_failed_pod_raises_pod_failed_with_exit_code_and_log_tail(
    cluster: LocalCluster, landing: Path, tmp_path: Path
) -> None:
    @dg.asset(name="extracted_frames", partitions_def=drives)
    def extract_without_inventory(
        context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets
    ):
        params = storage.step_params("extracted_frames", context.partition_key, context.run_id)
        return compute.for_asset("extracted_frames").run(context, params)

    result = _materialize([extract_without_inventory], landing, tmp_path / "out", _compute(cluster, tmp_path))
    assert not result.success
    (pod,) = cluster.pods.values()
    assert pod.exit_code not in (0, None)
    error = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert "PodFailed" in error and f"Kubernetes pod {pod.name} failed" in error
    assert f"exit code: {pod.exit_code}" in error
    assert "materialize the upstream asset first" in error  # from the pod's last log lines
    assert cluster.deleted == [pod.name]  # deleted after failure too


def test_cancel_deletes_the_running_pod(landing: Path, tmp_path: Path) -> None:
    with LocalCluster(freeze_after_first_message=True) as cluster:
        compute = _compute(cluster, tmp_path)

        def interrupt_when_busy() -> None:
            if cluster.wait_for(lambda: any(p.frozen for p in cluster.pods.values())):
                os.kill(os.getpid(), signal.SIGINT)  # what a run cancel delivers to the step process

        @dg.asset(
            name="raw_bags",
            partitions_def=drives,
            check_specs=[dg.AssetCheckSpec("all_bags_readable", asset="raw_bags")],
        )
        def raw_bags_without_retry(
            context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets
        ):
            params = storage.step_params("raw_bags", context.partition_key, context.run_id)
            return compute.for_asset("raw_bags").run(context, params)

        threading.Thread(target=interrupt_when_busy, daemon=True).start()
        try:  # (raw_bags' retry policy would run the step again after the interrupt)
            result = _materialize([raw_bags_without_retry], landing, tmp_path / "out", compute)
            assert not result.success
        except (KeyboardInterrupt, DagsterExecutionInterruptedError):
            pass
        (pod,) = cluster.pods.values()
        assert pod.frozen and cluster.deleted == [pod.name]
        assert cluster.wait_for(lambda: pod.finished, 10) and pod.exit_code == -signal.SIGKILL


def test_a_retry_attaches_to_the_pod_an_earlier_attempt_left_running(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalCluster(freeze_after_first_message=True) as cluster:
        compute = _compute(cluster, tmp_path)
        # The first attempt dies right after creating its pod, before it can clean up (a killed step
        # process); Dagster's retry policy runs the step again while the pod is still busy.
        real_wait, real_delete = DagsterKubernetesClient.wait_for_pod, K8sCompute._delete
        attempts: list[int] = []

        def dying_wait(self: Any, *args: Any, **kwargs: Any) -> None:
            if not attempts:
                attempts.append(1)
                raise RuntimeError("step process killed")
            return real_wait(self, *args, **kwargs)

        def delete_unless_dying(self: Any, context: Any, *args: Any) -> None:
            if context.retry_number > 0:
                real_delete(self, context, *args)

        monkeypatch.setattr(DagsterKubernetesClient, "wait_for_pod", dying_wait)
        monkeypatch.setattr(K8sCompute, "_delete", delete_unless_dying)

        # the busy pod finishes once the retry follows its log
        threading.Thread(
            target=lambda: cluster.wait_for(lambda: cluster.log_requests > 0) and cluster.thaw(), daemon=True
        ).start()
        result = _materialize([raw_bags], landing, tmp_path / "out", compute)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        (pod,) = cluster.pods.values()  # attached: no second pod
        assert pod.exit_code == 0 and cluster.deleted == [pod.name]
        assert result.asset_materializations_for_node("raw_bags")[0].metadata["bags"].value == 1
        assert "STEP_UP_FOR_RETRY" in [e.event_type_value for e in result.all_events]
