"""CloudWatch Logs tailing for Batch jobs: forward a job's output into the Dagster run while it runs.

A Batch job (and every array child) writes to its own stream in ``/aws/batch/job``. `CloudWatchTail`
polls any number of streams from a thread and hands each line to a callback, keeping the last lines of
every stream for error messages. `PipesBatchLogsMessageReader` builds on it to read Dagster Pipes
messages from those streams (the job writes them to stdout), so one session can follow an array job.

Throttling: the Logs client retries with botocore's adaptive mode (see `compute.aws`); on top of that the
tail thread waits longer after each failed poll, and the final read after the job ended retries a few
times and then gives up with a warning instead of failing a job that succeeded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from dagster import PipesMessageReader
from dagster._core.pipes.context import PipesMessageHandler
from dagster_pipes import PIPES_PROTOCOL_VERSION_FIELD, PipesDefaultMessageWriter, PipesParams

BATCH_LOG_GROUP = "/aws/batch/job"
LineCallback = Callable[[str | None, str], None]


class CloudWatchTail:
    """Polls CloudWatch log streams from a background thread; calls ``on_line(label, line)`` in order."""

    def __init__(
        self,
        client: Any,
        on_line: LineCallback,
        log_group: str = BATCH_LOG_GROUP,
        poll_interval_s: float = 1.0,
        keep_lines: int = 20,
    ):
        self.client = client
        self.log_group = log_group
        self.poll_interval_s = poll_interval_s
        self._on_line = on_line
        self.keep_lines = keep_lines
        self._streams: dict[str, str | None] = {}  # stream -> label
        self._tokens: dict[str, str] = {}
        self._tails: dict[str, deque[str]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self.max_backoff_s = 30.0

    def add_stream(self, stream: str, label: str | None = None) -> None:
        """Follow `stream` from its first event; `label` tells array children apart."""
        with self._lock:
            if stream not in self._streams:
                self._streams[stream] = label
                self._tails[stream] = deque(maxlen=self.keep_lines)

    @property
    def streams(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self._streams)

    def tail(self, stream: str) -> list[str]:
        """The last ordinary (non-Pipes) lines read from `stream`."""
        with self._lock:
            return list(self._tails.get(stream, ()))

    def poll(self) -> int:
        """Read every new event of every stream once; returns the number of lines handled."""
        handled = 0
        with self._lock:
            for stream, label in list(self._streams.items()):
                handled += self._poll_stream(stream, label)
        return handled

    def _poll_stream(self, stream: str, label: str | None) -> int:
        handled = 0
        while True:
            kwargs: dict[str, Any] = {"logGroupName": self.log_group, "logStreamName": stream}
            token = self._tokens.get(stream)
            if token:
                kwargs["nextToken"] = token
            else:
                kwargs["startFromHead"] = True
            try:
                response = self.client.get_log_events(**kwargs)
            except self.client.exceptions.ResourceNotFoundException:
                return handled  # the stream appears once the container starts
            events = response.get("events") or []
            next_token = response.get("nextForwardToken")
            if next_token:
                self._tokens[stream] = next_token
            for event in events:
                for line in str(event.get("message", "")).splitlines():
                    if line:
                        if parse_pipes_message(line) is None:  # the tail is for people
                            self._tails[stream].append(line)
                        self._on_line(label, line)
                        handled += 1
            if not events or next_token == token:
                return handled

    def poll_safely(self, attempts: int = 1) -> bool:
        """`poll`, retrying up to `attempts` times with a growing wait; errors are recorded, never raised."""
        for attempt in range(attempts):
            try:
                self.poll()
                return True
            except Exception as exc:  # throttling (after botocore's retries), network
                self.errors.append(repr(exc))
                if attempt + 1 < attempts:
                    time.sleep(min(self.max_backoff_s, self.poll_interval_s * 2 ** (attempt + 1)))
        return False

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            failures = 0 if self.poll_safely() else failures + 1
            self._stop.wait(min(self.max_backoff_s, self.poll_interval_s * 2**failures))

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="batch-log-tail", daemon=True)
            self._thread.start()

    def stop(self, final_attempts: int = 4) -> bool:
        """Stop the thread, then read whatever is left; False when that last read kept failing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.poll_safely(final_attempts)


