"""`detector_model` on SageMaker Training, as Dagster runs it, against moto and `FakeSageMaker`.

The asset is materialized with its compute routed to SageMaker Training; the fake stages what the service
would (input channels, hyperparameters, checkpoints, model.tar.gz, MetricDefinitions, output/failure) and
runs the container command locally. Fast tests use a stand-in container program where training itself is
not the point; the slow tests run the real entry point and really fine-tune (tests marked slow).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tarfile
import uuid
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import yaml
from botocore.exceptions import ClientError
from dagster._core.pipes import utils as pipes_utils
from detector_dataset import build_detector_dataset, coco_yolo11n_pt, missing_inputs
from sagemaker_fakes import REGION, ROLE, FakeSageMaker, FakeSageMakerCompute

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.compute.sagemaker_client import JOB_NAME_RE, sagemaker_job_name
from rosbag_assets.compute.sagemaker_tuning import DEFAULT_METRICS, metric_definitions, tuning_job_name
from rosbag_assets.compute.target import ENTRY_POINT
from rosbag_assets.defs.models import detector_model
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.io import publish
from rosbag_assets.io.storage import storage_from_uri
from rosbag_assets.steps.detector_data import fetch_dataset
from rosbag_assets.steps.training_dataset.run import dataset_prefix

TRAIN_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rosbag-assets-train:test"
CHECK = "fine_tuned_not_worse_than_base"

# A stand-in training image for the fast tests: a Pipes job that lists its dataset channel, prints metric
# lines as the real step does, leaves a model file and reports what it was given.
WORKER = f"""
import os, pathlib, boto3
from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter, open_dagster_pipes
root = pathlib.Path(os.environ["ROSBAG_ASSETS_SAGEMAKER_ROOT"])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
with open_dagster_pipes(context_loader=PipesS3ContextLoader(s3), message_writer=PipesS3MessageWriter(s3)) as p:
    channel = root / "input" / "data" / "dataset"
    files = sorted(x.relative_to(channel).as_posix() for x in channel.rglob("*") if x.is_file())
    p.log.info("epoch 1/1: box_loss=1.250 mAP50-95=0.2500")
    print("metrics: train:box_loss=1.25 val:mAP50-95=0.25", flush=True)
    print("metrics: train:box_loss=0.75 val:mAP50-95=0.375 best:mAP50-95=0.5", flush=True)
    (root / "model" / "best.pt").write_bytes(b"weights")
    json_value = lambda v: {{"raw_value": v, "type": "json"}}
    p.report_asset_materialization(
        metadata={{"channel_files": json_value(files), "options": json_value(p.extras["options"])}}
    )
    p.report_asset_check(check_name="{CHECK}", passed=True)
"""

# A stand-in tuning trial: its objective peaks at lr0 = 10**-2.5, and its model file names its lr0.
TRIAL = """
import json, math, os, pathlib
assert "DAGSTER_PIPES_CONTEXT" not in os.environ  # trials run without Pipes
root = pathlib.Path(os.environ["ROSBAG_ASSETS_SAGEMAKER_ROOT"])
hp = json.loads((root / "input" / "config" / "hyperparameters.json").read_text())
assert (root / "input" / "data" / "dataset" / "data.yaml").is_file()
assert json.loads((root / "input" / "data" / "params" / "params.json").read_text())["step"] == "detector_model"
print(f"metrics: best:mAP50-95={1 - abs(math.log10(float(hp['lr0'])) + 2.5):.6f}", flush=True)
(root / "model" / "best.pt").write_text(hp["lr0"])
"""


class Targets(ComputeTargets):
    sagemaker: FakeSageMakerCompute | None = None


@pytest.fixture(autouse=True)
def _short_pipes_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster waits 10 s for messages after a session whose process never closed it (cancel, failure)."""
    monkeypatch.setattr(pipes_utils, "WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)


def _bucket(endpoint: str) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=name)
    return name


def _publish_dataset(output_uri: str, endpoint: str, files: dict[str, bytes]) -> str:
    """Commit a training_dataset version holding `files`; its version id."""
    out = storage_from_uri(output_uri, endpoint_url=endpoint)
    draft = publish.begin(out, dataset_prefix("default"), "dataset-run")
    for rel, data in files.items():
        draft.write_bytes(rel, data)
    draft.commit({"formats": ["yolo"]})
    return draft.version


