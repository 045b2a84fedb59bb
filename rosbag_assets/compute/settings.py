"""Which target runs each asset's step, from a deployment file and the environment; no code edits.

The deployment file (``ROSBAG_ASSETS_COMPUTE_FILE``, YAML; worked example: ``deploy/compute.yaml``)::

    default: local                 # target of assets not listed under `assets`
    targets:                       # each target's settings (the fields of LocalCompute, BatchCompute, ...)
      batch: {job_queue: cpu-spot, job_definition: rosbag-assets}
    assets:                        # per asset: its target, optional Dagster pool, and overrides of the
      object_labels:               # target's settings for this asset only
        target: batch
        job_queue: gpu

The environment overrides the file:

- ``ROSBAG_ASSETS_COMPUTE_DEFAULT=batch`` — the default target;
- ``ROSBAG_ASSETS_COMPUTE_PER_ASSET="extracted_frames=batch,object_labels=sagemaker"`` — routes; or a YAML
  mapping of the same shape as the file's ``assets`` section;
- ``ROSBAG_ASSETS_<TARGET>_<SETTING>`` — any setting of a target, e.g. ``ROSBAG_ASSETS_BATCH_JOB_QUEUE``,
  ``ROSBAG_ASSETS_SAGEMAKER_ROLE_ARN``, ``ROSBAG_ASSETS_K8S_IMAGE`` (non-text values are YAML: ``8``,
  ``true``, ``{a: b}``);
- ``ROSBAG_ASSETS_COMPUTE=subprocess|in_process`` — the local mode (kept from before).

Everything is validated when the code location loads, with errors that name the file, the key and the
setting (and a close match for a typo).
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rosbag_assets.compute import TARGETS, ComputeSettingsError, ComputeTargets
from rosbag_assets.compute.target import ComputeTarget, unknown_fields

FILE_ENV = "ROSBAG_ASSETS_COMPUTE_FILE"
DEFAULT_ENV = "ROSBAG_ASSETS_COMPUTE_DEFAULT"
ROUTES_ENV = "ROSBAG_ASSETS_COMPUTE_PER_ASSET"
LOCAL_MODE_ENV = "ROSBAG_ASSETS_COMPUTE"
ASSET_KEYS = ("target", "pool")  # keys of an `assets` entry that are not target settings
TOP_KEYS = ("default", "targets", "assets")


@dataclass
class ComputeConfig:
    """The merged configuration: default target, each target's settings, each asset's entry."""

    default: str = "local"
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # where settings came from, for error messages

    def target_of(self, asset: str) -> str:
        return str(self.assets.get(asset, {}).get("target") or self.default)


def _err(where: str, message: str) -> ComputeSettingsError:
    return ComputeSettingsError(f"{where}: {message}")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _err(where, f"expected a mapping, got {type(value).__name__} {value!r}")
    return {str(k): v for k, v in value.items()}


def _check_target(name: str, where: str) -> None:
    if name not in TARGETS:
        raise _err(where, f"unknown target {name!r}; one of {', '.join(TARGETS)}")


def _merge_assets(config: ComputeConfig, assets: Mapping[str, Any], where: str) -> None:
    for asset, entry in assets.items():
        if isinstance(entry, str):
            entry = {"target": entry}
        entry = _mapping(entry, f"{where}.{asset}")
        if "target" in entry:
            _check_target(str(entry["target"]), f"{where}.{asset}.target")
        config.assets.setdefault(asset, {}).update(entry)


def read_file(path: str | Path, config: ComputeConfig | None = None) -> ComputeConfig:
    """Merge the deployment file at `path` into `config` (a new one when None)."""
    config = config or ComputeConfig()
    where = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise _err(where, f"compute file not found (set by {FILE_ENV})") from exc
    except yaml.YAMLError as exc:
        raise _err(where, f"not valid YAML: {exc}") from exc
    doc = _mapping(doc, where)
    extra = [k for k in doc if k not in TOP_KEYS]
    if extra:
        raise _err(where, f"unknown top-level keys {extra}; expected {', '.join(TOP_KEYS)}")
    if "default" in doc:
        _check_target(str(doc["default"]), f"{where}: default")
        config.default = str(doc["default"])
    for name, settings in _mapping(doc.get("targets"), f"{where}: targets").items():
        _check_target(name, f"{where}: targets.{name}")
        config.targets.setdefault(name, {}).update(_mapping(settings, f"{where}: targets.{name}"))
    _merge_assets(config, _mapping(doc.get("assets"), f"{where}: assets"), f"{where}: assets")
    config.sources.append(where)
    return config


def _is_text(annotation: Any) -> bool:
    """Whether a setting is text (its environment value is taken as is, not parsed as YAML)."""
    if annotation is str:
        return True
    args = typing.get_args(annotation)
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and str in args and all(a in (str, type(None)) for a in args)


def env_var(target: str, setting: str) -> str:
    return f"ROSBAG_ASSETS_{target.upper()}_{setting.upper()}"


def read_environment(environ: Mapping[str, str], config: ComputeConfig | None = None) -> ComputeConfig:
    """Merge the environment's compute settings into `config` (they override the file's)."""
    config = config or ComputeConfig()
    if environ.get(DEFAULT_ENV):
        _check_target(environ[DEFAULT_ENV], DEFAULT_ENV)
        config.default = environ[DEFAULT_ENV]
    for name, cls in TARGETS.items():
        for setting, info in cls.model_fields.items():
            var = env_var(name, setting)
            if setting == "per_asset" or var not in environ:
                continue
            raw = environ[var]
            try:
                value = raw if _is_text(info.annotation) else yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise _err(var, f"not a valid value: {exc}") from exc
            config.targets.setdefault(name, {})[setting] = value
    if environ.get(LOCAL_MODE_ENV):
        config.targets.setdefault("local", {})["mode"] = environ[LOCAL_MODE_ENV]
    routes = environ.get(ROUTES_ENV, "").strip()
    if routes:
        try:
            parsed = yaml.safe_load(routes)
        except yaml.YAMLError:
            parsed = None
        if isinstance(parsed, Mapping):
            _merge_assets(config, parsed, ROUTES_ENV)
        else:
            pairs = [item.split("=", 1) for item in routes.split(",") if item.strip()]
            bad = [p[0] for p in pairs if len(p) != 2]
            if bad:
                raise _err(ROUTES_ENV, f"expected asset=target pairs separated by commas, got {bad}")
            _merge_assets(config, {a.strip(): t.strip() for a, t in pairs}, ROUTES_ENV)
    config.sources.append("environment")
    return config


def load_compute_config(environ: Mapping[str, str] | None = None) -> ComputeConfig:
    """The deployment file named by ``ROSBAG_ASSETS_COMPUTE_FILE`` (if any), overridden by the environment."""
    environ = os.environ if environ is None else environ
    config = ComputeConfig()
    if environ.get(FILE_ENV):
        read_file(environ[FILE_ENV], config)
    return read_environment(environ, config)


def _build_target(name: str, config: ComputeConfig) -> ComputeTarget:
    cls = TARGETS[name]
    where = f"target {name} (from {', '.join(config.sources)})"
    settings = dict(config.targets.get(name, {}))
    bad = unknown_fields(cls, settings)
    if bad:
        raise _err(where, f"unknown settings {', '.join(bad)}")
    per_asset: dict[str, dict[str, Any]] = {}
    for asset, entry in config.assets.items():
        if config.target_of(asset) != name:
            continue
        overrides = {k: v for k, v in entry.items() if k not in ASSET_KEYS}
        bad = unknown_fields(cls, overrides)
        if bad:
            raise _err(
                f"asset {asset} (from {', '.join(config.sources)})",
                f"unknown {name} settings {', '.join(bad)}",
            )
        if overrides:
            per_asset[asset] = overrides
    missing = [f for f, info in cls.model_fields.items() if info.is_required() and f not in settings]
    if missing:
        hint = ", ".join(env_var(name, f) for f in missing)
        raise _err(
            where,
            f"missing settings {missing}: set them under targets.{name} in the compute file or as {hint}",
        )
    try:
        target = cls(**settings, per_asset=per_asset)
    except Exception as exc:
        raise _err(where, str(exc)) from exc
    for asset in per_asset:
        target.for_asset(asset)  # validates the asset's overrides now, not at run time
    return target


def compute_targets(config: ComputeConfig, assets: Sequence[str] | None = None) -> ComputeTargets:
    """The `ComputeTargets` resource for `config`; `assets` (the known asset names) catches typos."""
    if assets is not None:
        unknown = [a for a in config.assets if a not in assets]
        if unknown:
            raise _err(", ".join(config.sources), f"unknown assets {unknown}; known: {list(assets)}")
    used = {config.default, *(config.target_of(a) for a in config.assets)} | set(config.targets) | {"local"}
    built = {name: _build_target(name, config) for name in TARGETS if name in used}
    return ComputeTargets(
        default=config.default,
        assets={a: config.target_of(a) for a in config.assets if config.target_of(a) != config.default},
        **built,
    )


def compute_from_env(
    environ: Mapping[str, str] | None = None, assets: Sequence[str] | None = None
) -> ComputeTargets:
    """The compute resource configured by the deployment file and the environment (local by default)."""
    return compute_targets(load_compute_config(environ), assets)


def pool_for(asset: str, environ: Mapping[str, str] | None = None, default: str | None = None) -> str | None:
    """The Dagster concurrency pool of `asset`: its ``pool`` entry, else its remote target's name, else
    `default`. Pool limits live in the instance (``dagster.yaml`` or ``dagster instance concurrency set``)."""
    config = load_compute_config(environ)
    entry = config.assets.get(asset, {})
    if entry.get("pool"):
        return str(entry["pool"])
    target = config.target_of(asset)
    return target if target != "local" else default
