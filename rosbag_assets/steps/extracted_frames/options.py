"""What `extracted_frames` extracts and how it writes it: the step's one configuration model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
INDEX_COLUMNS = [
    "drive",
    "bag",
    "topic",
    "stamp_ns",
    "log_time_ns",
    "width",
    "height",
    "encoding",
    "format",
    "frame_key",
    "data_key",
    "offset",
    "bytes",
    "path",
]
LAYOUTS = ("shards", "files")


class ExtractedFramesOptions(BaseModel):
    """What to extract from a drive's bags and how to write it (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")

    topics: list[str] | None = Field(
        default=None, description="Image topics to extract; default: every Image and CompressedImage topic."
    )
    max_rate_hz: float | None = Field(
        default=None, gt=0, description="Keep at most this many frames per second per topic; default: all."
    )
    start_offset_s: float | None = Field(
        default=None, description="Window start, seconds after each bag's first message."
    )
    end_offset_s: float | None = Field(
        default=None, description="Window end, seconds after each bag's first message."
    )
    image_format: Literal["jpeg", "png"] = Field(
        default="jpeg", description="Format of raw (uncompressed) frames; depth images are always lossless."
    )
    jpeg_quality: int = Field(default=90, ge=1, le=100, description="JPEG quality of raw frames (1-100).")
    max_width: int | None = Field(
        default=None, gt=0, description="Resize to at most this width, keeping aspect; never upscales."
    )
    max_height: int | None = Field(
        default=None, gt=0, description="Resize to at most this height, keeping aspect; never upscales."
    )
    reencode_compressed: bool = Field(
        default=False,
        description="Re-encode CompressedImage payloads instead of storing them byte for byte.",
    )
    layout: Literal["shards", "files"] = Field(
        default="shards",
        description="shards: tar shards per bag and topic with byte ranges in the index; files: one per frame.",
    )
    shard_mb: float = Field(default=512, gt=0, description="Start a new shard past this size (MB).")
    workers: int = Field(
        default=0, ge=0, description="Encoder threads per bag; 0 = all cores, shared by the bags at once."
    )
    bag_workers: int = Field(
        default=0,
        ge=0,
        description="Bags extracted at once, one process each; 0 = half the cores, for bags >= 2 GB only.",
    )
    max_in_flight: int = Field(
        default=0, ge=0, description="Frames being encoded at once (bounds memory); 0 = 4 x workers."
    )
    allow_partial: bool = Field(
        default=False,
        description="Publish even when bags cannot be read, or only in part (damaged, cut short): the "
        "version is made current with the all_bags_extracted check failed and naming each such bag. "
        "Default: the step fails, naming them, and nothing is published.",
    )

    @property
    def resizing(self) -> bool:
        return bool(self.max_width or self.max_height)

    @property
    def passes_through(self) -> bool:
        """CompressedImage payloads are stored as they are (no decode, no re-encode)."""
        return not (self.resizing or self.reencode_compressed)
