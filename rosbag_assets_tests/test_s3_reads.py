"""Resumable S3 downloads against moto, through a local proxy that drops GET bodies halfway, answers 503 or
flips a byte, and records every GET's Range header."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig

from rosbag_assets.io.s3_reads import BagDownloadError, download_object, s3_client

BUCKET = "landing"
NO_SLEEP: Callable[[float], None] = lambda _: None  # noqa: E731


class FaultProxy:
    """A reverse proxy to moto. `faults` is consumed one entry per object GET: None (pass through),
    "drop" (send the headers and half the body, then close), "drop0" (headers only, then close),
    "503" (a ServiceUnavailable error) or "flip" (one byte of the body changed)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[str | None] = []
        self.gets: list[dict[str, Any]] = []  # per object GET: range header, fault, body bytes sent
        self.after_fault: Callable[[], None] | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                proxy.forward(self, "HEAD")

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        is_object_get = method == "GET" and "?" not in handler.path
        fault = (self.faults.pop(0) if self.faults else None) if is_object_get else None
        record = {"range": handler.headers.get("Range"), "fault": fault, "sent": 0}
        if is_object_get:
            self.gets.append(record)
        if fault == "503":
            body = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
            handler.send_response(503)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        upstream = requests.request(method, self.upstream + handler.path, headers=headers, timeout=30)
        body = upstream.content
        handler.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in ("transfer-encoding", "connection", "content-encoding", "date", "server"):
                handler.send_header(name, value)
        handler.end_headers()
        if method == "HEAD":
            return
        if fault in ("drop", "drop0"):
            sent = len(body) // 2 if fault == "drop" else 0
            handler.wfile.write(body[:sent])
            handler.wfile.flush()
            record["sent"] = sent
            handler.close_connection = True
            if self.after_fault:
                self.after_fault()
            return
        if fault == "flip" and body:
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        handler.wfile.write(body)
        record["sent"] = len(body)


@pytest.fixture
def proxy(moto_server: Any) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(moto_server.url)
    fault_proxy.thread.start()
    try:
        yield fault_proxy
    finally:
        fault_proxy.server.shutdown()
        fault_proxy.server.server_close()


@pytest.fixture
def payload(moto_server: Any) -> bytes:
    """3 MiB of random bytes stored as s3://landing/drive/front.bag (single part)."""
    data = os.urandom(3 << 20)
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="drive/front.bag", Body=data)
    return data


def client_via(proxy: FaultProxy) -> Any:
    return s3_client(proxy.url, max_attempts=3)


def range_start(header: str | None) -> int | None:
    return int(header.removeprefix("bytes=").split("-")[0]) if header else None


@pytest.mark.parametrize("faults", [["drop", "503"], ["503", "drop"]])
def test_resumes_from_the_byte_already_written(
    proxy: FaultProxy, payload: bytes, tmp_path: Path, faults: list[str]
) -> None:
    proxy.faults = list(faults)
    dest = tmp_path / "front.bag"
    report = download_object(
        client_via(proxy), BUCKET, "drive/front.bag", dest, chunk_bytes=64 << 10, sleep=NO_SLEEP
    )
    assert dest.read_bytes() == payload
    assert report.verified == "md5" and report.bytes == len(payload)
    # our own GETs: the first, then one ranged resume (botocore repeats the 503'd request by itself)
    assert report.gets == 2 and len(report.resumed_at) == 1
    dropped = next(g for g in proxy.gets if g["fault"] == "drop")
    resumed = proxy.gets[proxy.gets.index(dropped) + 1]
    assert range_start(proxy.gets[0]["range"]) is None
    assert range_start(resumed["range"]) == report.resumed_at[0]
    assert 0 < report.resumed_at[0] <= dropped["sent"]  # what the client wrote of what the proxy sent
    assert [g["fault"] for g in proxy.gets] == [*faults, None]
    assert not list(tmp_path.glob(".*.part"))


def test_gives_up_naming_the_object_and_attempts(proxy: FaultProxy, payload: bytes, tmp_path: Path) -> None:
    proxy.faults = ["drop0"] * 20
    dest = tmp_path / "front.bag"
    with pytest.raises(BagDownloadError, match=r"s3://landing/drive/front\.bag.* 4 GET attempt") as err:
        download_object(client_via(proxy), BUCKET, "drive/front.bag", dest, max_attempts=4, sleep=NO_SLEEP)
    assert err.value.attempts == 4 and len(proxy.gets) == 4
    assert not dest.exists() and not list(tmp_path.glob(".*.part"))


def test_a_rewritten_object_is_never_stitched_on(proxy: FaultProxy, payload: bytes, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    proxy.faults = ["drop"]
    proxy.after_fault = lambda: s3.put_object(Bucket=BUCKET, Key="drive/front.bag", Body=os.urandom(3 << 20))
    dest = tmp_path / "front.bag"
    with pytest.raises(BagDownloadError, match="changed while it was being downloaded"):
        download_object(client_via(proxy), BUCKET, "drive/front.bag", dest, sleep=NO_SLEEP)
    assert proxy.gets[1]["range"] and not dest.exists()


@pytest.mark.parametrize(
    ("faults", "caught_by"),
    [
        (["flip"] * 10, "FlexibleChecksumError"),  # whole-object GETs: botocore checks the stored CRC
        (["drop", "flip"], "MD5"),  # a ranged GET carries no checksum: the MD5 of the file against the ETag
    ],
)
def test_corrupted_bytes_are_caught(
    proxy: FaultProxy, payload: bytes, tmp_path: Path, faults: list[str], caught_by: str
) -> None:
    proxy.faults = list(faults)
    dest = tmp_path / "front.bag"
    with pytest.raises(BagDownloadError, match=rf"s3://landing/drive/front\.bag.*{caught_by}"):
        download_object(client_via(proxy), BUCKET, "drive/front.bag", dest, max_attempts=2, sleep=NO_SLEEP)
    assert not dest.exists() and not list(tmp_path.glob(".*.part"))


def test_missing_object_fails_at_once(proxy: FaultProxy, payload: bytes, tmp_path: Path) -> None:
    with pytest.raises(BagDownloadError, match=r"s3://landing/drive/absent\.bag.*HEAD failed.*404"):
        download_object(client_via(proxy), BUCKET, "drive/absent.bag", tmp_path / "x.bag", sleep=NO_SLEEP)
    assert proxy.gets == []


def test_multipart_object_resumes_and_is_checked_by_size(proxy: FaultProxy, tmp_path: Path) -> None:
    data = os.urandom(11 << 20)
    src = tmp_path / "src.bag"
    src.write_bytes(data)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(
        str(src),
        BUCKET,
        "big.bag",
        Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20),
    )
    proxy.faults = ["drop"]
    report = download_object(client_via(proxy), BUCKET, "big.bag", tmp_path / "big.bag", sleep=NO_SLEEP)
    assert "-" in report.etag and report.verified == "size"
    assert hashlib.sha256((tmp_path / "big.bag").read_bytes()).digest() == hashlib.sha256(data).digest()
    assert range_start(proxy.gets[1]["range"]) == report.resumed_at[0] > 0
