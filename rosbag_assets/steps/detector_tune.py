"""Hyperparameter search for `detector_model`: Ultralytics' own evolutionary tuner, resumable, with progress."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rosbag_assets.steps import report

if TYPE_CHECKING:
    from rosbag_assets.steps.detector_model import DetectorModelOptions

Progress = Callable[[dict[str, Any]], None]


class TuningError(RuntimeError):
    """A tuning iteration recorded no result, or the search wrote no best hyperparameters."""


# Search space for `tune` as (min, max[, mutation gain]): Ultralytics' default space without what never fits
# dash-cam frames (vertical flips, channel swaps, perspective warps; copy-paste is for segmentation).
TUNE_SPACE: dict[str, tuple[float, ...]] = {
    "lr0": (1e-5, 1e-2),
    "lrf": (0.01, 1.0),
    "momentum": (0.7, 0.98, 0.3),
    "weight_decay": (0.0, 0.001),
    "warmup_epochs": (0.0, 5.0),
    "warmup_momentum": (0.0, 0.95),
    "box": (1.0, 20.0),
    "cls": (0.1, 4.0),
    "dfl": (0.4, 12.0),
    "hsv_h": (0.0, 0.1),
    "hsv_s": (0.0, 0.9),
    "hsv_v": (0.0, 0.9),
    "degrees": (0.0, 10.0),
    "translate": (0.0, 0.5),
    "scale": (0.0, 0.95),
    "shear": (0.0, 5.0),
    "fliplr": (0.0, 1.0),
    "mosaic": (0.0, 1.0),
    "mixup": (0.0, 0.5),
    "close_mosaic": (0.0, 10.0),
}


def tuned_earlier(tune_dir: Path) -> dict[str, Any] | None:
    """Hyperparameters an interrupted attempt had tuned (the resumed run already trains with them)."""
    import yaml

    best = tune_dir / "search" / "best_hyperparameters.yaml"
    return yaml.safe_load(best.read_text()) if best.is_file() else None


def tune_hyperparameters(
    base: str,
    args: dict[str, Any],
    options: DetectorModelOptions,
    tune_root: Path,
    progress: Progress,
    log: report.StepLog,
) -> dict[str, Any]:
    """Ultralytics' own evolutionary search (``model.tune``) over TUNE_SPACE; resumable.

    Ultralytics resumes a search from its ``tune_results.ndjson``, so running it one iteration at a time
    both survives interruptions and lets each finished trial be reported as a ``tune_iteration`` event.
    Returns the best hyperparameters found (``best_hyperparameters.yaml``), to train the final model with.
    """
    import yaml
    from ultralytics import YOLO

    search = tune_root / "search"  # Ultralytics puts each trial's run beside it, in tune_root/multitrain*
    trial = {**args, "epochs": options.tune_epochs or min(options.epochs, 10)}
    log.info(f"tuning {options.tune_iterations} iterations x {trial['epochs']} epochs in {search}")
    for iteration in range(_tune_iterations_done(search) + 1, options.tune_iterations + 1):
        YOLO(base, task="detect").tune(
            **trial,
            space=TUNE_SPACE,
            iterations=iteration,
            project=str(tune_root),
            name=search.name,
            resume=True,  # same directory: continue after the last recorded iteration
        )
        if _tune_iterations_done(search) < iteration:
            raise TuningError(f"tuning iteration {iteration} in {search} recorded no result")
        last = json.loads((search / "tune_results.ndjson").read_text().splitlines()[-1])
        progress({"event": "tune_iteration", "iteration": iteration, "iterations": options.tune_iterations,
                  "fitness": last["fitness"], "hyperparameters": last["hyperparameters"]})  # fmt: skip
    best = search / "best_hyperparameters.yaml"
    if not best.is_file():
        raise TuningError(f"hyperparameter tuning in {search} produced no {best.name}")
    return yaml.safe_load(best.read_text())


def _tune_iterations_done(search: Path) -> int:
    results = search / "tune_results.ndjson"
    return len(results.read_text().splitlines()) if results.is_file() else 0