def parse_pipes_message(line: str) -> dict[str, Any] | None:
    """The Pipes message a line carries, or None for ordinary output."""
    if not line.startswith("{") or PIPES_PROTOCOL_VERSION_FIELD not in line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and "method" in message else None


class PipesBatchLogsMessageReader(PipesMessageReader):
    """Reads Pipes messages from the CloudWatch streams of a Batch job or of all its array children.

    The Batch client tells it, per run, where ordinary lines go and how many writers to expect
    (`prepare`), and which streams to follow as the containers start (`follow`). Array children (streams
    with a label) only contribute their log messages and ``closed`` markers: their partial results are not
    the asset's. Streams are read from their start, so a retry that attaches to a running job still gets
    every message the job wrote.
    """

    def __init__(
        self,
        client: Any,
        *,
        log_group: str = BATCH_LOG_GROUP,
        poll_interval_s: float = 1.0,
        keep_lines: int = 20,
    ):
        self.client = client
        self.log: Any = None
        self._writers = 1
        self._handler: PipesMessageHandler | None = None
        self._closed = 0
        self._opened = False
        self.tailer = CloudWatchTail(client, self._on_line, log_group, poll_interval_s, keep_lines)

    def prepare(self, log: Any, writers: int = 1) -> None:
        """Start a new session: ordinary lines go to `log`; `writers` processes will each send ``closed``."""
        self.log, self._writers, self._closed, self._opened = log, writers, 0, False
        self.tailer = CloudWatchTail(
            self.client,
            self._on_line,
            self.tailer.log_group,
            self.tailer.poll_interval_s,
            self.tailer.keep_lines,
        )

    def follow(self, stream: str, label: str | None = None) -> None:
        self.tailer.add_stream(stream, label)

    @property
    def expected_writer_count(self) -> int:
        return self._writers

    @property
    def closed_count(self) -> int:
        return self._closed

    @contextmanager
    def read_messages(self, handler: PipesMessageHandler) -> Iterator[PipesParams]:
        self._handler = handler
        self.tailer.start()
        try:
            yield {PipesDefaultMessageWriter.STDIO_KEY: PipesDefaultMessageWriter.STDOUT}
        finally:
            self.tailer.stop()

    def _on_line(self, label: str | None, line: str) -> None:
        message = parse_pipes_message(line)
        if message is None:
            if self.log is not None:
                self.log.info(f"[batch{' ' + label if label else ''}] {line}")
            return
        if self._handler is None:
            return
        method = message["method"]
        if label is not None:
            if method in ("report_asset_materialization", "report_asset_check", "report_custom_message"):
                return
            if method == "opened" and self._opened:
                return
            if method == "log":
                message = {**message, "params": {**message["params"]}}
                message["params"]["message"] = f"[{label}] {message['params'].get('message', '')}"
        if method == "opened":
            self._opened = True
        elif method == "closed":
            self._closed += 1
        self._handler.handle_message(message)  # type: ignore[arg-type]

    def wait_closed(self, timeout_s: float) -> bool:
        """Poll until every writer sent ``closed`` (CloudWatch lags the job) or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.tailer.poll_safely()
            if self._closed >= self._writers:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self.tailer.poll_interval_s, 1.0))

    def no_messages_debug_text(self) -> str:
        return (
            f"Attempted to read messages from the CloudWatch log group {self.tailer.log_group}, streams "
            f"{sorted(self.tailer.streams)}."
        )


def log_url(region: str, stream: str, log_group: str = BATCH_LOG_GROUP) -> str:
    """CloudWatch console link of one log stream (the console double-encodes, with ``$`` for ``%``)."""

    def enc(s: str) -> str:
        return quote(quote(s, safe=""), safe="").replace("%", "$")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{enc(log_group)}/log-events/{enc(stream)}"
    )
