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

    name: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Dataset name; published under datasets/<name>/training_dataset.",
    )
    frames_from: Literal["anonymized_frames", "extracted_frames"] = Field(
        default="anonymized_frames",
        description="Which published frames the images come from: anonymized (faces and plates blurred; the "
        "default, so datasets can leave the company) or the raw extracted frames.",
    )
    drives: list[str] | None = Field(
        default=None, description="Drives to build from; default: every drive with published object labels."
    )
    topics: list[str] | None = Field(default=None, description="Camera topics; default: every colour topic.")
    classes: list[str] | None = Field(
        default=None,
        description="Kept class names after class_map, in dataset id order; default: every class seen, by name.",
    )
    class_map: dict[str, str] = Field(
        default_factory=dict,
        description='Detector name -> dataset name, e.g. {"bus": "vehicle", "car": "vehicle"}.',
    )
    min_confidence: float = Field(
        0.25, ge=0.0, le=1.0, description="Model labels below this are dropped; reviewed labels never are."
    )
    min_image_side: int = Field(
        10,
        ge=1,
        description="Frames whose shorter side is below this (px) are left out: trainers reject them "
        "(Ultralytics drops images under 10 px as corrupt).",
    )
    keep_empty: bool = Field(
        default=False,
        description="Keep frames without boxes as background images (only right when every frame was labelled).",
    )
    split_by: Literal["drive", "time_block"] = Field(
        default="time_block", description="Split whole drives, or blocks of block_s seconds within drives."
    )
    block_s: float = Field(30.0, gt=0, description="Length of a time block (split_by: time_block).")
    guard_s: float = Field(
        2.0,
        ge=0,
        description="Frames of different splits in one drive are at least this far apart (seconds).",
    )
    split_method: Literal["balanced", "stable"] = Field(
        default="balanced",
        description="balanced: fractions met closely; stable: a group keeps its split as drives are added.",
    )
    fractions: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1},
        description="Target fraction of frames per split (train/val/test, summing to 1).",
    )
    seed: int = Field(default=0, description="Seed of the split assignment (deterministic).")
    dedupe_threshold: float | None = Field(
        0.8,
        ge=0,
        description="Mean grey-level change on a 64x36 thumbnail below which a frame duplicates the last kept "
        "one of its topic (a stationary car at 10 Hz); null: keep every frame.",
    )
    formats: list[str] = Field(
        default_factory=lambda: ["yolo", "coco"],
        description="Exports: yolo, coco, sagemaker_gt (Ground Truth input manifest), label_studio, cvat.",
    )
    use_reviewed: bool = Field(
        default=True, description="Reviewed labels replace model labels on every frame that has any."
    )
    source_ref_prefix: str | None = Field(
        default=None,
        description="Where images/ will live (s3://bucket/prefix) for Ground Truth and Label Studio; "
        "default: the published dataset's own images/ folder.",
    )
    gt_label_attribute: str = Field(
        default="prelabels", description="SageMaker Ground Truth label attribute of the pre-annotations."
    )
    preview_tiles: int = Field(12, ge=0, description="Frames per split in the preview contact sheets.")

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
        unknown = sorted(set(value) - set(FORMATS))
        if unknown:
            raise ValueError(f"unknown dataset formats {unknown}; known: {list(FORMATS)}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _guard_fits_block(self) -> TrainingDatasetOptions:
        if self.split_by == "time_block" and self.guard_s >= self.block_s:
            raise ValueError(f"guard_s ({self.guard_s}) must be shorter than block_s ({self.block_s})")
        return self
