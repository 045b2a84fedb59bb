"""`LocalCompute`: run the entry point on this machine, as a Pipes subprocess or in-process.

Local does not fan out: a step that declares a split (`rosbag_assets.steps.fanout`) gets its unsplit
parameters and does every part itself (``extracted_frames`` spreads big bags over processes on its own).
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from rosbag_assets.compute.target import ComputeTarget, RunOutput
from rosbag_assets.defs.resources import ContextLog, result_to_dagster
from rosbag_assets.steps.entrypoint import run_step

JOB_COMMAND = [sys.executable, "-m", "rosbag_assets.steps.entrypoint"]


class LocalCompute(ComputeTarget):
    """Runs steps on this machine: as a Pipes subprocess (the container code path) or in-process."""

    mode: Literal["subprocess", "in_process"] = Field(
        default="subprocess",
        description="subprocess: the same Pipes entry point containers run; in_process: no process start-up.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for subprocess jobs.")

    def run_step(self, context: dg.AssetExecutionContext, asset: str, params: dict[str, Any]) -> RunOutput:
        params = {**params, "target": f"local-{self.mode}"}  # reported as the step's `target` metadata
        if self.mode == "in_process":
            return result_to_dagster(run_step(params, log=ContextLog(context)))
        client = dg.PipesSubprocessClient(env=dict(self.env) or None)
        return client.run(context=context, command=JOB_COMMAND, extras=params).get_results()
