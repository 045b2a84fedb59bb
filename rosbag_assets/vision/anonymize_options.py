"""How to find and hide faces and plates: the anonymizer's settings and their defaults.

Standard library only: `anonymized_frames`' Launchpad config takes its defaults from here, and every run
process loads the code location, which imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VEHICLE_CLASSES = frozenset({"car", "bus", "truck", "motorcycle"})


@dataclass
class AnonymizeOptions:
    """How to find and hide faces and plates. Fractions are of the region's own width/height."""

    method: Literal["blur", "pixelate"] = "blur"
    faces: bool = True
    plates: bool = True
    face_threshold: float = 0.3  # CenterFace heatmap peak
    face_max_side: int | None = 1280  # longer side fed to CenterFace; larger frames are downscaled
    text_threshold: float = 0.4  # mean text probability inside a box (DB box score)
    text_pixel_threshold: float = 0.3  # binarization of the text probability map
    text_unclip_ratio: float = 1.6
    text_crop_side: int = 256  # vehicle crops are scaled to fit this square canvas...
    text_max_upscale: float = 3.0  # ...but enlarged at most this much
    text_whole_frame: bool = False  # also look for plate-like text outside vehicle boxes
    text_frame_max_side: int = 1280
    min_vehicle_px: int = 16  # smaller vehicle boxes cannot show a readable plate; skipped
    vehicle_margin: float = 0.05  # vehicle boxes are widened by this fraction per side before cropping
    # Regions grow by these fractions of their size per side. CenterFace boxes are tight (brow to chin), so
    # ears and hair need margin; text boxes hold the characters only, and a plate is taller than its
    # characters (US plates about twice as tall), hence the larger vertical plate margin.
    face_padding: float = 0.25
    plate_padding_x: float = 0.15
    plate_padding_y: float = 0.4
    blur_sigma: float = 0.25  # Gaussian sigma as a fraction of the region's shorter side
    pixel_blocks: int = 6  # pixelation blocks across the region's shorter side
    carry_frames: int = 3  # frames a region outlives its last detection (0: off)
    carry_iou: float = 0.2  # a detection at least this IoU with a carried region refreshes it
    carry_growth: float = 0.05  # a carried region grows by this fraction per side per missed frame
    threads: int = 0  # ONNX Runtime intra-op threads (0: its default)

    def __post_init__(self) -> None:
        if self.method not in ("blur", "pixelate"):
            raise ValueError(f"AnonymizeOptions.method must be 'blur' or 'pixelate', got {self.method!r}")
        for name in ("face_threshold", "text_threshold", "text_pixel_threshold", "carry_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AnonymizeOptions.{name} must be in 0..1, got {getattr(self, name)}")
        for name in (
            "face_padding",
            "plate_padding_x",
            "plate_padding_y",
            "blur_sigma",
            "carry_growth",
            "vehicle_margin",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"AnonymizeOptions.{name} must be >= 0, got {getattr(self, name)}")
        if self.carry_frames < 0 or self.pixel_blocks < 1 or self.text_crop_side < 32:
            raise ValueError("AnonymizeOptions: carry_frames >= 0, pixel_blocks >= 1, text_crop_side >= 32")
