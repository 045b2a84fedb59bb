"""Drives: validated names, where their bags live, and which files in them are bags."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rosbag_assets.io.storage import FileInfo, LocalStorage, Storage, redact, safe_name, storage_from_uri

DRIVE_NAME_MAX = 128
_DRIVE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class InvalidDriveNameError(ValueError):
    """A drive name that cannot be a partition key (and is never turned into a path)."""


def validate_drive_name(name: str) -> str:
    """Return `name` when it is a safe partition key, else raise InvalidDriveNameError saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidDriveNameError("drive name is empty")
    if len(name) > DRIVE_NAME_MAX:
        raise InvalidDriveNameError(
            f"drive name {name[:40]!r}... is {len(name)} characters; the limit is {DRIVE_NAME_MAX}"
        )
    if not _DRIVE_NAME.match(name):
        bad = sorted({c for c in name if not re.match(r"[A-Za-z0-9._-]", c)})
        raise InvalidDriveNameError(
            f"drive name {name!r} may only contain letters, digits, '.', '_' and '-' (found {''.join(bad)!r})"
        )
    if ".." in name or name in (".",):
        raise InvalidDriveNameError(f"drive name {name!r} must not contain '..' or be '.'")
    return name


def is_valid_drive_name(name: str) -> bool:
    try:
        validate_drive_name(name)
    except InvalidDriveNameError:
        return False
    return True


@dataclass(frozen=True)
class DriveLocation:
    """Where one drive's recordings live: a storage root (local folder or s3://bucket/prefix)."""

    name: str
    uri: str

    def storage(self, *, endpoint_url: str | None = None, client: Any = None) -> Storage:
        return storage_from_uri(self.uri, endpoint_url=endpoint_url, client=client)


def drives_from_seed(
    seed: Mapping[str, Any] | str | Path, skipped: list[tuple[str, str]] | None = None
) -> dict[str, DriveLocation]:
    """Parse the seed format ``{"drives_to_process": {"d1": {"bucket": "b", "prefix": "d1/"}}}``.

    A drive may instead give ``{"path": "/local/folder"}`` or ``{"uri": "s3://b/p"}``. A JSON/YAML file path
    is read first. A bad entry raises ValueError naming it, unless a `skipped` list is given: then the entry
    is left out and ``(name, why)`` appended, so one typo does not stop every other drive. A file that is
    not a seed at all always raises.
    """
    if isinstance(seed, str | Path):
        text = Path(seed).read_text()
        import yaml

        seed = yaml.safe_load(text) if str(seed).endswith((".yaml", ".yml")) else json.loads(text)
    entries = seed.get("drives_to_process") if isinstance(seed, Mapping) else None
    if not isinstance(entries, Mapping):
        raise ValueError(
            'drive seed must look like {"drives_to_process": {"drive1": {"bucket": ..., "prefix": ...}}}'
        )
    drives = {}
    for name, spec in entries.items():
        try:
            drives[name] = _seed_entry(name, spec)
        except ValueError as exc:
            if skipped is None:
                raise
            skipped.append((str(name), str(exc)))
    return drives


def _seed_entry(name: Any, spec: Any) -> DriveLocation:
    validate_drive_name(name)
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"drive {name!r}: expected a mapping with bucket/prefix, path or uri, got {type(spec).__name__}"
        )
    if "uri" in spec:
        uri = str(spec["uri"])
        if "://" in uri and not uri.startswith(("s3://", "file://")):
            raise ValueError(f"drive {name!r}: unsupported uri {redact(uri)!r} (a local path or s3://)")
    elif "path" in spec:
        uri = str(Path(spec["path"]).expanduser())
    elif "bucket" in spec:
        uri = f"s3://{spec['bucket']}/{str(spec.get('prefix', '')).strip('/')}".rstrip("/")
    else:
        raise ValueError(f"drive {name!r}: give 'bucket' (+ 'prefix'), 'path' or 'uri'")
    return DriveLocation(name, uri)


class OutsideLandingRootError(PermissionError):
    """A drive folder that is a symbolic link leading outside the landing root; it is never read."""


def drive_in_landing(landing: Storage, drive: str) -> str:
    """The URI of drive folder `drive` of a landing root, refusing one whose folder resolves outside it."""
    validate_drive_name(drive)
    uri = landing.uri(drive)
    if isinstance(landing, LocalStorage):
        real = os.path.realpath(uri)
        root = landing.root_uri.rstrip("/") + "/"
        if not real.startswith(root):
            raise OutsideLandingRootError(
                f"drive folder {uri} is a symbolic link to {real}, outside the landing root {landing.root_uri}"
            )
    return uri


# --- which files are bags ---------------------------------------------------------------------------

ROS1 = "ros1"
ROS2_SQLITE = "ros2-sqlite3"
ROS2_MCAP = "ros2-mcap"
_STORAGE_SUFFIX = {".db3": ROS2_SQLITE, ".mcap": ROS2_MCAP}
_IGNORED_NAMES = {".DS_Store", "Thumbs.db"}


