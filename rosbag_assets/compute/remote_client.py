"""What the Batch and SageMaker Pipes clients share, so a behaviour fixed in one is fixed in both."""

from __future__ import annotations

from dagster import PipesClient, PipesContextInjector, PipesMessageReader
from dagster._core.definitions.resource_annotation import TreatAsResourceParam


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
