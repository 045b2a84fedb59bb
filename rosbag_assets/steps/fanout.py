"""How a step's work splits across workers: declared by the step, run by whichever compute target can.

A step that can split (today: ``extracted_frames``, one part per bag) has a ``fanout`` module beside it with
``plan(params) -> FanOut | None``. A target that runs many workers at once (AWS Batch: an array job, one
child per part) calls `plan_fanout` and runs every part, then the ``finish`` step once all parts succeeded.
A target that does not fan out simply runs the unsplit parameters; the step then does all parts itself.

Parts and finish are ordinary entry-point parameters, so each can also be run by hand with
``python -m rosbag_assets.steps.entrypoint --params part.json``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARTS_KEY = "fanout_parts"
FINISH_KEY = "fanout_finish"

# step (asset) name -> module that declares how it splits
PLANNERS = {"extracted_frames": "rosbag_assets.steps.extracted_frames.fanout"}


@dataclass(frozen=True)
class FanOut:
    """Entry-point parameters of every part (run in any order, possibly at once), then of the merge step."""

    parts: list[dict[str, Any]]
    finish: dict[str, Any] | None = None


def plan_fanout(params: Mapping[str, Any]) -> FanOut | None:
    """How the step named by ``params["step"]`` splits, or None when it does not (or has nothing to split)."""
    module = PLANNERS.get(str(params.get("step")))
    if module is None:
        return None
    return importlib.import_module(module).plan(params)


def array_extras(plan: FanOut) -> dict[str, Any]:
    """The Pipes extras of an array job: the whole plan, so each child picks its part and a retry can
    recover the plan (with its shared version) from the job itself."""
    return {PARTS_KEY: plan.parts, FINISH_KEY: plan.finish}


def plan_from_extras(extras: Mapping[str, Any]) -> FanOut | None:
    """The plan an array job was started with (see `array_extras`), or None for any other job."""
    if PARTS_KEY not in extras:
        return None
    return FanOut(parts=list(extras[PARTS_KEY]), finish=extras.get(FINISH_KEY))


def part_params(extras: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The parameters of array child `index` (``AWS_BATCH_JOB_ARRAY_INDEX``)."""
    parts = extras[PARTS_KEY]
    if not 0 <= index < len(parts):
        raise IndexError(f"array child {index}: the plan has {len(parts)} parts")
    return dict(parts[index])
