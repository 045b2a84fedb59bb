"""Datasets: `reviewed_labels` (per drive, imported from a labelling tool) and `training_dataset` (across drives),
plus the sensor that imports a Ground Truth output manifest when it lands. Thin: the work is in `steps/`."""

import json

import dagster as dg

from rosbag_assets.defs.drives import extracted_frames
from rosbag_assets.defs.labels import object_labels
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.policies import check, launchpad_config, step_asset
from rosbag_assets.defs.privacy import anonymized_frames
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.io.storage import redact
from rosbag_assets.steps.reviewed_labels.options import REVIEWS_PREFIX, ReviewedLabelsOptions
from rosbag_assets.steps.training_dataset.options import TrainingDatasetOptions

ReviewedLabelsConfig = launchpad_config(ReviewedLabelsOptions)
TrainingDatasetConfig = launchpad_config(TrainingDatasetOptions)

reviewed_labels = step_asset(
    "reviewed_labels",
    "Boxes people reviewed in a labelling tool (a SageMaker Ground Truth output manifest or a COCO file, "
    "read only from under the output or landing root), mapped onto this drive's frames, with the reviewer "
    "job, labeling job ARN and time; earlier imports of other frames are kept. training_dataset prefers "
    "them to the model's boxes. Config `file` names what to import.",
    config=ReviewedLabelsConfig,
    group_name="datasets",
    kinds={"sagemaker", "coco", "parquet"},
    deps=(extracted_frames, object_labels),
)

training_dataset = step_asset(
    "training_dataset",
    "Frames and labels of chosen drives (reviewed labels preferred), deduplicated and split by drive or "
    "time block, exported as Ultralytics YOLO, COCO, SageMaker Ground Truth, Label Studio and CVAT.",
    config=TrainingDatasetConfig,
    per_drive=False,
    group_name="datasets",
    kinds={"yolo", "coco", "parquet"},
    deps=(extracted_frames, anonymized_frames, object_labels, reviewed_labels),
    checks=(
        check("dataset_has_training_data", "training_dataset", "The train split holds images with boxes"),
    ),
)


@dg.sensor(
    target=[reviewed_labels],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Imports reviewed labels when they land under <output root>/{REVIEWS_PREFIX}/: a Ground Truth "
    "job's manifests/output/output.manifest, or a COCO JSON under coco/; one reviewed_labels run per drive the "
    "file names, again whenever the file changes.",
)
def reviewed_labels_sensor(context: dg.SensorEvaluationContext, storage: DriveStorage) -> dg.SensorResult:
    # pandas, only in the process that evaluates the sensor: every run process loads this module
    from rosbag_assets.steps.reviewed_labels.source import drives_named_in, is_review_file

    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    output = storage.output()
    known = sorted(context.instance.get_dynamic_partitions(drives.name))
    found = {f.key: f.token for f in output.list_files(REVIEWS_PREFIX) if is_review_file(f.key)}
    requests = []
    for key, token in sorted(found.items()):
        if seen.get(key) == token:
            continue
        where = redact(output.uri(key))
        try:
            named = drives_named_in(output.read_bytes(key), where, known)
        except Exception as exc:  # a file that cannot be read is reported once per version, not every tick
            context.log.warning(f"{where}: not imported: {type(exc).__name__}: {exc}")
            continue
        if not named:
            context.log.warning(f"{where}: names no known drive; not imported")
        for drive in named:
            config = {"ops": {"reviewed_labels": {"config": {"file": key}}}}
            requests.append(
                dg.RunRequest(
                    partition_key=drive,
                    run_key=f"{key}:{token}:{drive}",
                    run_config=config,
                    tags={"rosbag_assets/reviewed_file": where[-200:]},
                )
            )
    if requests:
        context.log.info(f"requesting {len(requests)} reviewed_labels imports")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(found, sort_keys=True))
