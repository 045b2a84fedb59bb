"""Progress of a long step: done / total per key (bag topic), rate and ETA, at a steady cadence.

A step calls `update` per frame or per batch; lines go to the step log (the Dagster run log under Pipes)
at most every `every_s` seconds, never per frame, so a million-frame drive logs a few hundred lines. When
stderr is a terminal, a live bar is drawn as well (tqdm when installed, else one carriage-return line).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO, TypeVar

from rosbag_assets.steps import report

REPORT_EVERY_S = 5.0
T = TypeVar("T")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts work done against known totals and reports it to a `StepLog` every `every_s` seconds.

    `totals` maps a key (e.g. a topic) to the number of items expected for it (e.g. the bag index's
    message count); `update(key, n)` records `n` more done. Unknown keys are counted without a total.
    """

    def __init__(
        self,
        log: report.StepLog,
        label: str,
        totals: Mapping[str, int] | int | None = None,
        *,
        unit: str = "frames",
        every_s: float | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        bar: bool | None = None,
    ) -> None:
        self.log, self.label, self.unit, self.clock = log, label, unit, clock
        self.every_s = REPORT_EVERY_S if every_s is None else every_s
        if totals is None:
            totals = {}
        self.totals: dict[str, int] = {"": int(totals)} if isinstance(totals, int) else dict(totals)
        self.done: dict[str, int] = dict.fromkeys(self.totals, 0)
        self.started = self.last_report = clock()
        self.reports = 0
        stream = stream if stream is not None else sys.stderr
        use_bar = bar if bar is not None else bool(getattr(stream, "isatty", lambda: False)())
        self._bar = _make_bar(stream, label, self.total, unit) if use_bar else None

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def count(self) -> int:
        return sum(self.done.values())

    def update(self, key: str = "", n: int = 1) -> None:
        """Record `n` more items of `key` done; report when `every_s` has passed since the last report."""
        self.done[key] = self.done.get(key, 0) + n
        if self._bar is not None:
            self._bar.update(n)
        now = self.clock()
        if now - self.last_report >= self.every_s:
            self.last_report = now
            self.log.info(self.line(now))
            self.reports += 1

    def rate(self, now: float | None = None) -> float:
        elapsed = (self.clock() if now is None else now) - self.started
        return self.count / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        """``label: 120/400 frames (30%), 24.1 frames/s, ETA 12s; /cam/front 60/200, /cam/side 60/200``."""
        now = self.clock() if now is None else now
        done, total, rate = self.count, self.total, self.rate(now)
        head = f"{self.label}: {done}/{total} {self.unit}" if total else f"{self.label}: {done} {self.unit}"
        if total:
            head += f" ({100 * min(done, total) / total:.0f}%)"
        head += f", {rate:.1f} {self.unit}/s"
        if total and rate > 0 and done < total:
            head += f", ETA {_duration((total - done) / rate)}"
        keyed = [k for k in self.done if k]
        if len(keyed) > 1:
            parts = [
                f"{k} {self.done[k]}/{self.totals[k]}" if k in self.totals else f"{k} {self.done[k]}"
                for k in keyed
            ]
            head += "; " + ", ".join(parts)
        return head

    def iterate(self, items: Iterable[T], key: Callable[[T], str] | None = None) -> Iterator[T]:
        """Yield `items`, counting each one (under ``key(item)``); the bar closes when iteration ends."""
        try:
            for item in items:
                self.update(key(item) if key else "")
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the live bar (the step logs its own summary line)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _LineBar:
    """A one-line carriage-return bar for terminals without tqdm."""

    def __init__(self, stream: TextIO, label: str, total: int, unit: str) -> None:
        self.stream, self.label, self.total, self.unit, self.n = stream, label, total, unit, 0
        self.started = self.drawn = time.monotonic()

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.drawn >= 0.2:
            self.drawn = now
            rate = self.n / max(now - self.started, 1e-9)
            of = f"/{self.total}" if self.total else ""
            self.stream.write(f"\r{self.label}: {self.n}{of} {self.unit} {rate:.1f}/s ")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _make_bar(stream: TextIO, label: str, total: int, unit: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineBar(stream, label, total, unit)
    return tqdm(total=total or None, desc=label, unit=unit.rstrip("s") or "it", file=stream, leave=False)


def topic_totals(frames: Any) -> dict[str, int]:
    """Frames per topic of a frame-index DataFrame, the totals a labelling step reports against."""
    return {str(k): int(v) for k, v in frames.groupby("topic").size().items()} if len(frames) else {}
