"""What the Batch and SageMaker Pipes clients share, so a behaviour fixed in one is fixed in both."""

from __future__ import annotations

from typing import Any

from dagster import PipesClient, PipesContextInjector, PipesMessageReader
from dagster._core.definitions.resource_annotation import TreatAsResourceParam

from rosbag_assets.compute.errors import RemoteJobLost


class RemoteJobClient(PipesClient, TreatAsResourceParam):
    """A Pipes client of a remote job: how the context reaches it and its messages come back (both from
    outside, like dagster-aws's clients), whether a retry attaches to the live job of an earlier attempt,
    whether a step that stops waiting stops its job, and how many failed polls in a row are tolerated."""

    def __init__(
        self,
        context_injector: PipesContextInjector,
        message_reader: PipesMessageReader,
        *,
        forward_termination: bool,
        attach: bool,
        max_poll_errors: int,
    ):
        self._context_injector = context_injector
        self._message_reader = message_reader
        self.forward_termination = forward_termination
        self.attach = attach
        self.max_poll_errors = max_poll_errors

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def poll_failed(self, context: Any, job: str, failures: int, error: Exception, interval: float) -> float:
        """After the `failures`-th failed poll in a row of `job`: give up with `RemoteJobLost` past
        ``max_poll_errors``, else the (logged) seconds to back off before the next poll."""
        if failures > self.max_poll_errors:
            raise RemoteJobLost(
                f"{job}: gave up following it after {failures} failed polls: {error}"
            ) from error
        delay = min(60.0, interval * 2**failures)
        context.log.warning(
            f"[pipes] {job}: poll failed ({error}); retry {failures} of {self.max_poll_errors} in {delay:.1f}s"
        )
        return delay
