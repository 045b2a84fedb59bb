"""What a `reviewed_labels` import reads (also the asset's Launchpad config) and where review files land."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ASSET = "reviewed_labels"
REVIEWS_PREFIX = "reviews"  # under the output root: where the sensor looks for files to import


class ReviewedLabelsOptions(BaseModel):
    """Which reviewed-labels file to import and how to read it (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(
        description="The reviewed labels: a Ground Truth output manifest or a COCO JSON, as s3://bucket/key or "
        "a local path under the output or landing root; a relative path is a key under the output root."
    )
    format: Literal["auto", "sagemaker_gt", "coco"] = Field(
        default="auto", description="auto: a JSON object with `images` is COCO, JSON lines are Ground Truth."
    )
    label_attribute: str | None = Field(
        default=None,
        description="Ground Truth label attribute holding the reviewed boxes; default: the newest "
        "human-annotated bounding-box attribute of each line.",
    )
    labeling_job_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:labeling-job/[A-Za-z0-9-]{1,63}$",
        description="The Ground Truth labeling job's ARN, recorded with every row (the manifest names only "
        "the job).",
    )
    job: str | None = Field(
        default=None,
        description="Name of the review job; default: Ground Truth's job-name, or the COCO file's name.",
    )
    empty_images_reviewed: bool = Field(
        default=True,
        description="COCO: an image without boxes was looked at and holds nothing (false: nobody looked).",
    )
    replace: bool = Field(
        default=False, description="Drop earlier imports instead of keeping their reviews of other frames."
    )
    preview_frames: int = Field(default=6, ge=0, le=24, description="Frames drawn in the preview picture.")
