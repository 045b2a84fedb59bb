"""Process set-up shared by every job: offline-safe Ultralytics and all cores for the math libraries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _bundled_font() -> Path | None:
    """A TTF that ships with an installed package (matplotlib's DejaVuSans), so nothing is downloaded."""
    try:
        import matplotlib

        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return font if font.exists() else None
    except ImportError:
        return None


def configure_ultralytics(config_dir: Path | None = None) -> Path:
    """Point Ultralytics at a settings folder holding a font, so plotting never tries to download one.

    Respects an existing YOLO_CONFIG_DIR. Must run before `ultralytics` is imported.
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    if "YOLO_CONFIG_DIR" in os.environ:
        return Path(os.environ["YOLO_CONFIG_DIR"])
    base = (
        config_dir
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rosbag_assets" / "yolo"
    )
    target = base / "Ultralytics" / "Arial.ttf"
    if not target.exists():
        font = _bundled_font()
        if font is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(font, target)
    os.environ["YOLO_CONFIG_DIR"] = str(base)
    return base


def configure_threads() -> None:
    """Use every core unless the caller chose (`import ultralytics` would otherwise pin OMP to 1 thread)."""
    cores = str(os.cpu_count() or 1)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, cores)


def configure_runtime() -> None:
    configure_threads()
    configure_ultralytics()
