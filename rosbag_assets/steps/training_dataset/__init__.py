"""`training_dataset`: frames and object labels of chosen drives -> a split, deduplicated training dataset.

Plain Python on pandas DataFrames (no Dagster, no storage): frames come from any index, bytes from any
`read_bytes(row)`, the output is a local folder in YOLO / COCO / SageMaker Ground Truth / Label Studio / CVAT.
"""

from rosbag_assets.steps.training_dataset.build import DatasetOutputError, DatasetResult, build_dataset
from rosbag_assets.steps.training_dataset.options import FORMATS, SPLITS, TrainingDatasetOptions
from rosbag_assets.steps.training_dataset.reviewed import (
    REVIEWED_COLUMNS,
    reviewed_from_coco,
    reviewed_from_groundtruth,
)

__all__ = [
    "FORMATS",
    "REVIEWED_COLUMNS",
    "SPLITS",
    "DatasetOutputError",
    "DatasetResult",
    "TrainingDatasetOptions",
    "build_dataset",
    "reviewed_from_coco",
    "reviewed_from_groundtruth",
]