DATA_YAML = b"names: {0: person, 1: car}\ntrain: images/train\nval: images/val\n"


@pytest.fixture
def setup(moto_server: Any) -> dict[str, Any]:
    """Pipes bucket, an S3 output root with two dataset versions (v2 current), the Dagster storage."""
    endpoint = moto_server.url
    data_bucket = _bucket(endpoint)
    output = f"s3://{data_bucket}/out"
    v1 = _publish_dataset(output, endpoint, {"data.yaml": DATA_YAML, "images/train/old.jpg": b"1"})
    v2 = _publish_dataset(
        output, endpoint, {"data.yaml": DATA_YAML, "images/train/new.jpg": b"2", "labels/train/new.txt": b""}
    )
    storage = DriveStorage(landing_root="/nonexistent", output_root=output, s3_endpoint_url=endpoint)
    return {"endpoint": endpoint, "pipes": _bucket(endpoint), "bucket": data_bucket, "output": output,
            "storage": storage, "v1": v1, "v2": v2}  # fmt: skip


def _compute(setup: dict[str, Any], **kw: Any) -> Targets:
    settings = {
        "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/rosbag-assets-detect:test",
        "training_image_uri": TRAIN_IMAGE,
        "role_arn": ROLE,
        "region": REGION,
        "endpoint_url": setup["endpoint"],
        "s3_endpoint_url": setup["endpoint"],
        "pipes_bucket": setup["pipes"],
        "poll_interval_s": 0.05,
        "message_interval_s": 0.1,
        "job_kind": "training",
        **kw,
    }
    return Targets(local=LocalCompute(), assets={"detector_model": "sagemaker"}, sagemaker=settings)


def _materialize(
    setup: dict[str, Any], compute: Targets, config: dict[str, Any] | None = None, **kw: Any
) -> Any:
    return dg.materialize(
        [detector_model],
        instance=kw.pop("instance", None) or dg.DagsterInstance.ephemeral(),
        resources={"storage": setup["storage"], "compute": compute},
        run_config={"ops": {"detector_model": {"config": config or {}}}},
        **kw,
    )


def _failure(result: Any) -> str:
    """The step failure's message and its causes' (after the retry, Dagster wraps the last attempt's error)."""
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def _job_options(setup: dict[str, Any], job: str) -> dict[str, Any]:
    """The options a job was started with (its params.json in the Pipes bucket)."""
    s3 = boto3.client("s3", endpoint_url=setup["endpoint"], region_name=REGION)
    body = s3.get_object(Bucket=setup["pipes"], Key=f"dagster-pipes/jobs/{job}/params/params.json")["Body"]
    return json.loads(body.read())["options"]


