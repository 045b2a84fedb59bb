"""`anonymized_frames`' options, also the asset's Launchpad config; the defaults are the anonymizer's own.

Pydantic and the standard library only: every run process loads the code location, which imports this.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rosbag_assets.vision.anonymize_options import VEHICLE_CLASSES, AnonymizeOptions

_DEFAULTS = AnonymizeOptions()


def _f(name: str, description: str, **kw: Any) -> Any:
    """A field whose default is the anonymizer's own (one source of truth for the numbers)."""
    return Field(default=getattr(_DEFAULTS, name), description=description, **kw)


class AnonymizedFramesOptions(BaseModel):
    """How `anonymized_frames` finds and hides faces and plates (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["blur", "pixelate"] = _f("method", "blur (Gaussian) or pixelate the found regions.")
    faces: bool = _f("faces", "Hide faces (CenterFace on the whole frame).")
    plates: bool = _f("plates", "Hide licence plates (PP-OCR text detector on vehicle crops).")
    face_threshold: float = _f("face_threshold", "Minimum CenterFace score of a face.", ge=0, le=1)
    face_max_side: int | None = _f(
        "face_max_side",
        "Longer side fed to CenterFace (larger frames are downscaled); none: full size.",
        gt=0,
    )
    text_threshold: float = _f("text_threshold", "Minimum mean text probability of a text box.", ge=0, le=1)
    text_pixel_threshold: float = _f(
        "text_pixel_threshold", "Binarization threshold of the text probability map.", ge=0, le=1
    )
    text_unclip_ratio: float = _f("text_unclip_ratio", "How far text boxes are grown (DB unclip).", gt=0)
    text_crop_side: int = _f("text_crop_side", "Vehicle crops are scaled to fit this square (px).", ge=32)
    text_max_upscale: float = _f("text_max_upscale", "Vehicle crops are enlarged at most this much.", gt=0)
    text_whole_frame: bool = _f(
        "text_whole_frame", "Also look for plate-like text outside vehicle boxes (slower, more false hits)."
    )
    text_frame_max_side: int = _f("text_frame_max_side", "Longer side of the whole-frame text pass.", gt=0)
    min_vehicle_px: int = _f("min_vehicle_px", "Vehicle boxes smaller than this (px) are skipped.", ge=0)
    vehicle_margin: float = _f("vehicle_margin", "Vehicle boxes are widened by this fraction per side.", ge=0)
    vehicle_classes: list[str] = Field(
        default=sorted(VEHICLE_CLASSES),
        description="Object-label classes whose boxes are searched for plates.",
    )
    face_padding: float = _f("face_padding", "Face regions grow by this fraction per side.", ge=0)
    plate_padding_x: float = _f("plate_padding_x", "Plate regions grow by this fraction of width.", ge=0)
    plate_padding_y: float = _f("plate_padding_y", "Plate regions grow by this fraction of height.", ge=0)
    blur_sigma: float = _f("blur_sigma", "Gaussian sigma as a fraction of a region's shorter side.", ge=0)
    pixel_blocks: int = _f("pixel_blocks", "Pixelation blocks across a region's shorter side.", ge=1)
    carry_frames: int = _f("carry_frames", "Frames a region outlives its last detection (0: off).", ge=0)
    carry_iou: float = _f("carry_iou", "IoU at which a detection refreshes a carried region.", ge=0, le=1)
    carry_growth: float = _f("carry_growth", "A carried region grows this fraction per missed frame.", ge=0)
    threads: int = _f("threads", "ONNX Runtime intra-op threads; 0: its default.", ge=0)
    topics: list[str] | None = Field(
        default=None, description="Anonymize only these topics; default: all colour."
    )
    max_frames: int | None = Field(
        default=None,
        gt=0,
        description="At most this many frames (a trial run): the first ones of each bag and topic in stamp "
        "order, shared evenly, so carrying still sees consecutive frames.",
    )
    jpeg_quality: int = Field(default=95, ge=1, le=100, description="JPEG quality of re-encoded JPEG frames.")
    shard_mb: float = Field(default=512, gt=0, description="Start a new shard past this size (MB).")
    workers: int = Field(default=0, ge=0, description="Frame read/decode threads; 0 = all cores.")
    preview_originals: bool = Field(
        default=False,
        description="Show the original beside each anonymized preview tile. Off by default: the preview is "
        "stored with the asset and shown in the UI, and would reveal the very faces hidden.",
    )

    def anonymize_options(self) -> AnonymizeOptions:
        own = {"topics", "max_frames", "jpeg_quality", "shard_mb", "workers", "preview_originals"}
        return AnonymizeOptions(**self.model_dump(exclude=own | {"vehicle_classes"}))
