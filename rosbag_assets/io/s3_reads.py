"""Downloading bags from S3 so that a dropped connection costs the bytes in flight, not the whole bag.

botocore retries whole requests (5xx, throttling, connection errors before a response) with its retry modes
(`retry_config`). Once a GET's body is streaming it cannot help: a connection that drops mid-body surfaces as
an error, and boto3's ``download_file`` re-requests that part from its first byte. `download_object` streams
the body to disk in bounded chunks and, when a GET fails mid-body (or a request still fails after botocore's
retries), resumes with a ranged GET from the byte already written. Every GET is pinned to the ETag seen first
(``If-Match``), so a rewritten object is never stitched onto the old one. The file appears under its name only
once its size, and for single-part uploads its MD5 (= ETag), match.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, FlexibleChecksumError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


class BagDownloadError(RuntimeError):
    """An S3 object that could not be downloaded whole; names the object, the GETs tried and why."""

    def __init__(self, uri: str, attempts: int, reason: str) -> None:
        super().__init__(f"{uri}: download failed after {attempts} GET attempt(s): {reason}")
        self.uri, self.attempts, self.reason = uri, attempts, reason


class _ShortBody(Exception):
    """A GET body that ended, without an error, before the object did."""


@dataclass
class DownloadReport:
    """What one download took."""

    uri: str
    bytes: int
    etag: str
    gets: int  # GET requests this function issued (botocore's own retries of one request not counted)
    resumed_at: list[int] = field(default_factory=list)  # offsets ranged GETs resumed from
    errors: list[str] = field(default_factory=list)  # transient errors recovered from
    verified: str = "size"  # "md5" (single-part object) or "size"


def retry_config(
    mode: str = "standard", max_attempts: int = 8, connect_timeout: float = 10, read_timeout: float = 60
) -> Config:
    """botocore request-level retries: 5xx, throttling and connection errors are retried with backoff
    (``adaptive`` also rate-limits the client after throttling)."""
    return Config(
        retries={"mode": mode, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def s3_client(endpoint_url: str | None = None, **retries: Any) -> Any:
    """An S3 client with `retry_config` (keyword arguments are passed on to it)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3"),
        config=retry_config(**retries),
    )


def download_object(
    client: Any,
    bucket: str,
    key: str,
    dest: str | Path,
    *,
    chunk_bytes: int = 8 << 20,
    max_attempts: int = 6,
    backoff_s: float = 0.5,
    max_backoff_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadReport:
    """Download ``s3://bucket/key`` to `dest`, resuming after failures from the byte already written.

    `max_attempts` bounds failed GETs in a row that brought no new bytes; a GET that made progress before
    failing starts the count again. Memory stays at about `chunk_bytes`. Raises BagDownloadError.
    """
    dest = Path(dest)
    uri = f"s3://{bucket}/{key}"
    report = DownloadReport(uri, 0, "", 0)
    head = _head(client, bucket, key, report, max_attempts, backoff_s, max_backoff_s, sleep)
    size, etag = int(head["ContentLength"]), head["ETag"]
    report.etag = etag.strip('"')
    check_md5 = (
        "-" not in etag
        and not head.get("SSECustomerAlgorithm")
        and "kms" not in str(head.get("ServerSideEncryption", ""))
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.part")
    md5 = hashlib.md5(usedforsecurity=False)
    written, fruitless = 0, 0
    try:
        with part.open("wb") as fh:
            while written < size:
                report.gets += 1
                before = written
                request = {"Bucket": bucket, "Key": key, "IfMatch": etag}
                if written:
                    request["Range"] = f"bytes={written}-"
                    report.resumed_at.append(written)
                try:
                    body = client.get_object(**request)["Body"]
                    try:
                        for chunk in body.iter_chunks(chunk_bytes):
                            if written + len(chunk) > size:
                                raise BagDownloadError(
                                    uri, report.gets, f"more than the {size} bytes HEAD gave"
                                )
                            fh.write(chunk)
                            md5.update(chunk)
                            written += len(chunk)
                    finally:
                        body.close()
                    if written < size:
                        raise _ShortBody(f"body ended at byte {written} of {size}")
                except BagDownloadError:
                    raise
                except Exception as exc:
                    if isinstance(exc, FlexibleChecksumError):  # what was written is wrong: start over
                        fh.seek(0)
                        fh.truncate()
                        written, md5 = 0, hashlib.md5(usedforsecurity=False)
                    reason = _why(exc)
                    if not _transient(exc):
                        if _code(exc) in ("PreconditionFailed", "412"):
                            reason = f"the object changed while it was being downloaded ({reason})"
                        raise BagDownloadError(uri, report.gets, reason) from exc
                    report.errors.append(f"GET {report.gets} at byte {before}: {reason}")
                    fruitless = 0 if written > before else fruitless + 1
                    if fruitless >= max_attempts:
                        raise BagDownloadError(
                            uri, report.gets, f"no progress; last error: {reason}"
                        ) from exc
                    sleep(min(max_backoff_s, backoff_s * 2 ** max(fruitless - 1, 0)))
        report.bytes = part.stat().st_size
        if report.bytes != size:
            raise BagDownloadError(uri, report.gets, f"wrote {report.bytes} bytes, the object holds {size}")
        if check_md5:
            if md5.hexdigest() != report.etag:
                raise BagDownloadError(
                    uri,
                    report.gets,
                    f"MD5 {md5.hexdigest()} of the bytes received is not the ETag {report.etag}",
                )
            report.verified = "md5"
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return report


def _head(
    client: Any,
    bucket: str,
    key: str,
    report: DownloadReport,
    max_attempts: int,
    backoff_s: float,
    max_backoff_s: float,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """HEAD, with the same patience for transient errors as the GETs."""
    for attempt in range(1, max_attempts + 1):
        try:
            return client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if not _transient(exc) or attempt == max_attempts:
                raise BagDownloadError(report.uri, 0, f"HEAD failed: {_why(exc)}") from exc
            report.errors.append(f"HEAD {attempt}: {_why(exc)}")
            sleep(min(max_backoff_s, backoff_s * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _transient(exc: BaseException) -> bool:
    """Worth another GET: server errors, throttling, and connections that failed or dropped mid-body."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return status >= 500 or status == 429 or _code(exc) in TRANSIENT_CODES
    return isinstance(
        exc,
        (
            _ShortBody,
            FlexibleChecksumError,
            HTTPClientError,  # connection closed or reset, read timeout, body streaming errors
            BotoConnectionError,  # endpoint unreachable, connect timeout
            IncompleteReadError,  # body shorter than its Content-Length
            Urllib3Error,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ),
    )


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip() or type(exc).__name__}"
