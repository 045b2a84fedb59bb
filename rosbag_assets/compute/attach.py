"""Attaching a retry to a remote job that an earlier attempt of the same step left running.

A live job is found by its tags (run id, asset, partition); what it was started with is read back from its
environment, where Pipes put the context and message parameters (``DAGSTER_PIPES_CONTEXT`` and
``DAGSTER_PIPES_MESSAGES``). A reader that takes messages from the job's own logs needs nothing more; a
reader that takes them from S3 must read the earlier session's key prefix (`ResumableS3MessageReader`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster._core.pipes.client import PipesMessageReader
from dagster_aws.pipes import PipesS3MessageReader
from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_ENV_VAR,
    DAGSTER_PIPES_MESSAGES_ENV_VAR,
    PipesParams,
    decode_param,
)


def environment(env: Mapping[str, str] | Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    """A job's environment as a dict, from Batch's ``[{"name", "value"}]`` or SageMaker's mapping."""
    if not env:
        return {}
    if isinstance(env, Mapping):
        return {str(k): str(v) for k, v in env.items()}
    return {e["name"]: e["value"] for e in env}


def pipes_extras(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The extras a job was started with, when its Pipes context travelled inline in the environment."""
    raw = env.get(DAGSTER_PIPES_CONTEXT_ENV_VAR)
    if not raw:
        return None
    data = (decode_param(raw) or {}).get("data")
    return dict(data.get("extras") or {}) if isinstance(data, Mapping) else None


def messages_params(env: Mapping[str, str]) -> PipesParams | None:
    raw = env.get(DAGSTER_PIPES_MESSAGES_ENV_VAR)
    return decode_param(raw) if raw else None


def tag_value(value: Any) -> str:
    """A tag value Batch and SageMaker accept (their character set, at most 256 characters)."""
    return re.sub(r"[^\w .:/=+\-@]", "_", str(value))[:256]


def identity_tags(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> dict[str, str]:
    """The tags that say which run, partition and asset a job belongs to (how a retry finds it)."""
    tags = {"dagster/run-id": context.run_id}
    if context.has_partition_key:
        tags["dagster/partition"] = context.partition_key
    if getattr(context, "has_assets_def", False) and context.has_assets_def:
        tags["dagster/asset-key"] = "-".join(
            key.to_user_string().replace("/", "-") for key in context.selected_asset_keys
        )
    return {k: tag_value(v) for k, v in tags.items()}


class ResumableS3MessageReader(PipesS3MessageReader):
    """A `PipesS3MessageReader` that can read the message chunks of a job started by an earlier attempt."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._resume: PipesParams | None = None

    def resume(self, params: PipesParams) -> None:
        """Read the next session's messages from `params` (the earlier session's bucket and key prefix)."""
        self._resume = dict(params)

    @contextmanager
    def get_params(self) -> Iterator[PipesParams]:
        if self._resume is not None:
            params, self._resume = self._resume, None
            yield params
        else:
            with super().get_params() as params:
                yield params


def resume_messages(reader: PipesMessageReader, env: Mapping[str, str]) -> bool:
    """Point a resumable `reader` at the messages an attached job writes; False when it cannot follow them."""
    params = messages_params(env)
    if params is None or not hasattr(reader, "resume"):
        return False
    reader.resume(params)  # type: ignore[attr-defined]
    return True
