"""Zero-copy parsing of sensor_msgs/Image and CompressedImage wire bytes (ROS1 and little-endian CDR)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from rosbag_assets.steps.extracted_frames.options import COMPRESSED, IMAGE


class _Stamp:
    __slots__ = ("nanosec", "sec")

    def __init__(self, sec: int, nanosec: int) -> None:
        self.sec, self.nanosec = sec, nanosec


class _Header:
    __slots__ = ("stamp",)

    def __init__(self, sec: int, nanosec: int) -> None:
        self.stamp = _Stamp(sec, nanosec)


class _RawImage:
    """The fields of ``sensor_msgs/Image`` that extraction uses; ``data`` is a view into the raw bytes."""

    __slots__ = ("data", "encoding", "header", "height", "is_bigendian", "step", "width")


class _RawCompressed:
    """The fields of ``sensor_msgs/CompressedImage`` that extraction uses; ``data`` is a view."""

    __slots__ = ("data", "format", "header")


_U32 = struct.Struct("<I")
_I32U32 = struct.Struct("<iI")
_U32X2 = struct.Struct("<II")


class _Cursor:
    """Little-endian reader over ROS1 or CDR (XCDR1, little-endian) message bytes."""

    __slots__ = ("buf", "cdr", "pos")

    def __init__(self, buf: memoryview, cdr: bool) -> None:
        self.buf, self.cdr = buf, cdr
        self.pos = 4 if cdr else 0  # CDR: 4-byte encapsulation header, alignment counted after it

    def align(self, n: int) -> None:
        if self.cdr:
            self.pos += -(self.pos - 4) % n

    def u32(self) -> int:
        self.align(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def u8(self) -> int:
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def string(self) -> str:
        size = self.u32()
        end = self.pos + size
        if end > len(self.buf):
            raise ValueError("string runs past the message")
        raw = bytes(self.buf[self.pos : end])
        self.pos = end
        return (raw[:-1] if self.cdr and raw.endswith(b"\0") else raw).decode()

    def blob(self) -> memoryview:
        size = self.u32()
        end = self.pos + size
        if end > len(self.buf):
            raise ValueError("byte array runs past the message")
        view = self.buf[self.pos : end]
        self.pos = end
        return view

    def header(self) -> _Header:
        if self.cdr:
            self.align(4)
            sec, nanosec = _I32U32.unpack_from(self.buf, self.pos)
            self.pos += 8
        else:
            _, sec, nanosec = struct.unpack_from("<III", self.buf, self.pos)  # seq, stamp
            self.pos += 12
        self.string()  # frame_id
        return _Header(sec, nanosec)


def parse_image_message(rawdata: bytes | memoryview, msgtype: str, ros2: bool) -> Any:
    """Parse Image / CompressedImage wire bytes without copying pixel data.

    Handles ROS1 serialization and little-endian CDR; raises ValueError for anything else (big-endian CDR,
    truncated data) so the caller can fall back to the full deserializer.
    """
    buf = memoryview(rawdata).cast("B") if not isinstance(rawdata, memoryview) else rawdata
    if ros2 and (len(buf) < 4 or buf[1] != 1):
        raise ValueError("not little-endian CDR")
    cur = _Cursor(buf, ros2)
    header = cur.header()
    if msgtype == IMAGE:
        msg: Any = _RawImage()
        msg.header = header
        msg.height = cur.u32()
        msg.width = cur.u32()
        msg.encoding = cur.string()
        msg.is_bigendian = cur.u8()
        msg.step = cur.u32()
        msg.data = np.frombuffer(cur.blob(), dtype=np.uint8)
        return msg
    if msgtype == COMPRESSED:
        msg = _RawCompressed()
        msg.header = header
        msg.format = cur.string()
        msg.data = np.frombuffer(cur.blob(), dtype=np.uint8)
        return msg
    raise ValueError(f"no fast parser for {msgtype}")
