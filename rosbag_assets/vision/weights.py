"""Obtaining model weights: local paths, s3:// objects, http(s) URLs and Ultralytics model names.

Remote weights are downloaded once into a cache directory (to a temporary name, then renamed, so a
crashed download never leaves a truncated file under the final name). Cached files are assumed
immutable: publish new weights under a new key/URL rather than overwriting old ones.

Offline mode (``offline=True``, or env ``YOLO_OFFLINE`` / ``ROSBAG_ASSETS_OFFLINE`` set to a true value)
disables internet downloads: http(s) URLs and Ultralytics model names. ``s3://`` is still attempted,
as it points at configured infrastructure (AWS, MinIO) rather than the public internet.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rosbag_assets.io.storage import redact, redact_text

OFFLINE_ENV_VARS = ("YOLO_OFFLINE", "ROSBAG_ASSETS_OFFLINE")
CACHE_ENV_VAR = "ROSBAG_ASSETS_WEIGHTS_CACHE"
HTTP_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


class WeightsUnavailableError(RuntimeError):
    """The requested weights could not be found locally nor downloaded."""


def default_cache_dir() -> Path:
    """Weights cache: env ``ROSBAG_ASSETS_WEIGHTS_CACHE`` or ``~/.cache/rosbag_assets/weights``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else Path.home() / ".cache" / "rosbag_assets" / "weights"


def is_offline(offline: bool | None = None) -> bool:
    """Explicit ``offline`` wins; otherwise true when any of OFFLINE_ENV_VARS is a true value."""
    if offline is not None:
        return offline
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in OFFLINE_ENV_VARS)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(
    spec: str, cache_dir: Path, *, s3_client: Any = None, offline: bool | None = None
) -> Path:
    """Return a local file holding the weights named by ``spec``.

    ``spec`` is a local path, ``s3://bucket/key``, ``http(s)://...`` or an Ultralytics model name
    such as ``yolo11n.pt``. Raises WeightsUnavailableError saying what was tried and why it failed.
    """
    spec = spec.strip()
    cache_dir = Path(cache_dir).expanduser()
    if spec.startswith("s3://"):
        return _resolve_s3(spec, cache_dir, s3_client)
    if spec.startswith(("http://", "https://")):
        return _resolve_http(spec, cache_dir, is_offline(offline))
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    if _is_model_name(spec):
        return _resolve_ultralytics_name(spec, cache_dir, is_offline(offline))
    raise WeightsUnavailableError(f"local weights file {path} does not exist")


def _is_model_name(spec: str) -> bool:
    """A bare file name (no directory part) with a suffix, e.g. ``yolo11n.pt``."""
    return "/" not in spec and "\\" not in spec and bool(Path(spec).suffix)


def _atomic_target(target: Path) -> Path:
    """A unique temporary path next to ``target`` (same filesystem, so rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def _resolve_s3(uri: str, cache_dir: Path, s3_client: Any) -> Path:
    """Download ``s3://bucket/key`` once into ``cache_dir/s3/bucket/key``."""
    parsed = urllib.parse.urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise WeightsUnavailableError(f"malformed S3 URI {uri!r}: expected s3://bucket/key")
    target = cache_dir / "s3" / bucket / key
    if target.is_file():
        return target
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    tmp = _atomic_target(target)
    try:
        s3_client.download_file(bucket, key, str(tmp))
        os.replace(tmp, target)
    except Exception as exc:
        raise WeightsUnavailableError(f"cannot download {redact(uri)}: {type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _resolve_http(url: str, cache_dir: Path, offline: bool) -> Path:
    """Download an http(s) URL once into ``cache_dir/http/<hash of url>/<file name>``."""
    name = Path(urllib.parse.urlparse(url).path).name or "weights"
    target = cache_dir / "http" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file():
        return target
    if offline:
        raise WeightsUnavailableError(
            f"cannot download {redact(url)}: not cached in {target.parent} and downloads are disabled (offline)"
        )
    tmp = _atomic_target(target)
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp, tmp.open("wb") as fh:
            shutil.copyfileobj(resp, fh, _CHUNK)
        os.replace(tmp, target)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise WeightsUnavailableError(
            f"cannot download {redact(url)}: {type(exc).__name__}: {redact_text(str(exc))}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _ultralytics_weights_dir() -> Path | None:
    """Ultralytics' own weights directory (``SETTINGS['weights_dir']``), if Ultralytics is importable."""
    try:
        from ultralytics.utils import SETTINGS
    except ImportError:
        return None
    return Path(SETTINGS["weights_dir"])


def _resolve_ultralytics_name(name: str, cache_dir: Path, offline: bool) -> Path:
    """Find ``name`` in the cache, Ultralytics' weights dir or the CWD; else let Ultralytics download it."""
    searched = [cache_dir, _ultralytics_weights_dir(), Path.cwd()]
    for folder in searched:
        if folder is not None and (folder / name).is_file():
            return (folder / name).resolve()
    where = ", ".join(str(f) for f in searched if f is not None)
    if offline:
        raise WeightsUnavailableError(f"{name} is not cached in {where} and downloads are disabled (offline)")
    return _download_ultralytics_asset(name, cache_dir, where)


def _download_ultralytics_asset(name: str, cache_dir: Path, where: str) -> Path:
    """Download an Ultralytics release asset into ``cache_dir`` via a temporary directory."""
    try:
        from ultralytics.utils.downloads import attempt_download_asset
    except ImportError as exc:
        msg = f"{name} is not cached in {where} and ultralytics is not installed"
        raise WeightsUnavailableError(msg) from exc
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        try:
            got = Path(attempt_download_asset(Path(tmp) / name))
        except Exception as exc:
            msg = f"{name} is not cached in {where} and the Ultralytics download failed"
            raise WeightsUnavailableError(f"{msg}: {type(exc).__name__}: {exc}") from exc
        if not got.is_file():
            raise WeightsUnavailableError(
                f"{name} is not cached in {where} and is not an Ultralytics release asset "
                "(export other formats from the .pt with `yolo export`, then pass a path/URL)"
            )
        if Path(tmp).resolve() not in got.resolve().parents:  # found elsewhere (renamed yolov5 'u' model)
            return got.resolve()
        target = cache_dir / got.name
        os.replace(got, target)
    return target
