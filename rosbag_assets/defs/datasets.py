"""Datasets built across drives: `training_dataset` (not partitioned). Thin: the work is in `steps/`."""

import dagster as dg

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.labels import object_labels
from rosbag_assets.defs.policies import RETRY, check, run_step
from rosbag_assets.defs.privacy import anonymized_frames
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.steps.training_dataset import TrainingDatasetOptions


class TrainingDatasetConfig(dg.Config, TrainingDatasetOptions):
    """Launchpad config of `training_dataset`: exactly the step's options model."""


@dg.asset(
    group_name="datasets",
    kinds={"yolo", "coco", "parquet"},
    deps=[extracted_frames, anonymized_frames, object_labels],
    retry_policy=RETRY,
    check_specs=[
        check("dataset_has_training_data", "training_dataset", "The train split holds images with boxes")
    ],
    description="Frames and labels of chosen drives, deduplicated and split by drive or time block, exported "
    "as Ultralytics YOLO, COCO, SageMaker Ground Truth, Label Studio and CVAT (README 'Datasets').",
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingDatasetConfig,
    storage: DriveStorage,
    compute: ComputeTargets,
):
    return run_step(context, storage, compute, config)
