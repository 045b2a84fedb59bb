"""How `catalog` updates (also the asset's Launchpad config): pydantic only, since the code location imports it."""

from pydantic import BaseModel, ConfigDict, Field


class CatalogOptions(BaseModel):
    """How `catalog` updates: the step's options and the asset's Launchpad config."""

    model_config = ConfigDict(extra="forbid")
    rebuild: bool = Field(False, description="reload every drive, even those whose versions did not change")
    export_parquet: bool = Field(True, description="also export each updated drive's rows as hive Parquet")
