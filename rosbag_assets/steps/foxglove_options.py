"""`foxglove`'s options, also the asset's Launchpad config.

Pydantic and the standard library only: every run process loads the code location, which imports this.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FoxgloveOptions(BaseModel):
    """What goes into the drive's MCAP (also the Launchpad config of the asset)."""

    model_config = ConfigDict(extra="forbid")
    topics: list[str] | None = Field(None, description="only frames of these camera topics; default: all")
    compression: str | None = Field("zstd", description="MCAP chunk compression: zstd, lz4 or none")
