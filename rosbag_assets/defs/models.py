"""Models trained on our own drives: `detector_model` and `detector_export` (not partitioned; `models` group).

Thin: the work is in `steps/detector_model.py` and `steps/detector_export.py`. A new training_dataset
version requests a training run (eager automation, evaluated by `models_automation_sensor`); the export
follows each new model.
"""

import dagster as dg

from rosbag_assets.defs.datasets import training_dataset
from rosbag_assets.defs.policies import check, launchpad_config, step_asset
from rosbag_assets.steps.detector_export_options import DetectorExportOptions
from rosbag_assets.steps.detector_model_options import DetectorModelOptions

MODELS_GROUP = "models"


DetectorModelConfig = launchpad_config(DetectorModelOptions)
DetectorExportConfig = launchpad_config(DetectorExportOptions)
TRAINING_SECTION = "Training a detector (closing the loop)"

detector_model = step_asset(
    "detector_model",
    "A YOLO detector fine-tuned on the current training_dataset version, evaluated against its base model; "
    "published only when it is not worse.",
    section=TRAINING_SECTION,
    config=DetectorModelConfig,
    per_drive=False,
    group_name=MODELS_GROUP,
    kinds={"pytorch", "yolo"},
    deps=(training_dataset,),
    pool="gpu",
    automation_condition=dg.AutomationCondition.eager(),
    checks=(
        check(
            "fine_tuned_not_worse_than_base",
            "detector_model",
            "The fine-tuned detector's test mAP50-95 is not below the base model's (minus a tolerance)",
        ),
    ),
)

detector_export = step_asset(
    "detector_export",
    "The current detector_model as ONNX (+TFLite/TensorRT where possible), each export's boxes checked against "
    "PyTorch on validation images. object_labels runs it with weights: asset.",
    section=TRAINING_SECTION,
    config=DetectorExportConfig,
    per_drive=False,
    group_name=MODELS_GROUP,
    kinds={"onnx", "tflite", "tensorrt"},
    deps=(detector_model,),
    automation_condition=dg.AutomationCondition.eager(),
    checks=(
        check("onnx_parity", "detector_export", "The ONNX export predicts the PyTorch model's boxes"),
        check("tflite_parity", "detector_export", "The TFLite export matches PyTorch", blocking=False),
        check("engine_parity", "detector_export", "The TensorRT engine matches PyTorch", blocking=False),
    ),
)


# Dagster creates `default_automation_condition_sensor` for any automation condition but leaves it stopped
# until someone toggles it in the UI; this one starts running, so `dagster dev` trains on each new dataset.
models_automation_sensor = dg.AutomationConditionSensorDefinition(
    "models_automation_sensor",
    target=dg.AssetSelection.groups(MODELS_GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Trains detector_model on each new training_dataset version and exports each new model.",
)
