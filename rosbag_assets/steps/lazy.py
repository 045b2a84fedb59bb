"""Re-exports of a step package imported on first use.

Every run process loads the code location, which imports each step's options model (its Launchpad config).
Importing ``<package>.options`` runs the package's ``__init__`` first, so a package that re-exported its
step eagerly made every run pay for pandas, pyarrow, OpenCV and DuckDB (BENCHMARKS.md "Orchestration").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package`: `exports` maps a name to the submodule (relative) defining it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
