"""The zero-copy Image/CompressedImage parser agrees with rosbags' full deserializer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bagwriting import make_compressed_image, make_image, write_bag
from rosbags.highlevel import AnyReader

from rosbag_assets.io.bags import DEFAULT_TYPESTORE
from rosbag_assets.steps.extracted_frames import COMPRESSED, IMAGE, parse_image_message


@pytest.mark.parametrize("fmt", ["ros1", "mcap", "sqlite3"])
def test_fast_parse_matches_deserialize(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(0)
    msgs_raw = []
    for i, (enc, frame_id, h, w, step) in enumerate(
        [("bgr8", "cam", 3, 5, 16), ("mono16", "", 2, 3, 6), ("rgb8", "abcdefg", 4, 2, 6)]
    ):
        data = rng.integers(0, 255, h * step, dtype=np.uint8)
        msgs_raw.append(
            (
                1_000 + i,
                make_image(
                    fmt, enc, h, w, step, data, stamp_ns=1_700_000_000_123_456_789 + i, frame_id=frame_id
                ),
            )
        )
    jpeg = b"\xff\xd8\xff" + bytes(range(50))
    msgs_c = [
        (2_000 + i, make_compressed_image(fmt, f, jpeg[: 10 + i], stamp_ns=5 + i, frame_id="x" * i))
        for i, f in enumerate(["jpeg", "", "rgb8; jpeg compressed bgr8"])
    ]
    bag = write_bag(tmp_path / ("b.bag" if fmt == "ros1" else "b"), fmt, {"/raw": msgs_raw, "/jpg": msgs_c})
    with AnyReader([bag], default_typestore=DEFAULT_TYPESTORE) as reader:
        count = 0
        for conn, _, raw in reader.messages():
            ref = reader.deserialize(raw, conn.msgtype)
            got = parse_image_message(raw, conn.msgtype, reader.is2)
            assert (got.header.stamp.sec, got.header.stamp.nanosec) == (
                ref.header.stamp.sec,
                ref.header.stamp.nanosec,
            )
            if conn.msgtype == IMAGE:
                for name in ("height", "width", "encoding", "is_bigendian", "step"):
                    assert getattr(got, name) == getattr(ref, name)
            else:
                assert conn.msgtype == COMPRESSED
                assert got.format == ref.format
            assert np.array_equal(np.asarray(got.data), np.asarray(ref.data))
            count += 1
        assert count == 6


def test_fast_parse_rejects_truncated_and_big_endian() -> None:
    with pytest.raises(ValueError):
        parse_image_message(b"\x00\x00\x00\x00" + b"\x00" * 40, IMAGE, True)  # big-endian CDR
    with pytest.raises((ValueError, IndexError)):
        parse_image_message(b"\x00\x01\x00\x00" + b"\x00" * 8 + b"\xff\xff\xff\x7f", IMAGE, True)