@dataclass
class BagRef:
    """One bag: a ROS1 file, a bare .db3/.mcap file, or a ROS2 bag folder (metadata.yaml + storage files)."""

    name: str  # path relative to the drive root, e.g. "front.bag" or "run1/" for a folder bag
    format: str
    files: list[FileInfo] = field(default_factory=list)
    has_metadata: bool = False
    root: str = ""  # the prefix of `files` keys that is not part of the drive (e.g. "drive1/" in a listing)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def slug(self) -> str:
        """A filesystem-safe, unique-in-drive name for output folders: the name itself when it is safe, else
        its safe form plus a hash of the name (``a b.bag`` and ``a_b.bag`` must not share a folder)."""
        name = self.name.strip("/")
        plain = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "bag"
        if plain != name:
            plain = f"{plain}-{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
        return safe_name(plain)

    def fingerprint(self) -> str:
        """A change token of the bag's files, keyed by their path inside the drive, so the same bag
        fingerprints the same whether it was listed from the landing root or from the drive itself."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.key):
            key = f.key[len(self.root) :] if self.root and f.key.startswith(self.root) else f.key
            h.update(f"{key}\0{f.size}\0{f.token}\n".encode())
        return h.hexdigest()[:16]


def find_bags(
    files: Iterable[FileInfo], drive_prefix: str = ""
) -> tuple[list[BagRef], list[tuple[str, str]]]:
    """Group a drive's files into bags. Returns (bags, [(file, reason) for files that are not bags])."""
    root = f"{drive_prefix.strip('/')}/" if drive_prefix.strip("/") else ""
    strip = len(root)
    rel_files = [(f.key[strip:], f) for f in files]
    metadata_dirs = {
        str(PurePosixPath(rel).parent) for rel, _ in rel_files if PurePosixPath(rel).name == "metadata.yaml"
    }
    folder_bags: dict[str, BagRef] = {}
    bags: list[BagRef] = []
    skipped: list[tuple[str, str]] = []
    for rel, info in sorted(rel_files):
        path = PurePosixPath(rel)
        if path.name in _IGNORED_NAMES or any(part.startswith(".") for part in path.parts):
            continue
        owner = next((d for d in _ancestors(path) if d in metadata_dirs), None)
        if owner is not None:
            bag = folder_bags.get(owner)
            if bag is None:
                fmt = ROS2_MCAP
                bag = folder_bags[owner] = BagRef(
                    f"{owner}/" if owner != "." else "./", fmt, has_metadata=True, root=root
                )
                bags.append(bag)
            bag.files.append(info)
            if path.suffix in _STORAGE_SUFFIX:
                bag.format = _STORAGE_SUFFIX[path.suffix]
            continue
        if path.suffix == ".bag":
            bags.append(BagRef(rel, ROS1, [info], root=root))
        elif path.suffix in _STORAGE_SUFFIX:
            bags.append(BagRef(rel, _STORAGE_SUFFIX[path.suffix], [info], root=root))
        elif path.name.endswith(".bag.active"):
            skipped.append(
                (rel, "an unfinished ROS1 recording (.bag.active); reindex it with `rosbag reindex`")
            )
        else:
            skipped.append(
                (rel, "not a bag (expected .bag, .db3, .mcap or a ROS2 bag folder with metadata.yaml)")
            )
    return bags, skipped


def _ancestors(path: PurePosixPath) -> list[str]:
    return [str(p) for p in path.parents]


def drive_fingerprint(bags: Iterable[BagRef]) -> str:
    """A change token for the whole drive: changes when any bag is added, removed or rewritten.

    The one definition used by the discovery sensor (run tag ``rosbag_assets/drive_fingerprint``) and by
    `raw_bags` (metadata ``drive_fingerprint`` and data version), so they agree for the same files."""
    h = hashlib.sha256()
    for bag in sorted(bags, key=lambda b: b.name):
        h.update(f"{bag.name}\0{bag.fingerprint()}\n".encode())
    return h.hexdigest()[:16]


def scan_landing_root(storage: Storage) -> tuple[dict[str, str], list[str]]:
    """One recursive listing of a landing root -> ({drive: fingerprint}, rejected folder names).

    Only drives holding at least one bag are returned; a drive's fingerprint changes whenever a bag in it is
    added, removed or rewritten (size or etag/mtime).
    """
    per_drive: dict[str, list[FileInfo]] = {}
    for info in storage.list_files(""):
        top, sep, _ = info.key.partition("/")
        if sep:
            per_drive.setdefault(top, []).append(info)
    fingerprints, rejected = {}, []
    for name, files in sorted(per_drive.items()):
        if name.startswith("."):
            continue
        if not is_valid_drive_name(name):
            rejected.append(name)
            continue
        bags, _ = find_bags(files, name)
        if bags:
            fingerprints[name] = drive_fingerprint(bags)
    return fingerprints, rejected


def scan_drive(location: DriveLocation, **storage_kwargs: Any) -> str | None:
    """The fingerprint of one explicitly configured drive, or None when it holds no bags."""
    bags, _ = find_bags(location.storage(**storage_kwargs).list_files(""))
    return drive_fingerprint(bags) if bags else None
