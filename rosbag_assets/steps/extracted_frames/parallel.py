"""Several bags at once, one worker process each, for bags large enough to pay for a process."""

from __future__ import annotations

import os

from rosbag_assets.io import publish
from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.storage import Storage
from rosbag_assets.steps import report, runtime
from rosbag_assets.steps.extracted_frames.bag import extract_bag
from rosbag_assets.steps.extracted_frames.index import write_part
from rosbag_assets.steps.extracted_frames.options import ExtractedFramesOptions

# one after the other, two 2.7 GB bags at 1.46x. Automatic parallelism is only used for bags this large.
PARALLEL_MIN_BAG_BYTES = 2_000_000_000


def bag_parallelism(requested: int, bag_bytes: list[int]) -> int:
    """How many bags to extract at once: `requested`, or automatically half the cores when the bags are big
    enough to pay for a worker process each; never more than there are bags."""
    if requested:
        return max(1, min(requested, len(bag_bytes)))
    big = sum(1 for size in bag_bytes if size >= PARALLEL_MIN_BAG_BYTES)
    return max(1, min(max(1, (os.cpu_count() or 1) // 2), big))


class _RecordedLog:
    """Collects a worker process's log lines so the parent can replay them to the real log."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, msg: str) -> None:
        self.lines.append(("info", msg))

    def warning(self, msg: str) -> None:
        self.lines.append(("warning", msg))


def _extract_part(
    drive: str, source: Storage, bag: BagRef, staging: publish.Draft, opts: ExtractedFramesOptions
) -> list[tuple[str, str]]:
    """Worker-process body: extract one bag and store its index part; return its log lines."""
    runtime.tune_allocator()
    log = _RecordedLog()
    write_part(
        staging, bag, extract_bag(drive=drive, source=source, bag=bag, staging=staging, opts=opts, log=log)
    )
    return log.lines


def extract_in_processes(
    drive: str,
    source: Storage,
    bags: list[BagRef],
    staging: publish.Draft,
    opts: ExtractedFramesOptions,
    parallel: int,
    log: report.StepLog,
) -> None:
    """Extract `parallel` bags at a time, one process each (reading and parsing are Python, one core each).

    Encoder threads are split between the processes unless `workers` is set. Processes are spawned, not
    forked, so no lock held by another thread of this process is inherited.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    per_bag = opts.model_copy(update={"workers": opts.workers or max(1, (os.cpu_count() or 1) // parallel)})
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
        futures = {pool.submit(_extract_part, drive, source, bag, staging, per_bag): bag for bag in bags}
        for future in as_completed(futures):
            try:
                lines = future.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise RuntimeError(f"extraction of bag {futures[future].name} failed: {exc}") from exc
            for level, msg in lines:
                getattr(log, level)(msg)
