"""Choosing a compute target per asset without editing code: the deployment file, the environment, and
the errors a typo gets."""

import importlib
from pathlib import Path

import pytest

from rosbag_assets.compute import (
    BatchCompute,
    ComputeSettingsError,
    K8sCompute,
    LocalCompute,
    SageMakerCompute,
)
from rosbag_assets.compute.settings import compute_from_env, pool_for

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "compute.yaml"
ASSETS = ["raw_bags", "extracted_frames", "object_labels", "lane_labels"]
SAGEMAKER_ENV = {
    "ROSBAG_ASSETS_SAGEMAKER_IMAGE_URI": "ecr/rosbag-assets-detect:1",
    "ROSBAG_ASSETS_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
    "ROSBAG_ASSETS_SAGEMAKER_PIPES_BUCKET": "pipes",
}


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "compute.yaml"
    path.write_text(text)
    return str(path)


def test_the_worked_example_routes_every_asset_with_its_settings() -> None:
    targets = compute_from_env({"ROSBAG_ASSETS_COMPUTE_FILE": str(EXAMPLE)}, assets=ASSETS)
    resolved = {a: targets.for_asset(a).for_asset(a) for a in ASSETS}
    assert isinstance(resolved["raw_bags"], LocalCompute)
    frames, labels, lanes = resolved["extracted_frames"], resolved["object_labels"], resolved["lane_labels"]
    assert isinstance(frames, BatchCompute) and frames.fan_out and frames.job_queue == "rosbag-cpu-spot"
    assert isinstance(labels, SageMakerCompute) and labels.instance_type == "ml.g5.xlarge"
    assert labels.job_kind == "processing" and labels.pipes_bucket == "rosbag-assets-pipes"
    assert isinstance(lanes, K8sCompute) and lanes.namespace == "rosbag" and lanes.gpus == 0
    # the target's shared settings stay as they are for assets without overrides
    assert targets.sagemaker is not None and targets.sagemaker.instance_type == "ml.m5.xlarge"
    env = {"ROSBAG_ASSETS_COMPUTE_FILE": str(EXAMPLE)}
    assert [pool_for(a, env) for a in ASSETS] == [None, "batch", "gpu", "k8s"]


def test_every_target_can_be_chosen_from_the_environment_alone() -> None:
    env = {
        "ROSBAG_ASSETS_COMPUTE_PER_ASSET": "extracted_frames=batch, object_labels=sagemaker,lane_labels=k8s",
        "ROSBAG_ASSETS_COMPUTE": "in_process",
        "ROSBAG_ASSETS_BATCH_JOB_QUEUE": "gpu",
        "ROSBAG_ASSETS_BATCH_JOB_DEFINITION": "rosbag-assets",
        "ROSBAG_ASSETS_BATCH_TIMEOUT_S": "600",
        "ROSBAG_ASSETS_K8S_IMAGE": "registry/rosbag-assets:1",
        "ROSBAG_ASSETS_K8S_GPUS": "1",
        "ROSBAG_ASSETS_K8S_GPU_NODE_SELECTOR": "{pool: gpu}",
        **SAGEMAKER_ENV,
    }
    targets = compute_from_env(env, assets=ASSETS)
    local = targets.for_asset("raw_bags")
    assert isinstance(local, LocalCompute) and local.mode == "in_process"
    batch = targets.for_asset("extracted_frames")
    assert isinstance(batch, BatchCompute) and batch.job_queue == "gpu" and batch.timeout_s == 600
    assert isinstance(targets.for_asset("object_labels"), SageMakerCompute)
    k8s = targets.for_asset("lane_labels")
    assert isinstance(k8s, K8sCompute) and k8s.gpus == 1 and k8s.gpu_node_selector == {"pool": "gpu"}

    # the YAML form routes and overrides at once: a SageMaker Training job for one asset
    env["ROSBAG_ASSETS_COMPUTE_PER_ASSET"] = "{object_labels: {target: sagemaker, job_kind: training}}"
    labels = compute_from_env(env).for_asset("object_labels").for_asset("object_labels")
    assert isinstance(labels, SageMakerCompute) and labels.job_kind == "training"


