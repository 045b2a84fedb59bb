"""The base of every compute target: run the entry point somewhere, with per-asset settings.

A target only runs a command somewhere. Its fields are its settings; ``per_asset`` overrides any of them
for one asset (e.g. a GPU queue or instance type for ``object_labels``). How a step's work splits is
declared by the step (`rosbag_assets.steps.fanout`), never by the target.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Self

import dagster as dg
from pydantic import Field

RunOutput = dg.MaterializeResult | Sequence[dg.MaterializeResult | dg.AssetCheckResult]
ENTRY_POINT = ["python", "-m", "rosbag_assets.steps.entrypoint"]


class ComputeSettingsError(ValueError):
    """A compute setting is unknown, of the wrong type or missing; the message says where."""


def unknown_fields(cls: type[dg.ConfigurableResource], keys: Mapping[str, Any] | Sequence[str]) -> list[str]:
    """`keys` that are not settings of `cls`, each with a close match when there is one."""
    fields = [f for f in cls.model_fields if f != "per_asset"]
    out = []
    for key in keys:
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1)
            out.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return out


class ComputeTarget(dg.ConfigurableResource):
    """Runs the entry point for an asset's step; subclasses implement `run_step`."""

    per_asset: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Settings that differ for one asset, e.g. {"object_labels": {"instance_type": "ml.g5.xlarge"}}',
    )

    def for_asset(self, asset: str) -> Self:
        """This target with `asset`'s overrides applied (validated like the target's own settings)."""
        overrides = self.per_asset.get(asset)
        if not overrides:
            return self
        bad = unknown_fields(type(self), overrides)
        if bad:
            raise ComputeSettingsError(
                f"{type(self).__name__}.per_asset[{asset!r}]: unknown settings {', '.join(bad)}"
            )
        values = {k: getattr(self, k) for k in type(self).model_fields if k != "per_asset"}
        try:
            return type(self)(**{**values, **overrides})
        except Exception as exc:  # pydantic's message names the field and the expected type
            raise ComputeSettingsError(f"{type(self).__name__}.per_asset[{asset!r}]: {exc}") from exc

    def run(self, context: dg.AssetExecutionContext, params: dict[str, Any]) -> RunOutput:
        """Run the step `params` describe for the asset being materialized, with its settings."""
        asset = context.asset_key.path[-1]
        return self.for_asset(asset).run_step(context, asset, params)

    def run_step(self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any]) -> RunOutput:
        raise NotImplementedError
