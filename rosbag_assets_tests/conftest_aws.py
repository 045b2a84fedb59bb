"""Reusable AWS emulation for tests: a moto server on a free local port (S3, Logs, Batch, SageMaker, ...).

Import the fixtures into a test module (``from conftest_aws import moto_server  # noqa: F401``). The server
process is shared by the session; every test gets a reset backend, fake credentials and
``AWS_ENDPOINT_URL`` in the environment (so subprocesses started by the test reach moto too).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass(frozen=True)
class MotoEndpoint:
    """A running moto server: its URL, region and client factory."""

    url: str
    region: str = REGION

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.region, endpoint_url=self.url)

    def configure(self, config: dict[str, Any]) -> None:
        """Moto's runtime configuration, e.g. ``{"batch": {"use_docker": False}}``."""
        requests.post(f"{self.url}/moto-api/config", json=config, timeout=10).raise_for_status()

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def _moto_server_process() -> Iterator[MotoEndpoint]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoEndpoint(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def moto_server(_moto_server_process: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> MotoEndpoint:
    """A clean moto backend (Batch without Docker) with fake credentials and endpoint in the environment."""
    endpoint = _moto_server_process
    endpoint.reset()
    endpoint.configure({"batch": {"use_docker": False}})
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": endpoint.region,
        "AWS_REGION": endpoint.region,
        "AWS_ENDPOINT_URL": endpoint.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    return endpoint