def _tar_files(endpoint: str, uri: str, tmp: Path) -> dict[str, bytes]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    local = tmp / f"{uuid.uuid4().hex}.tar.gz"
    boto3.client("s3", endpoint_url=endpoint, region_name=REGION).download_file(bucket, key, str(local))
    with tarfile.open(local) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_a_spot_training_job_gets_its_pinned_dataset_and_reports_its_metrics(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    fake = FakeSageMaker(setup["endpoint"], program=["python", "-c", WORKER])
    FakeSageMakerCompute.fake = fake
    compute = _compute(setup, managed_spot=True, max_runtime_s=3600, max_wait_s=5400)
    instance = dg.DagsterInstance.ephemeral()
    res = _materialize(setup, compute, {"epochs": 3}, instance=instance)
    assert res.success
    ((name, request),) = fake.requests.items()
    assert name == sagemaker_job_name(res.run_id, "detector_model", None, 0) and JOB_NAME_RE.match(name)
    assert name.startswith("detector-model-") and len(name) <= 63
    algorithm = request["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == TRAIN_IMAGE and algorithm["ContainerEntrypoint"] == ENTRY_POINT
    assert [m["Name"] for m in algorithm["MetricDefinitions"]] == list(DEFAULT_METRICS)
    # spot capacity with bounded run and wait, checkpoints synced to S3 so an interrupted job resumes
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 5400}
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://{setup['pipes']}/checkpoints/detector_model",
        "LocalPath": "/opt/ml/checkpoints",
    }
    # input channels: the job parameters, and the dataset version current at launch (its prefix, with "/")
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]
    }
    version_uri = f"{setup['output']}/datasets/default/training_dataset/versions/{setup['v2']}/"
    assert channels["dataset"] == version_uri and set(channels) == {"params", "dataset"}
    assert request["OutputDataConfig"] == {
        "S3OutputPath": f"{setup['output']}/models/_sagemaker/detector_model"
    }

    mat = res.asset_materializations_for_node("detector_model")[0]
    files = mat.metadata["channel_files"].value
    assert {"data.yaml", "images/train/new.jpg", "labels/train/new.txt"} <= set(files)
    assert "images/train/old.jpg" not in files  # only the pinned version was staged
    options = mat.metadata["options"].value
    assert options["dataset_version"] == setup["v2"] and options["epochs"] == 3
    # metrics: SageMaker's FinalMetricDataList (last value of each) and the epoch line streamed over Pipes
    assert mat.metadata["sagemaker_metrics"].value == {
        "train:box_loss": 0.75,
        "val:mAP50-95": 0.375,
        "best:mAP50-95": 0.5,
    }
    messages = [e.user_message for e in instance.all_logs(res.run_id)]
    assert any("epoch 1/1: box_loss=1.250" in m for m in messages)
    artefact = f"{setup['output']}/models/_sagemaker/detector_model/{name}/output/model.tar.gz"
    assert _tar_files(setup["endpoint"], artefact, tmp_path) == {"best.pt": b"weights"}


def test_metric_definitions_read_the_lines_the_step_prints() -> None:
    from rosbag_assets.steps.detector_training import sagemaker_metrics
    from rosbag_assets.steps.sagemaker_container import metric_line

    event = {"event": "epoch", "losses": {"box_loss": 1.5, "cls_loss": 2.0, "dfl_loss": 1.25}, "mAP50": 0.5,
             "mAP50-95": 0.25, "precision": 0.75, "recall": 1e-05}  # fmt: skip
    line = metric_line(sagemaker_metrics(event) | sagemaker_metrics({"event": "final", "mAP50-95": 0.125}))
    found = {}
    for definition in metric_definitions(DEFAULT_METRICS):
        match = re.search(definition["Regex"], line)
        if match:
            found[definition["Name"]] = float(match.group(1))
    assert found == {"train:box_loss": 1.5, "train:cls_loss": 2.0, "train:dfl_loss": 1.25, "val:mAP50": 0.5,
                     "val:mAP50-95": 0.25, "val:precision": 0.75, "val:recall": 1e-05,
                     "best:mAP50-95": 0.125}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cancelled", "polling_failed"])
def test_the_training_job_is_stopped_when_the_step_ends_early(setup: dict[str, Any], how: str) -> None:
    """The run is cancelled while the job runs, or following it fails for good: the job is stopped.

    The asset's retry policy runs the step twice (Dagster retries interrupted steps too), so each attempt
    ends early and each attempt's job must be stopped; none is left running.
    """
    if how == "cancelled":
        fake = FakeSageMaker(setup["endpoint"], hang=True)
    else:
        denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Describe")
        fake = FakeSageMaker(setup["endpoint"], faults=[denied, denied], program=["python", "-c", "pass"])
    FakeSageMakerCompute.fake = fake
    res = _materialize(setup, _compute(setup), raise_on_error=False)
    assert not res.success
    if how == "polling_failed":
        assert "AccessDenied" in _failure(res)
    assert len(fake.requests) == 2 and fake.stopped == list(fake.requests)


@pytest.mark.slow
def test_the_failure_reason_of_the_real_step_reaches_the_dagster_error(setup: dict[str, Any]) -> None:
    """The real entry point fails in the container (its base weights do not exist); the step's error, written
    to /opt/ml/output/failure, is the job's FailureReason and ends up in the Dagster failure."""
    fake = FakeSageMaker(setup["endpoint"])
    FakeSageMakerCompute.fake = fake
    res = _materialize(setup, _compute(setup), {"base_weights": "/nonexistent/base.pt"}, raise_on_error=False)
    assert not res.success
    name = list(fake.requests)[-1]  # the retry's job (the asset retries once)
    assert [o["status"] for o in fake.outcomes.values()] == ["Failed", "Failed"]
    error = _failure(res)
    assert f"SageMaker training job {name} ended Failed: AlgorithmError: WeightsUnavailableError" in error
    assert "local weights file /nonexistent/base.pt does not exist" in error
    assert fake.stopped == []  # it ended by itself


