"""`Storage` on an S3 prefix (AWS S3, MinIO, moto, a VPC endpoint): the same primitives as a local folder.

Kept apart from `io.storage` so that local runs never import boto3 (a second of start-up per step process).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from rosbag_assets.io.storage import FileInfo, join_key

_UNSAFE_SEGMENT = re.compile(r"(^|/)(\.\.?)?(/|$)")


class S3Storage:
    """Storage rooted at s3://bucket/prefix; `endpoint_url` points at MinIO, moto or a VPC endpoint."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, client: Any = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        self._own_client = client is None
        self.client = client if client is not None else _s3_client(endpoint_url)
        self._lister: Any = None if self._own_client else client
        self.refused: list[tuple[str, str]] = []  # (key, why) of objects the last listing skipped

    @property
    def lister(self) -> Any:
        """The client for listings: one that keeps `LastModified` as text (never used here), because
        parsing 1,000 timestamps per page was half of boto3's time in a 10,000-drive discovery scan."""
        if self._lister is None:
            self._lister = _s3_client(self.endpoint_url, raw_timestamps=True)
        return self._lister

    def __getstate__(self) -> dict[str, Any]:
        """Pickles (e.g. to a per-bag worker process) without clients; the copy makes its own."""
        if not self._own_client:
            raise TypeError("an S3Storage built around a given client cannot be pickled")
        return {k: v for k, v in self.__dict__.items() if k not in ("client", "_lister")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.client, self._lister = _s3_client(self.endpoint_url), None

    def _key(self, key: str) -> str:
        if ".." in key.split("/"):
            raise ValueError(f"key {key!r} escapes the storage root {self.root_uri}")
        return join_key(self.prefix, key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def local_path(self, key: str) -> Path | None:
        return None

    def list_files(self, prefix: str = "") -> Iterator[FileInfo]:
        """Every object under `prefix` (folder markers left out); keys that are no safe relative path (``..``
        or empty segments) are skipped and recorded in `refused`."""
        self.refused = []
        full = self._key(prefix)
        full = f"{full}/" if full else ""
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.lister.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                key = obj["Key"][strip:]
                if key.endswith("/") or not key:  # a console "folder" marker, not a file
                    continue
                if _UNSAFE_SEGMENT.search(key):
                    self.refused.append((key, "the key has '..', '.' or empty path segments"))
                    continue
                yield FileInfo(key, int(obj["Size"]), obj.get("ETag", "").strip('"'))

    def list_dirs(self, prefix: str = "") -> list[str]:
        full = self._key(prefix)
        full = f"{full}/" if full else ""
        paginator = self.lister.get_paginator("list_objects_v2")
        names: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(full) :].rstrip("/")
                if name and not name.startswith("."):
                    names.append(name)
        return sorted(names)

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def read_range(self, key: str, offset: int, size: int) -> bytes:
        obj = self.client.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={offset}-{offset + size - 1}"
        )
        data = obj["Body"].read()
        if len(data) != size:
            raise ValueError(f"{self.uri(key)}: wanted {size} bytes at offset {offset}, object ends early")
        return data

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Stream into a local temp file; it is uploaded (multipart when large) only if the block succeeds."""
        with tempfile.NamedTemporaryFile(prefix="rosbag-assets-", suffix=".part") as fh:
            yield fh  # type: ignore[misc]
            fh.flush()
            self.upload_file(Path(fh.name), key)

    def upload_file(self, local_path: Path, key: str) -> None:
        self.client.upload_file(str(local_path), self.bucket, self._key(key))

    def download_file(self, key: str, local_path: Path) -> None:
        """Resumable: a dropped connection costs the bytes in flight (`s3_reads.download_object`)."""
        from rosbag_assets.io.s3_reads import download_object

        download_object(self.client, self.bucket, self._key(key), local_path)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, key: str) -> None:
        """Remove one object; a missing one is not an error (S3 DELETE is idempotent)."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        full = self._key(prefix)
        if not full:
            raise ValueError("refusing to delete the storage root")
        batch: list[dict[str, str]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{full}/"):
            for obj in page.get("Contents", []):
                batch.append({"Key": obj["Key"]})
                if len(batch) == 1000:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
                    batch = []
        if batch:
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        if self.exists(prefix):
            self.client.delete_object(Bucket=self.bucket, Key=full)


def _s3_client(endpoint_url: str | None, *, raw_timestamps: bool = False) -> Any:
    """A client whose requests botocore retries on 5xx, throttling and connection errors (`retry_config`)."""
    import boto3

    from rosbag_assets.io.s3_reads import retry_config

    session = boto3.session.Session()
    if raw_timestamps:
        factory = session._session.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=lambda value: value)
    return session.client(
        "s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3"), config=retry_config()
    )
