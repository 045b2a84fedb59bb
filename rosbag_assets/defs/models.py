"""Models trained on our own drives: `detector_model` and `detector_export` (not partitioned; `models` group).

Thin: the work is in `steps/detector_model.py` and `steps/detector_export.py`. A new training_dataset
version requests a training run (eager automation, evaluated by `models_automation_sensor`); the export
follows each new model.
"""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.datasets import training_dataset
from rosbag_assets.defs.policies import RETRY, check, run_step
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.steps.detector_export import DetectorExportOptions
from rosbag_assets.steps.detector_model import DetectorModelOptions

MODELS_GROUP = "models"


class DetectorModelConfig(dg.Config, DetectorModelOptions):
    """Launchpad config of `detector_model`: exactly the step's options model."""


class DetectorExportConfig(dg.Config, DetectorExportOptions):
    """Launchpad config of `detector_export`: exactly the step's options model."""


@dg.asset(
    group_name=MODELS_GROUP,
    kinds={"pytorch", "yolo"},
    deps=[training_dataset],
    retry_policy=RETRY,
    pool="gpu",
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        check(
            "fine_tuned_not_worse_than_base",
            "detector_model",
            "The fine-tuned detector's test mAP50-95 is not below the base model's (minus a tolerance)",
        )
    ],
    description="A YOLO detector fine-tuned on the current training_dataset version, evaluated against its base "
    "model; published only when it is not worse (README 'Training a detector').",
)
def detector_model(
    context: dg.AssetExecutionContext,
    config: DetectorModelConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)


@dg.asset(
    group_name=MODELS_GROUP,
    kinds={"onnx", "tflite", "tensorrt"},
    deps=[detector_model],
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        check("onnx_parity", "detector_export", "The ONNX export predicts the PyTorch model's boxes"),
        check("tflite_parity", "detector_export", "The TFLite export matches PyTorch", blocking=False),
        check("engine_parity", "detector_export", "The TensorRT engine matches PyTorch", blocking=False),
    ],
    description="The current detector_model as ONNX (+TFLite/TensorRT where possible), each export's boxes "
    "checked against PyTorch on validation images. object_labels runs it with weights: asset.",
)
def detector_export(
    context: dg.AssetExecutionContext,
    config: DetectorExportConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)


# Dagster creates `default_automation_condition_sensor` for any automation condition but leaves it stopped
# until someone toggles it in the UI; this one starts running, so `dagster dev` trains on each new dataset.
models_automation_sensor = dg.AutomationConditionSensorDefinition(
    "models_automation_sensor",
    target=dg.AssetSelection.groups(MODELS_GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Trains detector_model on each new training_dataset version and exports each new model.",
)
