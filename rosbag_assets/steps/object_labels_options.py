"""`object_labels`' options, also the asset's Launchpad config.

Pydantic and the standard library only: every run process loads the code location, which imports this.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from rosbag_assets.vision.detection import DetectorConfig


class ObjectLabelsOptions(BaseModel):
    """How `object_labels` detects objects (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(
        default=None,
        description="Ultralytics name (yolo11n.pt), local path, s3:// or https:// URL, or 'asset' / "
        "'asset:<dataset>' for the current detector_model (its ONNX export when current) of that dataset; "
        "default: ROSBAG_ASSETS_WEIGHTS or yolo11n.pt.",
    )
    allow_fallback: bool | None = Field(
        default=None,
        description="Use OpenCV's HOG people detector when the weights are unavailable (person class only).",
    )
    confidence: float = Field(default=0.25, ge=0, le=1, description="Minimum confidence of a kept box.")
    iou: float = Field(default=0.7, ge=0, le=1, description="IoU threshold of non-maximum suppression.")
    imgsz: int = Field(default=640, gt=0, description="Inference size (pixels, long side).")
    classes: list[int] | None = Field(default=None, description="Keep only these class ids; default: all.")
    batch_size: int = Field(default=16, gt=0, description="Frames per inference batch.")
    device: str | None = Field(default=None, description="cpu, cuda:0, ...; default: the GPU when present.")
    cpu_runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="On CPU: onnx exports .pt weights once (cached) and runs ONNX Runtime; torch keeps PyTorch.",
    )
    cache_dir: str | None = Field(
        default=None, description="Where downloaded weights and exports are cached; default: ~/.cache."
    )
    topics: list[str] | None = Field(
        default=None, description="Label only these topics; default: all colour."
    )
    max_frames: int | None = Field(
        default=None, gt=0, description="Label at most this many frames, spread evenly over the drive."
    )
    workers: int = Field(default=0, ge=0, description="Frame-decoding threads; 0 = all cores.")

    def detector_config(self) -> DetectorConfig:
        """The detector's own settings; unset weights and fallback come from the environment."""
        from rosbag_assets.vision.detection import DetectorConfig  # OpenCV: only where a step runs

        return DetectorConfig(
            weights=self.weights or os.environ.get("ROSBAG_ASSETS_WEIGHTS", "yolo11n.pt"),
            allow_fallback=(
                self.allow_fallback
                if self.allow_fallback is not None
                else os.environ.get("ROSBAG_ASSETS_ALLOW_FALLBACK", "0") == "1"
            ),
            confidence=self.confidence,
            iou=self.iou,
            imgsz=self.imgsz,
            classes=self.classes,
            batch_size=self.batch_size,
            device=self.device,
            cpu_runtime=self.cpu_runtime,
            cache_dir=self.cache_dir or os.environ.get("ROSBAG_ASSETS_WEIGHTS_CACHE") or None,
        )
