"""What every drive asset shares: its retry policy, its group and how its checks are declared."""

import dagster as dg

RETRY = dg.RetryPolicy(max_retries=1, delay=5, backoff=dg.Backoff.EXPONENTIAL)
DRIVES_GROUP = "drives"


def check(name: str, asset: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    """A check the step evaluates itself and reports with its materialization."""
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)
