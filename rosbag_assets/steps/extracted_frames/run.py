"""The `extracted_frames` step: extract the selected bags of a drive, then commit (see the package)."""

from __future__ import annotations

import time
from typing import Any

from rosbag_assets.io import publish
from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.storage import Storage
from rosbag_assets.steps import report, runtime
from rosbag_assets.steps.extracted_frames.bag import extract_bag
from rosbag_assets.steps.extracted_frames.index import (
    bags_from_inventory,
    commit_extracted_frames,
    incomplete_error,
    inventory_problems,
    write_part,
)
from rosbag_assets.steps.extracted_frames.options import ExtractedFramesOptions
from rosbag_assets.steps.extracted_frames.parallel import bag_parallelism, extract_in_processes
from rosbag_assets.steps.step import Step, step_runner


@step_runner(ExtractedFramesOptions)
def run_extracted_frames(
    step: Step[ExtractedFramesOptions],
    source: Storage,
    version: str | None = None,
    bag_names: list[str] | None = None,
    commit: bool = True,
) -> report.StepResult:
    """Extract frames of the drive's readable bags (or only `bag_names`), then commit unless told not to.

    With ``commit=False`` and a shared `version`, several workers (e.g. one Batch array child per bag) can
    each write their bag's part; a final call with ``bag_names=[]`` and ``commit=True`` merges and commits.

    Bags the inventory found unreadable or readable only in part fail the step before anything is
    extracted (IncompleteDriveError naming each one) unless `allow_partial` is set. A failed run started
    here removes its own draft; the version that was current stays current.
    """
    drive, opts, log = step.drive, step.options, step.log
    runtime.tune_allocator()  # also for in-process runs that skip the entry point
    _, inventory = step.current("raw_bags")
    bags = bags_from_inventory(inventory)
    problems = inventory_problems(inventory)
    if problems and commit and not opts.allow_partial:
        raise incomplete_error(drive, problems, "found by raw_bags")
    unreadable = [p for p in problems if p["bag"] not in {b.name for b in bags}]
    staging = publish.begin(step.output, step.key("extracted_frames"), step.run_id, version)
    try:
        return _extract_and_commit(step, source, staging, bags, bag_names, commit, unreadable, inventory)
    except BaseException:
        if version is None and not staging.storage.exists(staging.key(publish.MANIFEST)):
            try:  # our own draft, never committed: free its space (a full disk, an incomplete drive)
                staging.abort()
            except Exception as exc:
                log.warning(f"could not remove the failed draft {staging.uri()}: {exc}")
        raise


def _extract_and_commit(
    step: Step[ExtractedFramesOptions],
    source: Storage,
    staging: publish.Draft,
    bags: list[BagRef],
    bag_names: list[str] | None,
    commit: bool,
    unreadable: list[dict[str, str]],
    inventory: dict[str, Any],
) -> report.StepResult:
    drive, opts, log = step.drive, step.options, step.log
    todo = bags if bag_names is None else [b for b in bags if b.name in bag_names]
    if bag_names is not None and len(todo) != len(bag_names):
        unknown = sorted(set(bag_names) - {b.name for b in bags})
        raise ValueError(f"drive {drive}: bags {unknown} are not readable bags of the inventory")
    sizes = {b["name"]: int(b.get("bytes") or 0) for b in inventory["bags"]}
    parallel = bag_parallelism(opts.bag_workers, [sizes.get(b.name, 0) for b in todo])
    if parallel <= 1:
        for bag in todo:
            write_part(
                staging,
                bag,
                extract_bag(drive=drive, source=source, bag=bag, staging=staging, opts=opts, log=log),
            )
    else:
        extract_in_processes(drive, source, todo, staging, opts, parallel, log)
    if not commit:
        return report.StepResult(
            metadata={"bags_extracted": report.integer(len(todo)), "version": report.text(staging.version)}
        )
    return commit_extracted_frames(
        drive=drive,
        staging=staging,
        bags=bags,
        opts=opts,
        log=log,
        elapsed_s=time.perf_counter() - step.started,
        unreadable=unreadable,
    )
