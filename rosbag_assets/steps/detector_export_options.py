"""`detector_export`'s options, also the asset's Launchpad config.

Pydantic and the standard library only: every run process loads the code location, which imports this.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rosbag_assets.steps.detector_model_options import NAME_PATTERN

ExportFormat = Literal["onnx", "tflite", "engine"]


class DetectorExportOptions(BaseModel):
    """`detector_export`'s options (also its Launchpad config): formats, size, and parity tolerances."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        "default", pattern=NAME_PATTERN, description="Name of the dataset whose model to export."
    )
    formats: list[str] = Field(
        default_factory=lambda: ["onnx", "tflite", "engine"],
        description="Export formats: onnx, tflite (needs litert-torch), engine (TensorRT, needs CUDA).",
    )
    imgsz: int = Field(640, ge=32, description="Export input size (pixels, square).")
    device: str | None = Field(
        None,
        description="Device of PyTorch reference predictions and TensorRT; default: cuda:0 if available.",
    )
    half: bool = Field(True, description="TensorRT engine in FP16.")
    parity_conf: float = Field(0.25, gt=0, lt=1, description="Reference boxes: PyTorch boxes at this conf+.")
    parity_conf_slack: float = Field(
        0.05, ge=0, lt=1, description="A matching box may score this much below parity_conf."
    )
    parity_iou: float = Field(0.9, gt=0, le=1, description="IoU a matched pair needs (same class).")
    parity_min_recall: float = Field(0.95, gt=0, le=1, description="Matched share needed both ways.")
    parity_max_conf_delta: float = Field(0.05, ge=0, description="Largest confidence gap of a matched pair.")
    parity_max_images: int = Field(50, ge=1, description="Validation images the parity check runs on.")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(get_args(ExportFormat)))
        if unknown:
            raise ValueError(f"unknown export formats {unknown}; known: {list(get_args(ExportFormat))}")
        return value
