"""Opening bags of every supported format with one reader, and naming what went wrong when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from rosbag_assets.io.drives import BagRef
from rosbag_assets.io.storage import Storage, local_files

# ROS1 bags carry their message definitions; ROS2 bags without them fall back to this store.
DEFAULT_TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
EMPTY_START = 2**63 - 1


class BagReadError(RuntimeError):
    """A bag that cannot be read; the message names the bag (and topic, where known) and the reason."""


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


@contextmanager
def open_bag(storage: Storage, bag: BagRef, workdir: Path | None = None) -> Iterator[AnyReader]:
    """Open `bag` (downloading it first when remote) and yield an open AnyReader."""
    keys = [f.key for f in bag.files]
    with local_files(storage, keys, workdir) as paths:
        # a ROS2 bag folder opens by its folder; single files by themselves
        target = (
            [next(p for p in paths if p.name == "metadata.yaml").parent] if bag.has_metadata else paths[:1]
        )
        uri = bag_uri(storage, bag)
        if all(p.stat().st_size == 0 for p in paths if p.name != "metadata.yaml"):
            raise BagReadError(f"{uri}: zero-length file, nothing was recorded")
        reader = AnyReader(target, default_typestore=DEFAULT_TYPESTORE)
        try:
            reader.open()
        except Exception as exc:
            raise BagReadError(f"{uri}: cannot open {bag.format} bag ({describe_error(exc)})") from exc
        try:
            yield reader
        finally:
            reader.close()


def bag_uri(storage: Storage, bag: BagRef) -> str:
    """The address a person would use for this bag."""
    if bag.has_metadata:
        return storage.uri(bag.files[0].key).rsplit("/", 1)[0] + "/"
    return storage.uri(bag.files[0].key)
