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

    # None: every drive / colour image topic of the frames given
    drives: list[str] | None = None
    topics: list[str] | None = None
    # kept class names AFTER class_map, in dataset id order; None: every class seen, sorted by name
    classes: list[str] | None = None
    # detector name -> dataset name, e.g. {"bus": "vehicle", "car": "vehicle"}
    class_map: dict[str, str] = Field(default_factory=dict)
    # model rows below are dropped; reviewed rows never are
    min_confidence: float = Field(0.25, ge=0.0, le=1.0)
    # frames without kept boxes as background images: only right when every frame was labelled
    keep_empty: bool = False
    split_by: Literal["drive", "time_block"] = "time_block"
    block_s: float = Field(30.0, gt=0)
    # frames of different splits in one drive are at least this far apart (time_block only)
    guard_s: float = Field(2.0, ge=0)
    # balanced: fractions met closely; stable: a group keeps its split as more drives are added
    split_method: Literal["balanced", "stable"] = "balanced"
    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    seed: int = 0
    # mean grey-level change on a 64x36 thumbnail below which a frame is a duplicate (see dedupe.py); None: off
    dedupe_threshold: float | None = Field(0.8, ge=0)
    formats: list[Format] = Field(default_factory=lambda: ["yolo", "coco"])
    # reviewed labels replace model labels on every frame that has any
    use_reviewed: bool = True
    # where images/ will live (s3://bucket/prefix), for Ground Truth and Label Studio; None: local paths
    source_ref_prefix: str | None = None
    # SageMaker Ground Truth label attribute of the pre-annotations
    gt_label_attribute: str = "prelabels"
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
