"""K8s target: the pod spec validates against the Kubernetes API models and schedules GPU jobs on GPU nodes."""

import kubernetes
import pytest
from dagster_k8s.job import k8s_model_from_dict
from dagster_k8s.pipes import build_pod_body

from rosbag_assets.compute.k8s import K8sCompute

PARAMS = {"step": "object_labels", "drive": "d1", "output": "s3://out/data", "options": {}}


def _compute(**kw: object) -> K8sCompute:
    return K8sCompute(image="registry.example/rosbag-assets-extract:1", service_account="rosbag-jobs", **kw)


@pytest.mark.parametrize("asset", ["raw_bags", "extracted_frames", "object_labels", "lane_labels"])
def test_pod_spec_is_a_valid_v1_pod_spec(asset: str) -> None:
    spec = _compute(images={"object_labels": "registry.example/rosbag-assets-detect:1"}).build_pod_spec(
        asset, PARAMS
    )
    model = k8s_model_from_dict(kubernetes.client.V1PodSpec, spec)  # raises on unknown/misspelt fields
    # round trip through the API's wire form (camelCase, what the API server reads)
    api = kubernetes.client.ApiClient()
    wire = api.sanitize_for_serialization(model)
    assert api._ApiClient__deserialize(wire, "V1PodSpec") == model
    assert wire["restartPolicy"] == "Never" and wire["serviceAccountName"] == "rosbag-jobs"
    body = build_pod_body(
        pod_name="p",
        image=spec["containers"][0]["image"],
        command=spec["containers"][0]["command"],
        env_vars={"DAGSTER_PIPES_CONTEXT": "x"},
        base_pod_meta={"labels": {"a": "b"}},
        base_pod_spec=spec,
    )
    pod = (
        body
        if isinstance(body, kubernetes.client.V1Pod)
        else k8s_model_from_dict(kubernetes.client.V1Pod, body)
    )
    (container,) = pod.spec.containers
    assert container.command == ["python", "-m", "rosbag_assets.steps.entrypoint"]
    assert {e.name for e in container.env} >= {"DAGSTER_PIPES_CONTEXT", "PYTHONUNBUFFERED"}
    assert pod.spec.service_account_name == "rosbag-jobs"
    assert pod.spec.restart_policy == "Never"
    gpu = asset in ("object_labels", "lane_labels")
    assert (container.resources.limits.get("nvidia.com/gpu") == "1") is gpu
    assert (container.resources.requests.get("nvidia.com/gpu") == "1") is gpu
    if gpu:
        assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"}
        assert pod.spec.tolerations[0].key == "nvidia.com/gpu"
    else:
        assert not pod.spec.node_selector and not pod.spec.tolerations
    if asset == "object_labels":
        assert container.image.endswith("rosbag-assets-detect:1")


def test_misspelt_field_is_rejected_by_the_schema_check() -> None:
    spec = _compute().build_pod_spec("lane_labels", PARAMS)
    spec["node_selektor"] = {"x": "y"}
    with pytest.raises(Exception, match="node_selektor"):
        k8s_model_from_dict(kubernetes.client.V1PodSpec, spec)


def test_gpu_settings_are_configurable() -> None:
    compute = _compute(
        gpu_assets=["object_labels"], gpus=2, memory_limit="2Gi", gpu_node_selector={"pool": "gpu"}
    )
    lanes = compute.build_pod_spec("lane_labels", PARAMS)
    assert "nvidia.com/gpu" not in lanes["containers"][0]["resources"]["limits"]
    detect = compute.build_pod_spec("object_labels", PARAMS)
    res = detect["containers"][0]["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2" and detect["node_selector"] == {"pool": "gpu"}
    assert res["limits"]["memory"] == "16Gi"  # a limit below the request is raised to the request
