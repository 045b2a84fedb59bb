"""Inputs a step declares for targets that stage data before it starts (SageMaker Training input channels).

A step that reads a large published input (today: ``detector_model``, a training_dataset version) has an
``input_channels(params) -> (params, {channel: s3 prefix})`` function: it pins the version in the parameters
and names the S3 prefix SageMaker copies to ``/opt/ml/input/data/<channel>/`` before the step runs. Targets
that stage nothing ignore it; the step then downloads what it needs itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

# step (asset) name -> module with `input_channels`
DECLARED = {"detector_model": "rosbag_assets.steps.detector_model"}


def input_channels(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The parameters (with what the channels hold pinned) and the channels of the step ``params`` name."""
    module = DECLARED.get(str(params.get("step")))
    if module is None:
        return dict(params), {}
    return importlib.import_module(module).input_channels(params)
