"""`training_dataset`: frames and object labels of chosen drives -> a split, deduplicated training dataset.

Plain Python on pandas DataFrames (no Dagster, no storage): frames come from any index, bytes from any
`read_bytes(row)`, the output is a local folder in YOLO / COCO / SageMaker Ground Truth / Label Studio / CVAT.

Names below are imported from their module on first use, so that the code location, which imports
`options` (the Launchpad config), loads without pandas, pyarrow and the like.
"""

from rosbag_assets.steps.lazy import lazy_exports

_EXPORTS = {
    "DatasetOutputError": "build",
    "DatasetResult": "build",
    "build_dataset": "build",
    "FORMATS": "options",
    "SPLITS": "options",
    "TrainingDatasetOptions": "options",
    "REVIEWED_COLUMNS": "reviewed",
    "reviewed_from_coco": "reviewed",
    "reviewed_from_groundtruth": "reviewed",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
