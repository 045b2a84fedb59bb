"""`scenes`' options, also the asset's Launchpad config.

Pydantic and the standard library only: every run process loads the code location, which imports this.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScenesOptions(BaseModel):
    """Which scene rules `scenes` runs: the step's options and the asset's Launchpad config."""

    model_config = ConfigDict(extra="forbid")
    rules_file: str | None = Field(
        None,
        description="YAML file of extra scene rules (same shape as steps/scene_rules.yaml); same name wins",
    )
    defaults: bool = Field(True, description="also run the shipped default rules")
