"""What every drive asset shares: its retry policy, its group, how its checks and descriptions are declared."""

import os
import re
import warnings
from pathlib import Path
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
    extra_params: dict[str, Any] | None = None,
):
    """The whole body of a thin asset: its step, named after it, on the compute target configured for it.

    `extra_params` are step parameters that come from Dagster rather than from the config (the catalog's
    list of drive partitions)."""
    step = context.assets_def.key.to_user_string()
    drive = context.partition_key if context.has_partition_key else None
    options = config.model_dump(exclude_none=True) if config is not None else None
    params = storage.step_params(step, drive, context.run.run_id, options)
    params.update(extra_params or {})
    return compute.for_asset(step).run(context, params)


README = Path(__file__).resolve().parents[2] / "README.md"
DOCS_URL_ENV = "ROSBAG_ASSETS_DOCS_URL"  # e.g. the README's address in the repository's web view


def _anchor(section: str) -> str:
    """The GitHub/GitLab heading anchor of a README section."""
    return re.sub(r"[^\w\- ]", "", section.lower()).replace(" ", "-")


def _heading_line(section: str) -> int | None:
    try:
        lines = README.read_text().splitlines()
    except OSError:  # an installed package without its README
        return None
    return next((i + 1 for i, line in enumerate(lines) if line.lstrip("#").strip() == section), None)


def described(text: str, section: str) -> dict[str, Any]:
    """``description`` and ``metadata`` of an asset whose docs are the README section `section`.

    The description names the section and links to it when ``ROSBAG_ASSETS_DOCS_URL`` says where the README
    is served; the README's heading line is also a code reference, which the UI lists under the asset's
    definition and opens in the local editor.
    """
    base = os.environ.get(DOCS_URL_ENV, "").strip()
    where = f"[README: {section}]({base}#{_anchor(section)})" if base else f"README.md, section “{section}”"
    metadata: dict[str, Any] = {}
    line = _heading_line(section)
    if line:
        with warnings.catch_warnings():  # code references are "beta" in Dagster 1.13
            warnings.simplefilter("ignore", dg.BetaWarning)
            reference = dg.LocalFileCodeReference(
                file_path=str(README), line_number=line, label=f"README: {section}"
            )
            metadata["dagster/code_references"] = dg.CodeReferencesMetadataValue(code_references=[reference])
    return {"description": f"{text}\n\nDocs: {where}.", "metadata": metadata}


CONFIG_SECTION = "Asset configuration (Launchpad / run config)"


def launchpad_config(options: type[BaseModel]) -> type[dg.Config]:
    """The Launchpad config of a step: exactly the step's own options model, so there is no second schema."""
    name = options.__name__.removesuffix("Options") + "Config"
    doc = f"Launchpad config of the step whose options are `{options.__name__}`: exactly that model."
    return type(name, (dg.Config, options), {"__doc__": doc, "__module__": options.__module__})


def step_asset(
    name: str,
    about: str,
    *,
    config: type[dg.Config] | None = None,
    kinds: set[str],
    deps: tuple[Any, ...] = (),
    checks: tuple[dg.AssetCheckSpec, ...] = (),
    section: str = CONFIG_SECTION,
    per_drive: bool = True,
    **asset_args: Any,
) -> dg.AssetsDefinition:
    """A thin asset: its body runs the step of the same name on the compute target configured for it.

    `about` is the description (the README `section` is linked from it); per-drive assets are partitioned by
    drive, in the drives group, retried once; `asset_args` pass anything else to ``dg.asset``.
    """
    from rosbag_assets.compute import ComputeTargets
    from rosbag_assets.defs.partitions import drives
    from rosbag_assets.defs.resources import DriveStorage

    if config is None:

        def body(context: dg.AssetExecutionContext, storage: DriveStorage, compute: ComputeTargets):
            return run_step(context, storage, compute)

    else:

        def body(  # type: ignore[misc]  # the annotation is the step's config class: Dagster reads it
            context: dg.AssetExecutionContext, config: config, storage: DriveStorage, compute: ComputeTargets
        ):
            return run_step(context, storage, compute, config)

    if per_drive:
        asset_args = {"partitions_def": drives, "group_name": DRIVES_GROUP, **asset_args}
    described_args = described(about, section)
    return dg.asset(
        name=name,
        kinds=kinds,
        deps=list(deps),
        retry_policy=asset_args.pop("retry_policy", RETRY),
        check_specs=list(checks),
        **described_args,
        **asset_args,
    )(body)