TUNING = {
    "ranges": [
        {"name": "lr0", "min_value": 1e-4, "max_value": 1e-1, "scaling": "Logarithmic"},
        {"name": "optimizer", "values": ["SGD", "AdamW"]},
    ],
    "max_jobs": 4,
    "max_parallel_jobs": 2,
}


def test_a_tuning_job_searches_and_its_best_trial_is_published(setup: dict[str, Any], tmp_path: Path) -> None:
    fake = FakeSageMaker(
        setup["endpoint"], program=["python", "-c", WORKER], trial_program=["python", "-c", TRIAL]
    )
    FakeSageMakerCompute.fake = fake
    compute = _compute(setup, tuning=TUNING, managed_spot=True, max_runtime_s=3600)
    instance = dg.DagsterInstance.ephemeral()
    res = _materialize(setup, compute, {"optimizer": "SGD"}, instance=instance)
    assert res.success
    (tuning,) = fake.tuning
    assert tuning == tuning_job_name(res.run_id, "detector_model", None, 0) and len(tuning) <= 32
    request = fake.requests[tuning]
    config = request["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "best:mAP50-95"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 4, "MaxParallelTrainingJobs": 2}
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [
            {"Name": "lr0", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
        ],
        "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["SGD", "AdamW"]}],
    }
    definition = request["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"] == TRAIN_IMAGE
    assert "ContainerEntrypoint" not in definition["AlgorithmSpecification"]  # the image's ENTRYPOINT runs
    assert not any(k.startswith("DAGSTER_PIPES") for k in definition["Environment"])
    assert definition["EnableManagedSpotTraining"] is True and "CheckpointConfig" in definition
    trials = fake.tuning[tuning]["trials"]
    assert len(trials) == 4 and all(
        fake.commands[t["TrainingJobName"]] == [*ENTRY_POINT, "train"] for t in trials
    )

    # the best trial by the objective the trials printed (recomputed here from their tuned lr0)
    def objective(trial: dict[str, Any]) -> float:
        return 1 - abs(math.log10(float(trial["TunedHyperParameters"]["lr0"])) + 2.5)

    best = max(trials, key=objective)["TrainingJobName"]
    artefact = f"{setup['output']}/models/_sagemaker/detector_model/{best}/output/model.tar.gz"
    final = [r for n, r in fake.requests.items() if n != tuning]
    assert len(final) == 1 and "ContainerEntrypoint" in final[0]["AlgorithmSpecification"]  # one Pipes job
    mat = res.asset_materializations_for_node("detector_model")[0]
    assert mat.metadata["options"].value["trained_model"] == artefact
    assert mat.metadata["sagemaker_best_trial"].value == best
    assert mat.metadata["sagemaker_tuning_job"].value == tuning
    lr0 = next(t for t in trials if t["TrainingJobName"] == best)["TunedHyperParameters"]["lr0"]
    assert mat.metadata["sagemaker_tuned_hyperparameters"].value["lr0"] == lr0
    assert _tar_files(setup["endpoint"], artefact, tmp_path) == {"best.pt": lr0.encode()}
    messages = [e.user_message for e in instance.all_logs(res.run_id)]
    for trial in trials:  # every trial's objective was reported into the run as it ended
        assert any(m.startswith(f"tuning trial {trial['TrainingJobName']}: best:mAP50-95=") for m in messages)


@pytest.mark.slow
def test_failing_trials_fail_the_step_with_their_reason(setup: dict[str, Any], tmp_path: Path) -> None:
    """Real trials (the entry point's 'train' mode) that fail at run time (here: starting weights that are
    missing, which no check before launch can see) fail the step with the trials' own reason."""
    fake = FakeSageMaker(setup["endpoint"], program=["python", "-c", WORKER])
    FakeSageMakerCompute.fake = fake
    missing = tmp_path / "nowhere" / "base.pt"
    config = {"optimizer": "SGD", "base_weights": str(missing)}
    res = _materialize(setup, _compute(setup, tuning={**TUNING, "max_jobs": 2}), config, raise_on_error=False)
    assert not res.success
    assert len(fake.tuning) == 2  # a failed search is not followed by the retry: it searches again
    name = list(fake.tuning)[-1]
    error = _failure(res)
    assert f"SageMaker hyper-parameter tuning job {name} ended Failed" in error
    assert f"local weights file {missing} does not exist" in error
    assert fake.calls["create_training_job"] == 0  # nothing was published


@pytest.mark.parametrize(
    ("ranges", "refused"),
    [
        ([{"name": "lr00", "min_value": 1e-4, "max_value": 1e-1}], "tuning range 'lr00'"),  # a typo
        (
            [{"name": "imgsz", "min_value": 320, "max_value": 640}],
            "tuning range 'imgsz'",
        ),  # not integer: true
        ([{"name": "optimizer", "values": ["SGD", "Adamm"]}], "optimizer='Adamm'"),
    ],
)
def test_a_search_whose_trials_would_fail_is_refused_before_launch(
    setup: dict[str, Any], ranges: list[dict[str, Any]], refused: str
) -> None:
    fake = FakeSageMaker(setup["endpoint"])
    FakeSageMakerCompute.fake = fake
    res = _materialize(setup, _compute(setup, tuning={**TUNING, "ranges": ranges}), raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert refused in str(failure.event_specific_data.error), failure.event_specific_data.error
    assert fake.calls["create_hyper_parameter_tuning_job"] == 0 and fake.calls["create_training_job"] == 0


def test_a_cancelled_tuning_job_is_stopped(setup: dict[str, Any]) -> None:
    fake = FakeSageMaker(setup["endpoint"], hang=True)
    FakeSageMakerCompute.fake = fake
    res = _materialize(setup, _compute(setup, tuning=TUNING), raise_on_error=False)
    assert not res.success
    assert len(fake.tuning) == 2 and fake.stopped == list(fake.tuning)  # each attempt's search was stopped
    assert fake.calls["create_training_job"] == 0


@pytest.mark.slow
def test_a_retry_follows_the_finished_tuning_job(setup: dict[str, Any], tmp_path: Path) -> None:
    """The publishing job fails once; the retry does not search again, it publishes the same best trial."""
    marker = tmp_path / "failed-once"
    flaky = f"import pathlib, sys\np = pathlib.Path({str(marker)!r})\nif not p.exists():\n    p.touch()\n"
    flaky += "    sys.exit('publishing failed')\n" + WORKER
    fake = FakeSageMaker(
        setup["endpoint"], program=["python", "-c", flaky], trial_program=["python", "-c", TRIAL]
    )
    FakeSageMakerCompute.fake = fake
    instance = dg.DagsterInstance.ephemeral()
    res = _materialize(
        setup, _compute(setup, tuning={**TUNING, "max_jobs": 2}), {"optimizer": "SGD"}, instance=instance
    )
    assert res.success and "STEP_UP_FOR_RETRY" in [e.event_type_value for e in res.all_events]
    assert fake.calls["create_hyper_parameter_tuning_job"] == 1 and fake.calls["create_training_job"] == 2
    jobs = [n for n, r in fake.requests.items() if "TrainingJobName" in r]
    first, second = (_job_options(setup, job)["trained_model"] for job in jobs)
    assert first == second and first.endswith("/output/model.tar.gz")
    messages = [e.user_message for e in instance.all_logs(res.run_id)]
    assert any("started by an earlier attempt" in m for m in messages)


def test_a_training_job_reads_the_mounted_channel_instead_of_downloading(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "opt-ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data" / "dataset").mkdir(parents=True)
    (root / "input" / "data" / "dataset" / "data.yaml").write_bytes(DATA_YAML)
    output = storage_from_uri(setup["output"], endpoint_url=setup["endpoint"])
    monkeypatch.setenv("ROSBAG_ASSETS_SAGEMAKER_ROOT", str(root))
    data_yaml, manifest = fetch_dataset(output, "default", tmp_path / "download", setup["v1"])
    assert (
        data_yaml == root / "input" / "data" / "dataset" / "data.yaml" and manifest["version"] == setup["v1"]
    )
    assert not (tmp_path / "download").exists()
    monkeypatch.delenv("ROSBAG_ASSETS_SAGEMAKER_ROOT")  # not in a Training job: the pinned version is fetched
    data_yaml, _ = fetch_dataset(output, "default", tmp_path / "download", setup["v1"])
    assert (tmp_path / "download" / "images" / "train" / "old.jpg").read_bytes() == b"1"


# --- real fine-tuning in the container (slow) ------------------------------------------------------------


@pytest.fixture
def real_dataset(moto_server: Any, tmp_path: Path) -> dict[str, Any]:
    """The shared-frames YOLO dataset (detector_dataset.py) published as a training_dataset version on S3."""
    missing = missing_inputs()
    if missing:
        pytest.skip(f"shared test data missing: {missing}")
    data_yaml = build_detector_dataset(tmp_path / "dataset", max_side=320)
    files = {
        p.relative_to(data_yaml.parent).as_posix(): p.read_bytes()
        for p in data_yaml.parent.rglob("*")
        if p.is_file() and p.suffix in {".jpg", ".txt"}
    }
    config = {
        k: v for k, v in yaml.safe_load(data_yaml.read_text()).items() if k != "path"
    }  # relative, as published
    files["data.yaml"] = yaml.safe_dump(config).encode()
    endpoint = moto_server.url
    bucket = _bucket(endpoint)
    output = f"s3://{bucket}/out"
    version = _publish_dataset(output, endpoint, files)
    storage = DriveStorage(landing_root="/nonexistent", output_root=output, s3_endpoint_url=endpoint)
    return {"endpoint": endpoint, "pipes": _bucket(endpoint), "bucket": bucket, "output": output,
            "storage": storage, "version": version}  # fmt: skip


REAL_OPTIONS = {"epochs": 1, "imgsz": 160, "batch": 8, "workers": 0, "device": "cpu", "optimizer": "SGD",
                "lr0": 1e-4, "eval_tolerance": 0.1}  # fmt: skip  # 0.1: see test_detector_loop.SMOKE_TOLERANCE


def _current_model(setup: dict[str, Any]) -> dict[str, Any]:
    output = storage_from_uri(setup["output"], endpoint_url=setup["endpoint"])
    return publish.current(output, "models/default/detector_model") or {}


@pytest.mark.slow
def test_detector_model_fine_tunes_in_a_sagemaker_training_job(
    real_dataset: dict[str, Any], tmp_path: Path
) -> None:
    """The real entry point fine-tunes in the 'container': epochs stream into the run, SageMaker's metrics
    come back as metadata, the model artefact and the checkpoints land in S3, the version is published."""
    setup = real_dataset
    fake = FakeSageMaker(setup["endpoint"])
    FakeSageMakerCompute.fake = fake
    instance = dg.DagsterInstance.ephemeral()
    config = {**REAL_OPTIONS, "base_weights": str(coco_yolo11n_pt())}
    res = _materialize(setup, _compute(setup, managed_spot=True), config, instance=instance)
    assert res.success
    ((name, _),) = fake.requests.items()
    messages = [e.user_message for e in instance.all_logs(res.run_id)]
    assert any(m.startswith("epoch 1/1: box_loss=") for m in messages)  # streamed from inside the job
    mat = res.asset_materializations_for_node("detector_model")[0].metadata
    sagemaker = mat["sagemaker_metrics"].value  # read by the MetricDefinitions from the job's log
    assert sagemaker["best:mAP50-95"] == pytest.approx(mat["val_mAP50_95"].value, abs=1e-4)
    assert sagemaker["test:mAP50-95"] == pytest.approx(mat["test_mAP50_95"].value, abs=1e-4)
    assert {"train:box_loss", "val:mAP50", "best:mAP50"} <= set(sagemaker)
    manifest = _current_model(setup)
    assert (
        manifest["dataset_version"] == setup["version"] and mat["model_version"].value == manifest["version"]
    )
    artefact = f"{setup['output']}/models/_sagemaker/detector_model/{name}/output/model.tar.gz"
    files = _tar_files(setup["endpoint"], artefact, tmp_path)
    assert set(files) == {"best.pt", "metrics.json", "results.csv", "eval.json"}
    assert hashlib.sha256(files["best.pt"]).hexdigest() == manifest["best_pt_sha256"]
    s3 = boto3.client("s3", endpoint_url=setup["endpoint"], region_name=REGION)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=setup["pipes"], Prefix="checkpoints/")["Contents"]]
    assert any(re.fullmatch(rf"checkpoints/detector_model/default/{setup['version']}-\w+/train/weights/last\.pt", k)
               for k in keys), keys  # fmt: skip  # synced for a spot restart


