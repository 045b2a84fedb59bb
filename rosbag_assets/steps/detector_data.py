"""What the detector steps read of a published training_dataset: its YOLO files, from S3 or a SageMaker channel.

A SageMaker Training job gets the dataset version as its ``dataset`` input channel (the launcher pins the
version, see `detector_model.input_channels`), so the step reads the mounted copy; anywhere else the step
downloads the version's ``data.yaml``, ``images/`` and ``labels/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage
from rosbag_assets.steps import sagemaker_container

DATASET_CHANNEL = "dataset"
DATASET_FILES = ("data.yaml", "images/", "labels/")  # what training reads of a published dataset
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def dataset_version(
    output: Storage, dataset: str, version: str | None = None
) -> tuple[publish.Version, dict[str, Any]]:
    """The pinned `version` of the dataset (its manifest must exist), else the current one."""
    from rosbag_assets.steps.training_dataset.run import dataset_prefix

    prefix = dataset_prefix(dataset)
    if version is None:
        return publish.require_current(output, prefix)
    pinned = publish.Version(output, prefix, version)
    if not output.exists(pinned.key(publish.MANIFEST)):
        raise FileNotFoundError(
            f"{pinned.uri()} has no {publish.MANIFEST}: no such committed dataset version"
        )
    manifest = json.loads(output.read_bytes(pinned.key(publish.MANIFEST)))
    if manifest.get("status") == "rejected":
        failed = manifest.get("failed_blocking_checks")
        raise ValueError(f"{pinned.uri()} was rejected by its blocking checks {failed}: not training on it")
    return pinned, manifest


def version_files(version: publish.Version) -> list[tuple[str, str]]:
    """(key, path relative to the version) of every file of a committed version."""
    start = len(version.prefix.rstrip("/")) + 1
    return [(f.key, f.key[start:]) for f in version.storage.list_files(version.prefix)]


def fetch_dataset(
    output: Storage, dataset: str, target: Path, version: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """The dataset version's ``data.yaml`` and manifest: the SageMaker channel's copy when mounted, else
    downloaded under `target`."""
    pinned, manifest = dataset_version(output, dataset, version)
    mounted = sagemaker_container.channel_dir(DATASET_CHANNEL)
    if mounted is not None and (mounted / "data.yaml").is_file():
        return mounted / "data.yaml", manifest
    for key, rel in version_files(pinned):
        if rel == DATASET_FILES[0] or rel.startswith(DATASET_FILES[1:]):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            output.download_file(key, target / rel)
    data_yaml = target / "data.yaml"
    if not data_yaml.is_file():
        raise FileNotFoundError(f"{pinned.uri()} has no data.yaml: was it built with the yolo format?")
    return data_yaml, manifest


def present_splits(data_yaml: Path) -> list[str]:
    """The evaluation splits (val, test) that ``data.yaml`` defines."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    return [s for s in ("val", "test") if data.get(s)]


def class_names(data_yaml: Path) -> dict[int, str]:
    """Class id -> name of a YOLO ``data.yaml`` (``names`` as a list or a mapping)."""
    names = yaml.safe_load(Path(data_yaml).read_text()).get("names") or {}
    return {int(k): str(v) for k, v in (names.items() if isinstance(names, dict) else enumerate(names))}


def dataset_images(data_yaml: Path, split: str = "val", limit: int | None = None) -> list[Path]:
    """The image files of a YOLO dataset split (sorted), e.g. to check parity on validation images."""
    data = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(data.get("path") or Path(data_yaml).parent)
    root = root if root.is_absolute() else (Path(data_yaml).parent / root)
    entries = data.get(split)
    if not entries:
        raise FileNotFoundError(f"{data_yaml} defines no '{split}' split")
    found: list[Path] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        folder = root / entry
        found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return found[:limit] if limit else found
