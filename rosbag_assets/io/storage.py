"""One storage interface over a local folder or an S3 prefix.

Keys are '/'-separated paths relative to the storage root. The local folder and S3 share every code
path above this module; only these few primitives differ.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol


class OutsideRootError(PermissionError):
    """A key that resolves (through a symbolic link) outside the storage root; it is never read."""


@dataclass(frozen=True)
class FileInfo:
    """A stored object: key relative to the storage root, size and a change token (etag or mtime)."""

    key: str
    size: int
    token: str


class Storage(Protocol):
    """The primitives every storage backend provides."""

    root_uri: str

    def uri(self, key: str) -> str: ...
    def list_files(self, prefix: str = "") -> Iterator[FileInfo]: ...
    def list_dirs(self, prefix: str = "") -> list[str]: ...
    def read_bytes(self, key: str) -> bytes: ...
    def read_range(self, key: str, offset: int, size: int) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]: ...
    def upload_file(self, local_path: Path, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def local_path(self, key: str) -> Path | None: ...
    def download_file(self, key: str, local_path: Path) -> None: ...


def join_key(*parts: str) -> str:
    """Join key parts with '/', ignoring empty parts and stray slashes."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


_SECRET_PARAM = re.compile(r"(sig|signature|credential|token|secret|password|passwd|pwd|key|auth)", re.I)


_RAW_USERINFO = re.compile(r"[^@/?#]*:[^@]*@")


def redact(uri: str) -> str:
    """`uri` without credentials, for logs, metadata and manifests: ``https://user:pass@host/x`` becomes
    ``https://***@host/x`` and secret-looking query values (signatures, tokens, keys) become ``***``."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at != -1:
            end = min(end, at)
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    elif userinfo := _RAW_USERINFO.match(rest):  # a password with an unescaped '/', '?' or '#' in it
        return redact(f"{scheme}://***@{rest[userinfo.end() :]}")
    path, qsep, query = tail.partition("?")
    if qsep:
        query, fsep, fragment = query.partition("#")
        pairs = [pair.partition("=") for pair in query.split("&")]
        query = "&".join(
            f"{k}{eq}{'***' if eq and _SECRET_PARAM.search(urllib.parse.unquote(k)) else v}"
            for k, eq, v in pairs
        )
        tail = f"{path}?{query}{fsep}{fragment}"
    return f"{scheme}://{netloc}{tail}"


_URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]}]")


def redact_text(text: str) -> str:
    """`text` (a log line, an error) with every URI in it passed through `redact`."""
    return _URI_IN_TEXT.sub(lambda m: redact(m.group(0)), text)


NAME_MAX_BYTES = 120  # well under the 255-byte limit of local file systems, leaving room for temp prefixes


def safe_name(name: str, limit: int = NAME_MAX_BYTES) -> str:
    """One path component that fits a local file system: `name` itself when short enough, else its start,
    a hash of the whole name (so distinct long names stay distinct) and its extension."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    stem, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and stem and 0 < len(ext.encode()) <= 16 else ""
    room = limit - len(digest) - 1 - len(suffix.encode())
    head = raw[:room].decode("utf-8", "ignore")
    return f"{head}-{digest}{suffix}"


def safe_relpath(key: str) -> str:
    """A '/'-separated key as a relative local path whose every component fits a local file system."""
    return "/".join(safe_name(part) for part in key.split("/") if part)


