"""What every step gets, written once: `@step_runner(Options)` turns ``run_<asset>(step, ...)`` into the plain
keyword API the entry point, tests and notebooks call (``run_<asset>(drive=, output=, options=, run_id=, log=)``).

The wrapper validates the options into the step's one options model (so a typo in a Launchpad field or a
params file fails before any work, naming the field), defaults the log, starts the clock, and gives the
step the keys of its own and its upstream assets' published outputs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from pydantic import BaseModel

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps import report

OptionsT = TypeVar("OptionsT", bound=BaseModel)
Extra = ParamSpec("Extra")


class NoOptions(BaseModel):
    """A step without settings still rejects unknown ones."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class Step(Generic[OptionsT]):
    """One run of one step: which drive (empty for steps across drives), where outputs go, its options."""

    output: Storage
    options: OptionsT
    log: report.StepLog
    drive: str = ""
    run_id: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def key(self, asset: str) -> str:
        """Where `asset`'s versions live: under the drive for per-drive assets, at the root otherwise."""
        return join_key(self.drive, asset) if self.drive else asset

    def current(self, asset: str) -> tuple[publish.Version, dict[str, Any]]:
        """The committed version of an upstream asset (and its manifest); a clear error when there is none."""
        return publish.require_current(self.output, self.key(asset))

    def begin(self, asset: str) -> publish.Draft:
        """A draft of this run's new version of `asset`; nothing is visible until it is committed."""
        return publish.begin(self.output, self.key(asset), self.run_id)

    def elapsed(self) -> report.MetadataValue:
        """Seconds since the step started, as metadata."""
        return report.number(time.perf_counter() - self.started, digits=2)


def step_runner(
    options_model: type[OptionsT] | None = None,
) -> Callable[
    [Callable[Concatenate[Step[OptionsT], Extra], report.StepResult]], Callable[..., report.StepResult]
]:
    """Decorate ``run_<asset>(step: Step[Options], **extra)``; the result takes ``drive`` (optional),
    ``output``, ``options`` (a mapping validated by `options_model`), ``run_id``, ``log`` and the extras."""
    model: type[BaseModel] = options_model or NoOptions

    def wrap(
        run: Callable[Concatenate[Step[OptionsT], Extra], report.StepResult],
    ) -> Callable[..., report.StepResult]:
        @functools.wraps(run)
        def plain(
            *,
            output: Storage,
            drive: str = "",
            options: Mapping[str, Any] | None = None,
            run_id: str | None = None,
            log: report.StepLog | None = None,
            **extra: Any,
        ) -> report.StepResult:
            opts = model.model_validate(dict(options or {}))
            current = Step(output, opts, log or report.default_log(), drive, run_id)
            return run(current, **extra)  # type: ignore[arg-type]

        return plain

    return wrap
