"""What the whole-drive job's fork server imports once per run, so that starting a step is a cheap fork.

Dagster's multiprocess executor (``process_drive``) starts every step as a child of a fork server. By default
that server imports only the code location; each child then still imports, before its step can start, the
Dagster CLI package (unpickling the step's command refers to it), the instance's storage classes
(SQLAlchemy, Alembic, the SQLite or PostgreSQL storage), universal-pathlib for the IO manager, and builds the
repository: 8-12 s per step on the loaded 2-core VM (``python -m bench.overhead``), paid again by every step.
Done here, in the server, it is shared by every fork.
"""

from __future__ import annotations

import contextlib
import importlib
import os

import rosbag_assets.defs.definitions as definitions

# Imported by a forked step before it starts (found with PYTHONPROFILEIMPORTTIME=1); a name that a later
# Dagster moves is skipped, and only costs its step the import again.
STEP_MODULES = (
    "dagster._cli",
    "dagster._core.instance.factory",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.workspace.autodiscovery",
    "dagster._core.system_config.composite_descent",
    "dagster._utils.test.definitions",
    "upath",
    "upath.implementations.local",
    "multiprocessing.queues",
    "multiprocessing.synchronize",
    "multiprocessing.popen_forkserver",
)


def instance_modules(home: str | None = None) -> list[str]:
    """The modules holding the storage, compute-log, launcher and coordinator classes that the instance in
    `home` (default ``DAGSTER_HOME``) is configured with; empty when there is none (an ephemeral instance)."""
    home = home or os.environ.get("DAGSTER_HOME")
    if not home:
        return []
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes.config_class import ConfigurableClassData

    try:
        ref = InstanceRef.from_dir(home)
    except Exception:  # no readable instance here: the step opens (and reports) it itself
        return []
    return sorted({v.module_name for v in ref if isinstance(v, ConfigurableClassData)})


def preload() -> None:
    for name in (*STEP_MODULES, *instance_modules()):
        with contextlib.suppress(ImportError):  # a class the instance cannot load fails in the step, named
            importlib.import_module(name)
    definitions.defs.get_repository_def()  # cached on the Definitions object, which every fork shares


preload()
