"""What a `training_dataset` build selects, how it splits and deduplicates, and which formats it writes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SPLITS = ("train", "val", "test")
FORMATS = ("yolo", "coco", "sagemaker_gt", "label_studio", "cvat")
Format = Literal["yolo", "coco", "sagemaker_gt", "label_studio", "cvat"]


class TrainingDatasetOptions(BaseModel):
    """Options of one dataset build; unknown keys are rejected so a typo never silently changes a dataset."""

    model_config = ConfigDict(extra="forbid")

    drives: list[str] | None = None  # None: every drive in the frames given
    topics: list[str] | None = None  # None: every colour image topic
    classes: list[str] | None = None  # kept class names AFTER class_map, in dataset id order; None: all seen
    class_map: dict[str, str] = Field(
        default_factory=dict
    )  # detector name -> dataset name, e.g. bus -> vehicle
    min_confidence: float = Field(0.25, ge=0.0, le=1.0)  # model rows below are dropped (reviewed rows never)
    keep_empty: bool = (
        False  # frames without kept boxes as background images (only if every frame was labelled)
    )
    split_by: Literal["drive", "time_block"] = "time_block"
    block_s: float = Field(30.0, gt=0)  # length of a time block when split_by == "time_block"
    guard_s: float = Field(2.0, ge=0)  # frames of different splits in one drive are at least this far apart
    split_method: Literal["balanced", "stable"] = "balanced"  # stable: a group keeps its split as data grows
    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    seed: int = 0
    dedupe_threshold: float | None = Field(
        1.0, ge=0
    )  # mean grey-level change on a 64x36 thumbnail; None: off
    formats: list[Format] = Field(default_factory=lambda: ["yolo", "coco"])
    use_reviewed: bool = True  # reviewed labels replace model labels on every frame that has any
    source_ref_prefix: str | None = (
        None  # where images/ will live (s3://bucket/prefix) for GT and Label Studio
    )
    gt_label_attribute: str = "prelabels"  # SageMaker Ground Truth label attribute of the pre-annotations
    preview_tiles: int = Field(12, ge=0)

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}; use {list(SPLITS)}")
        if any(v < 0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"fractions must be >= 0 and sum to 1, got {value}")
        return {s: float(value.get(s, 0.0)) for s in SPLITS}

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _guard_fits_block(self) -> TrainingDatasetOptions:
        if self.split_by == "time_block" and self.guard_s >= self.block_s:
            raise ValueError(f"guard_s ({self.guard_s}) must be shorter than block_s ({self.block_s})")
        return self