class LocalStorage:
    """Storage rooted at a local folder. Writes are atomic (temp file + rename).

    Nothing outside the root is read: listings skip symbolic links that lead outside it (each one is
    recorded in `refused` with the reason, for the caller to warn about) and do not follow links to
    folders; reading a bag (`local_path`, `read_bytes`, `download_file`) resolves links and refuses
    the same way.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)
        self.refused: list[tuple[str, str]] = []  # (key, why) of entries the last listing skipped

    def _contains(self, real: str) -> bool:
        return real == self.root_uri or real.startswith(self.root_uri.rstrip("/") + "/")

    def _inside(self, key: str) -> Path:
        """The path of `key`, refusing one that is (or passes through) a link leading outside the root."""
        path = self._path(key)
        real = os.path.realpath(path)
        if not self._contains(real):
            raise OutsideRootError(f"{path}: a symbolic link to {real}, outside {self.root}; not read")
        return path

    def _path(self, key: str) -> Path:
        # Pure string normalisation (no per-call filesystem round trips: this runs once per frame).
        path = os.path.normpath(os.path.join(self.root_uri, key)) if key else self.root_uri
        if path != self.root_uri and not path.startswith(self.root_uri.rstrip("/") + "/"):
            raise ValueError(f"key {key!r} escapes the storage root {self.root}")
        return Path(path)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def local_path(self, key: str) -> Path | None:
        return self._inside(key)

    def list_files(self, prefix: str = "") -> Iterator[FileInfo]:
        """Every file under `prefix`, depth first in name order; links leading outside the root and links to
        folders are skipped and recorded in `refused`."""
        self.refused = []
        base = self._path(prefix)
        if not self._contains(os.path.realpath(base)):
            self.refused.append((prefix, f"a symbolic link to {os.path.realpath(base)}, outside {self.root}"))
            return
        if not base.is_dir():
            return
        strip = len(self.root_uri.rstrip("/")) + 1
        stack = [str(base)]
        while stack:
            try:
                with os.scandir(stack.pop()) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            subdirs = []
            for entry in entries:
                key = entry.path[strip:]
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not self._contains(real):
                        self.refused.append((key, f"a symbolic link to {real}, outside {self.root}"))
                        continue
                    if os.path.isdir(real):
                        self.refused.append((key, "a symbolic link to a folder (not followed)"))
                        continue
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield FileInfo(key, st.st_size, f"{st.st_mtime_ns}")
            stack.extend(reversed(subdirs))

    def list_dirs(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        with os.scandir(base) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))

    def read_bytes(self, key: str) -> bytes:
        return self._inside(key).read_bytes()

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        with open(self._path(key), "rb") as fh:
            fh.seek(offset)
            data = fh.read(size)
        if len(data) != size:
            raise ValueError(f"{self.uri(key)}: wanted {size} bytes at offset {offset}, file ends early")
        return data

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.open_write(key) as fh:
            fh.write(data)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """A file to stream into; it appears under `key` only when the block exits without error."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def upload_file(self, local_path: Path, key: str) -> None:
        path = self._path(key)
        if Path(local_path).resolve() == path:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)

    def download_file(self, key: str, local_path: Path) -> None:
        shutil.copyfile(self._inside(key), local_path)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        """Remove one object; a missing one is not an error."""
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path == self.root:
            raise ValueError("refusing to delete the storage root")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into (bucket, prefix)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI has no bucket: {uri!r}")
    return bucket, prefix.strip("/")


def storage_from_uri(uri: str, *, endpoint_url: str | None = None, client: Any = None) -> Storage:
    """A local folder path or ``s3://bucket/prefix`` -> Storage."""
    if uri.startswith("s3://"):  # boto3 is imported only where S3 is used
        from rosbag_assets.io.s3_storage import S3Storage

        bucket, prefix = parse_s3_uri(uri)
        return S3Storage(bucket, prefix, endpoint_url=endpoint_url, client=client)
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(f"unsupported storage URI {uri!r}: use a local path or s3://bucket/prefix")
    return LocalStorage(uri.removeprefix("file://"))


@contextmanager
def local_files(storage: Storage, keys: list[str], workdir: Path | None = None) -> Iterator[list[Path]]:
    """Yield local paths for `keys`: the files themselves when local, else streamed downloads to a temp dir.

    Bags must be random-access files for the readers, so remote bags are downloaded (multipart, streamed to
    disk, never held in memory) into a temporary folder that is removed afterwards.
    """
    direct = [storage.local_path(k) for k in keys]
    if all(p is not None for p in direct):
        yield [p for p in direct if p is not None]
        return
    tmp = Path(tempfile.mkdtemp(prefix="rosbag-assets-", dir=workdir))
    try:
        paths = []
        common = os.path.commonpath(keys) if len(keys) > 1 else os.path.dirname(keys[0])
        for key in keys:
            dest = tmp / safe_relpath(os.path.relpath(key, common) if common else key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            storage.download_file(key, dest)
            paths.append(dest)
        yield paths
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