@pytest.mark.slow
def test_a_real_tuning_job_publishes_its_best_trial(real_dataset: dict[str, Any], tmp_path: Path) -> None:
    """Two real trials (the entry point's 'train' mode) fine-tune with sampled lr0; the winner's best.pt is
    the one evaluated and published, and the trials themselves publish nothing."""
    setup = real_dataset
    fake = FakeSageMaker(setup["endpoint"])
    FakeSageMakerCompute.fake = fake
    tuning = {"ranges": [{"name": "lr0", "min_value": 1e-5, "max_value": 1e-3, "scaling": "Logarithmic"}],
              "max_jobs": 2, "max_parallel_jobs": 1}  # fmt: skip
    config = {**REAL_OPTIONS, "base_weights": str(coco_yolo11n_pt())}
    res = _materialize(setup, _compute(setup, tuning=tuning), config)
    assert res.success
    (tuning_name,) = fake.tuning
    trials = fake.tuning[tuning_name]["trials"]
    assert [t["TrainingJobStatus"] for t in trials] == ["Completed", "Completed"]
    best = max(trials, key=lambda t: t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    artefact = (
        f"{setup['output']}/models/_sagemaker/detector_model/{best['TrainingJobName']}/output/model.tar.gz"
    )
    files = _tar_files(setup["endpoint"], artefact, tmp_path)
    assert set(files) == {"best.pt", "metrics.json", "results.csv"}
    assert json.loads(files["metrics.json"])["options"]["lr0"] == float(best["TunedHyperParameters"]["lr0"])
    manifest = _current_model(setup)
    assert manifest["options"]["trained_model"] == artefact
    assert manifest["best_pt_sha256"] == hashlib.sha256(files["best.pt"]).hexdigest()
    output = storage_from_uri(setup["output"], endpoint_url=setup["endpoint"])
    versions = {
        f.key.split("/versions/")[1].split("/")[0]
        for f in output.list_files("models/default/detector_model/versions")
    }
    assert versions == {manifest["version"]}  # only the winner was published


def test_the_readme_worked_configuration_builds_valid_requests(tmp_path: Path) -> None:
    """README 'Training a detector': its deployment file loads, and the training and tuning requests it
    produces are valid CreateTrainingJob / CreateHyperParameterTuningJob input for botocore's service model."""
    import botocore.session
    from botocore.validate import validate_parameters

    from rosbag_assets.compute.sagemaker_tuning import training_definition
    from rosbag_assets.compute.settings import compute_targets, read_file

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Training a detector") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    block = block.replace("<ecr>", "123456789012.dkr.ecr.eu-central-1.amazonaws.com").replace(
        "<role arn>", ROLE
    )
    (tmp_path / "compute.yaml").write_text(block)
    targets = compute_targets(read_file(tmp_path / "compute.yaml"))
    target = targets.for_asset("detector_model").for_asset("detector_model")
    assert target.job_kind == "training" and target.managed_spot and target.tuning is not None
    channels = {"dataset": "s3://data/out/datasets/default/training_dataset/versions/v1/"}
    job = target.training_job_params(
        "detector_model",
        "job-1",
        "s3://pipes/p/",
        "s3://pipes/j",
        channels=channels,
        model_uri="s3://data/out/m",
    )
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/rosbag-assets-train:TAG")
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(job, model.operation_model("CreateTrainingJob").input_shape)
    request = target.tuning.request(
        tuning_job_name("run", "detector_model", None), training_definition(job), {}
    )
    validate_parameters(request, model.operation_model("CreateHyperParameterTuningJob").input_shape)
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert [r["Name"] for r in ranges["ContinuousParameterRanges"]] == ["lr0", "momentum"]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "augmentation", "Values": ["default", "strong"]}]
