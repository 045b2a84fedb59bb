"""The `models` group as Dagster sees it: configs, checks, pool and the automation that closes the loop."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from rosbag_assets.defs.definitions import defs
from rosbag_assets.defs.models import DetectorExportConfig, DetectorModelConfig
from rosbag_assets.steps.detector_export import DetectorExportOptions
from rosbag_assets.steps.detector_model import DetectorModelOptions, checkpoint_dir, trial_options
from rosbag_assets.steps.detector_training import training_args
from rosbag_assets.steps.entrypoint import STEPS


@pytest.mark.parametrize("options", [DetectorModelOptions, DetectorExportOptions])
def test_every_option_is_described(options: type) -> None:
    missing = [name for name, field in options.model_fields.items() if not field.description]
    assert not missing


def test_configs_are_launchpad_configs_of_the_step_options() -> None:
    assert DetectorModelConfig(epochs=3, dataset="cars").model_dump()["epochs"] == 3
    assert DetectorExportConfig().model_dump()["formats"] == ["onnx", "tflite", "engine"]
    with pytest.raises(ValueError, match="unknown export formats"):
        DetectorExportConfig(formats=["coreml"])
    with pytest.raises(ValueError):
        DetectorModelConfig(dataset="../escape")
    for config in (DetectorModelConfig, DetectorExportConfig):
        assert config.to_config_schema() is not None  # Dagster can build its Launchpad schema


def test_assets_checks_pool_and_automation() -> None:
    graph = defs.resolve_asset_graph()
    model, export = dg.AssetKey("detector_model"), dg.AssetKey("detector_export")
    assert graph.get(model).parent_keys == {dg.AssetKey("training_dataset")}
    assert graph.get(export).parent_keys == {model}
    model_def = defs.resolve_assets_def(model)
    assert model_def.group_names_by_key[model] == "models"
    assert model_def.op.pool == "gpu"
    assert isinstance(graph.get(model).automation_condition, dg.AutomationCondition)
    export_def = defs.resolve_assets_def(export)
    checks = {spec.name: spec for d in (model_def, export_def) for spec in d.check_specs}
    assert checks["fine_tuned_not_worse_than_base"].blocking and checks["onnx_parity"].blocking
    assert not checks["tflite_parity"].blocking and not checks["engine_parity"].blocking
    sensor = defs.resolve_sensor_def("models_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {"detector_model", "detector_export"} <= set(STEPS)


def test_checkpoints_survive_only_for_the_same_dataset_version_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = DetectorModelOptions(epochs=3)
    assert checkpoint_dir(opts, "v1", tmp_path) == tmp_path / "checkpoints"  # nothing survives: temp dir
    monkeypatch.setenv("ROSBAG_ASSETS_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    first = checkpoint_dir(opts, "v1", tmp_path)
    assert first.is_relative_to(tmp_path / "ckpt" / "default") and first == checkpoint_dir(
        opts, "v1", tmp_path
    )
    assert checkpoint_dir(opts, "v2", tmp_path) != first
    assert checkpoint_dir(DetectorModelOptions(epochs=4), "v1", tmp_path) != first

    monkeypatch.delenv("ROSBAG_ASSETS_CHECKPOINT_DIR")
    (tmp_path / "opt-ml" / "checkpoints").mkdir(parents=True)  # a Training job with a CheckpointConfig
    monkeypatch.setenv("ROSBAG_ASSETS_SAGEMAKER_ROOT", str(tmp_path / "opt-ml"))
    assert checkpoint_dir(opts, "v1", tmp_path).is_relative_to(
        tmp_path / "opt-ml" / "checkpoints" / "default"
    )


def test_a_tuning_trial_maps_tuned_values_to_options_and_ultralytics_arguments(tmp_path: Path) -> None:
    tuned = {"lr0": "0.003", "momentum": "0.9", "epochs": "7", "augmentation": "strong"}  # all strings
    opts = trial_options({"optimizer": "SGD", "hyperparameters": {"box": 5.0}}, tuned)
    assert (opts.lr0, opts.epochs, opts.augmentation) == (0.003, 7, "strong")
    assert opts.hyperparameters == {"box": 5.0, "momentum": 0.9}
    args = training_args(opts, tmp_path / "data.yaml", "cpu")
    assert args["momentum"] == 0.9 and args["box"] == 5.0 and args["lr0"] == 0.003
    with pytest.raises(ValueError, match="tuning range 'warp' is neither"):
        trial_options({}, {"warp": "1"})
    with pytest.raises(ValueError, match="trained_model must not be set"):
        trial_options({"trained_model": "s3://b/model.tar.gz"}, {})
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        DetectorModelOptions(
            hyperparameters={"flipud": 0.5}
        )  # not in TUNE_SPACE: dash-cams are never flipped
