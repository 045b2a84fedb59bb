"""`lane_labels`' options, also the asset's Launchpad config.

Pydantic and the standard library only: every run process loads the code location, which imports this.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class LaneLabelsOptions(BaseModel):
    """How `lane_labels` finds lanes (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(
        default="twinlitenet",
        description="Lane backend registered in rosbag_assets.vision.lanes: twinlitenet (learned lanes and "
        "drivable area, shipped) or opencv-hough (classical); see README 'Labels'.",
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword options passed to the backend's constructor."
    )
    topics: list[str] | None = Field(default=None, description="Only these topics; default: all colour.")
    max_frames: int | None = Field(
        default=None, gt=0, description="At most this many frames, spread evenly over the drive."
    )
    batch_size: int = Field(default=16, gt=0, description="Frames decoded ahead per batch.")
    workers: int = Field(default=0, ge=0, description="Frame-decoding threads; 0 = all cores.")
