"""An S3 fault proxy for tests: a reverse proxy on 127.0.0.1 in front of moto that fails chosen requests.

Rules are matched in order against each request (method, and a substring of the path); a rule fires `times`
times. Faults: ``"500"``/``"503"`` (an S3 error response), ``"drop"`` (GET: the headers and half the body,
then the connection closes), ``"reset"`` (the connection closes before any response).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

_ERROR = {"500": ("InternalError", 500), "503": ("ServiceUnavailable", 503)}


@dataclass
class Rule:
    method: str  # GET, HEAD, PUT, POST, DELETE
    fault: str
    times: int = 1
    path_contains: str = ""


class S3FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str, str | None]] = []  # (method, path, fault) of every request
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

            def do_HEAD(self) -> None:
                proxy.forward(self, "HEAD")

            def do_PUT(self) -> None:
                proxy.forward(self, "PUT")

            def do_POST(self) -> None:
                proxy.forward(self, "POST")

            def do_DELETE(self) -> None:
                proxy.forward(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, method: str, fault: str, times: int = 1, path_contains: str = "") -> None:
        with self._lock:
            self.rules.append(Rule(method, fault, times, path_contains))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def faults(self, method: str | None = None) -> list[tuple[str, str, str | None]]:
        return [s for s in self.seen if s[2] and (method is None or s[0] == method)]

    def _pick(self, method: str, path: str) -> str | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.path_contains in path and rule.times > 0:
                    rule.times -= 1
                    return rule.fault
        return None

    def forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        body = _read_body(handler)
        fault = self._pick(method, handler.path)
        self.seen.append((method, handler.path, fault))
        if fault == "reset":
            handler.close_connection = True
            return
        if fault in _ERROR:
            code, status = _ERROR[fault]
            payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            handler.send_response(status)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "transfer-encoding")}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        upstream = requests.request(
            method,
            self.upstream + handler.path,
            headers=headers,
            data=body,
            timeout=60,
            allow_redirects=False,
        )
        data = upstream.content
        handler.send_response(upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in ("transfer-encoding", "connection", "content-encoding", "date", "server"):
                handler.send_header(name, value)
        if "content-length" not in {k.lower() for k in upstream.headers}:
            handler.send_header("Content-Length", str(len(data)) if method != "HEAD" else "0")
        handler.end_headers()
        if method == "HEAD":
            return
        if fault == "drop":
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(data)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else None


@contextmanager
def fault_proxy(upstream: str) -> Iterator[S3FaultProxy]:
    proxy = S3FaultProxy(upstream)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