def test_the_environment_overrides_the_file() -> None:
    env = {
        "ROSBAG_ASSETS_COMPUTE_FILE": str(EXAMPLE),
        "ROSBAG_ASSETS_BATCH_JOB_QUEUE": "other-queue",
        "ROSBAG_ASSETS_COMPUTE_DEFAULT": "batch",
        "ROSBAG_ASSETS_COMPUTE_PER_ASSET": "raw_bags=k8s",
    }
    targets = compute_from_env(env, assets=ASSETS)
    assert targets.default == "batch" and isinstance(targets.for_asset("raw_bags"), K8sCompute)
    assert targets.for_asset("extracted_frames").job_queue == "other-queue"  # type: ignore[union-attr]
    # moving an asset to another target keeps its settings, which must suit the new target
    env["ROSBAG_ASSETS_COMPUTE_PER_ASSET"] = "object_labels=k8s"
    with pytest.raises(
        ComputeSettingsError, match=r"asset object_labels .*unknown k8s settings 'instance_type'"
    ):
        compute_from_env(env, assets=ASSETS)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            "targets: {batch: {job_queu: q, job_definition: d}}",
            {},
            r"unknown settings 'job_queu' \(did you mean 'job_queue'\?\)",
        ),
        (
            "assets: {object_labels: {target: sagemkr}}",
            {},
            r"assets.object_labels.target: unknown target 'sagemkr'",
        ),
        (
            "assets: {object_labels: sagemaker}",
            {},
            r"target sagemaker .*missing settings \['image_uri', 'role_arn', 'pipes_bucket'\]"
            r".*ROSBAG_ASSETS_SAGEMAKER_ROLE_ARN",
        ),
        (
            "targets: {batch: {job_queue: q, job_definition: d, timeout_s: soon}}",
            {},
            r"(?s)target batch .*timeout_s.*valid integer",
        ),
        ("asset: {}", {}, r"unknown top-level keys \['asset'\]"),
        ("assets: {object_label: local}", {}, r"unknown assets \['object_label'\]"),
        (
            "assets: {lane_labels: {target: local, gpus: 1}}",
            {},
            r"asset lane_labels .*unknown local settings 'gpus'",
        ),
        ("default: local", {"ROSBAG_ASSETS_COMPUTE_PER_ASSET": "object_labels"}, r"asset=target pairs"),
        (
            "default: local",
            {"ROSBAG_ASSETS_BATCH_JOB_QUEUE": "q"},
            r"missing settings \['job_definition'\].*ROSBAG_ASSETS_BATCH_JOB_DEFINITION",
        ),
    ],
    ids=[
        "typo",
        "unknown-target",
        "unconfigured",
        "bad-type",
        "top-level",
        "unknown-asset",
        "wrong-target-setting",
        "bad-routes",
        "missing",
    ],
)
def test_mistakes_are_named_when_the_code_location_loads(
    tmp_path: Path, text: str, env: dict, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ComputeSettingsError, match=message) as err:
        compute_from_env({"ROSBAG_ASSETS_COMPUTE_FILE": path, **env}, assets=ASSETS)
    assert path in str(err.value) or "ROSBAG_ASSETS" in str(err.value)


def test_a_missing_compute_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ComputeSettingsError, match="compute file not found"):
        compute_from_env({"ROSBAG_ASSETS_COMPUTE_FILE": str(tmp_path / "nope.yaml")})


def test_the_code_location_reads_the_compute_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROSBAG_ASSETS_COMPUTE_FILE", str(EXAMPLE))
    import rosbag_assets.defs.definitions as definitions

    try:
        compute = importlib.reload(definitions).defs.resources["compute"]
        assert compute.assets["extracted_frames"] == "batch" and compute.batch is not None
    finally:
        monkeypatch.delenv("ROSBAG_ASSETS_COMPUTE_FILE")
        importlib.reload(definitions)
