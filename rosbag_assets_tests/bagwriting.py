"""Helpers for writing small but real ROS bags in tests (ROS1 ``.bag``, ROS2 MCAP or sqlite3).

Build messages with the typestore that matches the bag format (:func:`typestore_for`): ROS1 bags use the
Noetic definitions (``std_msgs/Header`` carries ``seq``, md5sums match real ROS1 tools), ROS2 bags use Humble.
:func:`make_image` / :func:`make_compressed_image` do that for you; any other message type can be built from
``typestore_for(fmt).types[msgtype]``. :func:`write_bag` takes the message type from each message object.

Example::

    msgs = [(t, make_image("mcap", "mono8", 2, 2, 2, b"abcd", stamp_ns=t)) for t in (1_000, 2_000)]
    bag = write_bag(tmp_path / "drive", "mcap", {"/camera/image_raw": msgs})
    with AnyReader([bag]) as reader: ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

BagFormat = Literal["ros1", "mcap", "sqlite3"]


@cache
def typestore_for(fmt: BagFormat) -> Typestore:
    """Typestore whose message classes should be used for a bag of format ``fmt``."""
    return get_typestore(Stores.ROS1_NOETIC if fmt == "ros1" else Stores.ROS2_HUMBLE)


def make_header(fmt: BagFormat, stamp_ns: int = 0, frame_id: str = "camera", seq: int = 0) -> Any:
    """A ``std_msgs/Header`` for ``fmt`` (``seq`` is only used for ROS1)."""
    types = typestore_for(fmt).types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    header_cls = types["std_msgs/msg/Header"]
    if fmt == "ros1":
        return header_cls(seq=seq, stamp=stamp, frame_id=frame_id)
    return header_cls(stamp=stamp, frame_id=frame_id)


def _u8(data: bytes | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.view(np.uint8)
    return np.frombuffer(bytes(data), dtype=np.uint8)


def make_image(
    fmt: BagFormat,
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: bytes | np.ndarray,
    *,
    is_bigendian: int = 0,
    stamp_ns: int = 0,
    frame_id: str = "camera",
    seq: int = 0,
) -> Any:
    """A ``sensor_msgs/Image`` with the given raw payload (bytes exactly as the driver packed them)."""
    cls = typestore_for(fmt).types["sensor_msgs/msg/Image"]
    return cls(
        header=make_header(fmt, stamp_ns, frame_id, seq),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=is_bigendian,
        step=step,
        data=_u8(data).reshape(-1),
    )


def make_compressed_image(
    fmt: BagFormat,
    format: str,
    data: bytes | np.ndarray,
    *,
    stamp_ns: int = 0,
    frame_id: str = "camera",
    seq: int = 0,
) -> Any:
    """A ``sensor_msgs/CompressedImage`` (``format`` e.g. ``"jpeg"``, ``"rgb8; jpeg compressed bgr8"``)."""
    cls = typestore_for(fmt).types["sensor_msgs/msg/CompressedImage"]
    return cls(header=make_header(fmt, stamp_ns, frame_id, seq), format=format, data=_u8(data).reshape(-1))


def write_bag(
    path: Path,
    fmt: BagFormat,
    topic_msgs: Mapping[str, Sequence[tuple[int, Any]]],
    typestore: Typestore | None = None,
    msgtypes: Mapping[str, str] | None = None,
) -> Path:
    """Write ``{topic: [(timestamp_ns, message), ...]}`` into a new bag at ``path``; return the bag path.

    ``fmt="ros1"`` writes a single ``.bag`` file at ``path``; ``"mcap"`` / ``"sqlite3"`` write a rosbag2
    directory at ``path`` (version 9). The message type of each topic comes from its messages'
    ``__msgtype__`` (or from ``msgtypes``, needed for a topic without messages); messages are serialized
    with ``typestore`` (default :func:`typestore_for`). Messages
    are written in timestamp order across topics. ``path`` must not exist yet.
    """
    store = typestore or typestore_for(fmt)
    given = dict(msgtypes or {})
    msgtypes = {topic: given.get(topic) or _topic_msgtype(topic, msgs) for topic, msgs in topic_msgs.items()}
    ordered = sorted(
        ((ts, topic, msg) for topic, msgs in topic_msgs.items() for ts, msg in msgs), key=lambda x: x[:2]
    )
    if fmt == "ros1":
        with Ros1Writer(path) as writer:
            conns = {t: writer.add_connection(t, mt, typestore=store) for t, mt in msgtypes.items()}
            for ts, topic, msg in ordered:
                writer.write(conns[topic], ts, store.serialize_ros1(msg, msgtypes[topic]))
        return path
    plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
    with Ros2Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {t: writer.add_connection(t, mt, typestore=store) for t, mt in msgtypes.items()}
        for ts, topic, msg in ordered:
            writer.write(conns[topic], ts, store.serialize_cdr(msg, msgtypes[topic]))
    return path


def _topic_msgtype(topic: str, msgs: Sequence[tuple[int, Any]]) -> str:
    types = {msg.__msgtype__ for _, msg in msgs}
    if len(types) != 1:
        raise ValueError(f"topic {topic} needs messages of exactly one type, got {sorted(types) or 'none'}")
    return types.pop()


write_image_bag = write_bag  # name used in the original brief
