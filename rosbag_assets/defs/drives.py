"""The four drive-partitioned assets. Each one is a thin call into a plain job module via the compute resource."""

import os

import dagster as dg
from pydantic import Field

from rosbag_assets.compute import ComputeTargets
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage

RETRY = dg.RetryPolicy(max_retries=1, delay=5, backoff=dg.Backoff.EXPONENTIAL)
GROUP = "drives"


def _check(name: str, asset: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


class ExtractConfig(dg.Config):
    """What to extract from the drive's bags and how to write it."""

    topics: list[str] | None = Field(
        default=None, description="Image topics; default: every Image/CompressedImage"
    )
    max_rate_hz: float | None = Field(
        default=None, description="Keep at most this many frames per second per topic"
    )
    start_offset_s: float | None = Field(
        default=None, description="Window start, seconds after each bag's start"
    )
    end_offset_s: float | None = Field(default=None, description="Window end, seconds after each bag's start")
    image_format: str = Field(
        default="jpeg", description="jpeg or png for raw images; depth is always lossless"
    )
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    max_width: int | None = Field(default=None, description="Resize keeping aspect (never upscales)")
    max_height: int | None = None
    reencode_compressed: bool = Field(
        default=False, description="Re-encode CompressedImage instead of passing it through"
    )
    workers: int = Field(default=0, description="Encoder threads; 0 = all cores")
    bag_workers: int = Field(
        default=0, description="Bags extracted at once, one process each; 0 = half the cores for bags >= 2 GB"
    )
    max_in_flight: int = Field(default=0, description="Frames being encoded at once; 0 = 4 x workers")
    layout: str = Field(
        default="shards", description="shards (tar per bag and topic) or files (one per frame)"
    )
    shard_mb: float = Field(default=512, description="Start a new shard past this size")


class DetectConfig(dg.Config):
    """Ultralytics YOLO settings; unset values fall back to the environment's defaults (see README)."""

    weights: str | None = Field(
        default=None, description="Ultralytics name, local path, s3:// or https:// URL"
    )
    allow_fallback: bool | None = Field(
        default=None, description="Use the offline HOG detector when weights are missing"
    )
    confidence: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    classes: list[int] | None = None
    batch_size: int = 16
    device: str | None = Field(default=None, description="cpu, cuda:0, ...; default: GPU when present")
    cpu_runtime: str = Field(
        default="onnx", description="On CPU: onnx (export .pt once, run ONNX Runtime) or torch"
    )
    topics: list[str] | None = None
    max_frames: int | None = Field(default=None, description="Label at most this many frames, spread evenly")

    def options(self) -> dict:
        opts = self.model_dump(exclude_none=True)
        opts.setdefault("weights", os.environ.get("ROSBAG_ASSETS_WEIGHTS", "yolo11n.pt"))
        opts.setdefault("allow_fallback", os.environ.get("ROSBAG_ASSETS_ALLOW_FALLBACK", "0") == "1")
        cache = os.environ.get("ROSBAG_ASSETS_WEIGHTS_CACHE")
        if cache:
            opts["cache_dir"] = cache
        return opts


class LanesConfig(dg.Config):
    backend: str = Field(default="opencv-hough", description="Lane detector backend")
    topics: list[str] | None = None
    max_frames: int | None = None


@dg.asset(
    partitions_def=drives,
    group_name=GROUP,
    kinds={"ros", "parquet"},
    retry_policy=RETRY,
    check_specs=[
        _check("all_bags_readable", "raw_bags", "Every bag opens and its index reads", blocking=False)
    ],
    description="Inventory of every bag in the drive: format, bytes, time span, topics with types and counts.",
)
def raw_bags(context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets):
    params = storage.job_params("inventory", context.partition_key, context.run.run_id)
    return compute.for_asset("raw_bags").run(context, params)


@dg.asset(
    partitions_def=drives,
    group_name=GROUP,
    kinds={"ros", "image", "parquet"},
    deps=[raw_bags],
    retry_policy=RETRY,
    check_specs=[
        _check(
            "every_image_topic_has_frames",
            "extracted_frames",
            "Every image topic with messages produced frames",
        ),
        _check(
            "no_extraction_errors", "extracted_frames", "No bag or topic failed to decode", blocking=False
        ),
    ],
    description="Camera frames from one streaming pass over each bag, with a Parquet index per drive.",
)
def extracted_frames(
    context: dg.AssetExecutionContext, config: ExtractConfig, storage: DriveStorage, compute: ComputeTargets
):
    params = storage.job_params("extract", context.partition_key, context.run.run_id, config.model_dump())
    return compute.for_asset("extracted_frames").run(context, params)


@dg.asset(
    partitions_def=drives,
    group_name=GROUP,
    kinds={"pytorch", "parquet"},
    deps=[extracted_frames],
    retry_policy=RETRY,
    pool="gpu",
    check_specs=[
        _check("labels_point_at_frames", "object_labels", "Every label row points at an existing frame"),
        _check("boxes_inside_image", "object_labels", "Every box lies inside its image"),
    ],
    description="Ultralytics YOLO object labels for every colour frame, batched; the model is recorded per row.",
)
def object_labels(
    context: dg.AssetExecutionContext, config: DetectConfig, storage: DriveStorage, compute: ComputeTargets
):
    params = storage.job_params("detect", context.partition_key, context.run.run_id, config.options())
    return compute.for_asset("object_labels").run(context, params)


@dg.asset(
    partitions_def=drives,
    group_name=GROUP,
    kinds={"opencv", "parquet"},
    deps=[extracted_frames, object_labels],
    retry_policy=RETRY,
    check_specs=[
        _check("lanes_point_at_frames", "lane_labels", "Every lane row points at a committed frame"),
        _check("lane_points_inside_image", "lane_labels", "Every lane point lies inside its image"),
    ],
    description="Lane polylines per frame (pluggable backend; offline classical detector by default).",
)
def lane_labels(
    context: dg.AssetExecutionContext, config: LanesConfig, storage: DriveStorage, compute: ComputeTargets
):
    params = storage.job_params(
        "lanes", context.partition_key, context.run.run_id, config.model_dump(exclude_none=True)
    )
    return compute.for_asset("lane_labels").run(context, params)


drive_assets = [raw_bags, extracted_frames, object_labels, lane_labels]
process_drive = dg.define_asset_job(
    "process_drive",
    selection=dg.AssetSelection.assets(*drive_assets),
    description="Inventory, extract, label objects and lanes for one drive.",
)
