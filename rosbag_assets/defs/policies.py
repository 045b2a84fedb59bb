"""What every drive asset shares: its retry policy, its group and how its checks are declared."""

from typing import Any

import dagster as dg
from pydantic import BaseModel

RETRY = dg.RetryPolicy(max_retries=1, delay=5, backoff=dg.Backoff.EXPONENTIAL)
DRIVES_GROUP = "drives"


def check(name: str, asset: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    """A check the step evaluates itself and reports with its materialization."""
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


def run_step(
    context: dg.AssetExecutionContext,
    storage: Any,
    compute: Any,
    config: BaseModel | None = None,
):
    """The whole body of a thin asset: its step, named after it, on the compute target configured for it."""
    step = context.assets_def.key.to_user_string()
    drive = context.partition_key if context.has_partition_key else None
    options = config.model_dump(exclude_none=True) if config is not None else None
    params = storage.step_params(step, drive, context.run.run_id, options)
    return compute.for_asset(step).run(context, params)
