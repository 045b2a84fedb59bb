"""Reliability, bags: a corrupt message drops only itself; damaged bags are recovered and recorded as such;
a bag that still cannot be read (or only in part) fails extraction naming it, unless allow_partial."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bagwriting import make_compressed_image, make_image, typestore_for, write_bag
from support import Log

from rosbag_assets.io import publish
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.extracted_frames import IncompleteDriveError, run_extracted_frames
from rosbag_assets.steps.raw_bags import run_raw_bags

T0 = 1_700_000_000_000_000_000
H, W = 24, 32
TOPIC = "/cam/image_raw"


def pixels(i: int) -> bytes:
    """Distinct, findable pixel bytes per message."""
    return np.random.default_rng(i).integers(0, 255, H * W * 3, np.uint8).tobytes()


def image_messages(fmt: str, count: int, zero_stamp: set[int] = frozenset()) -> list[tuple[int, Any]]:
    return [
        (
            T0 + i * 100_000_000,
            make_image(fmt, "rgb8", H, W, W * 3, pixels(i), stamp_ns=0 if i in zero_stamp else T0 + i),
        )
        for i in range(count)
    ]


def serialized(fmt: str, msg: Any) -> bytes:
    store = typestore_for(fmt)
    if fmt == "ros1":
        return bytes(store.serialize_ros1(msg, msg.__msgtype__))
    return bytes(store.serialize_cdr(msg, msg.__msgtype__))


def corrupt(raw: bytes, how: str) -> bytes:
    """`parse`: the pixel array's length field claims more bytes than the message holds (neither parser
    reads it); `decode`: the height no longer matches the pixels (parses, cannot become an image)."""
    pos = len(raw) - H * W * 3 - 4  # the u32 length of the pixel array sits right before the pixels
    if how == "parse":
        return raw[:pos] + (2**31).to_bytes(4, "little") + raw[pos + 4 :]
    head = raw.index((H).to_bytes(4, "little") + (W).to_bytes(4, "little"))
    return raw[:head] + (H + 7).to_bytes(4, "little") + raw[head + 4 :]


def write_corrupted(root: Path, fmt: str, count: int, bad: dict[int, str]) -> Path:
    """A drive with one bag of `count` images; message i of `bad` corrupted in place, as `bad[i]` says."""
    drive = root / f"corrupt-{fmt}"
    drive.mkdir(parents=True)
    msgs = image_messages(fmt, count)
    bag = write_bag(drive / ("cam.bag" if fmt == "ros1" else "cam"), fmt, {TOPIC: msgs})
    if fmt == "sqlite3":
        (db,) = bag.glob("*.db3")
        with sqlite3.connect(db) as con:
            for i, how in bad.items():
                raw = serialized(fmt, msgs[i][1])
                changed = con.execute("UPDATE messages SET data=? WHERE data=?", (corrupt(raw, how), raw))
                assert changed.rowcount == 1
        return drive
    (path,) = [bag] if fmt == "ros1" else list(bag.glob("*.mcap"))
    data = path.read_bytes()
    for i, how in bad.items():
        raw = serialized(fmt, msgs[i][1])
        at = data.index(raw)
        data = data[:at] + corrupt(raw, how) + data[at + len(raw) :]
    path.write_bytes(data)
    return drive


def run_both(drive: Path, out: Path, options: dict | None = None) -> tuple[Any, Any, Log]:
    log = Log()
    storage = LocalStorage(out)
    inv = run_raw_bags(drive=drive.name, source=LocalStorage(drive), output=storage, log=log)
    ext = run_extracted_frames(
        drive=drive.name, source=LocalStorage(drive), output=storage, options=options, log=log
    )
    return inv, ext, log


def index_of(res: Any) -> pd.DataFrame:
    return pd.read_parquet(res.metadata["index"]["raw_value"])


@pytest.mark.parametrize("fmt", ["ros1", "sqlite3", "mcap"])
def test_a_corrupt_message_drops_only_itself(tmp_path: Path, fmt: str) -> None:
    drive = write_corrupted(tmp_path / "landing", fmt, 12, {3: "parse", 7: "decode"})
    _, ext, log = run_both(drive, tmp_path / "out")
    index = index_of(ext)
    # every good frame of the topic is kept, the two bad ones are counted
    assert sorted(index["stamp_ns"]) == [T0 + i for i in range(12) if i not in (3, 7)]
    assert ext.metadata["undecodable_messages"]["raw_value"] == 2
    skipped = ext.metadata["skipped_messages"]["raw_value"][TOPIC]
    assert skipped["count"] == 2
    first = skipped["first"]  # names the file, the topic, the message index and its log time
    assert "cam" in first and TOPIC in first and "message 3 " in first and str(T0 + 300_000_000) in first
    (row,) = ext.metadata["frames_per_topic"]["raw_value"]["records"]
    assert (row["frames"], row["undecodable"]) == (10, 2)
    checks = {c.name: c for c in ext.checks}
    assert checks["every_image_topic_has_frames"].passed and checks["all_bags_extracted"].passed
    warn = checks["no_extraction_errors"]
    assert not warn.passed and warn.severity == "WARN" and "2 undecodable" in warn.description
    assert warn.metadata["skipped_messages"]["raw_value"][TOPIC]["count"] == 2
    assert ext.metadata["published"]["raw_value"] is True  # a WARN: the version is current
    assert any(TOPIC in w and "message 3 " in w for w in log.warnings), log.warnings


def test_compressed_garbage_drops_only_that_frame(tmp_path: Path) -> None:
    import cv2

    jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), 80, np.uint8))[1].tobytes()
    payloads = [jpeg, jpeg, b"\x00 not an image", jpeg]
    msgs = [
        (T0 + i, make_compressed_image("mcap", "jpeg", p, stamp_ns=T0 + i)) for i, p in enumerate(payloads)
    ]
    drive = tmp_path / "landing" / "jpeg"
    drive.mkdir(parents=True)
    write_bag(drive / "cam", "mcap", {"/cam/compressed": msgs})
    _, ext, _ = run_both(drive, tmp_path / "out")
    assert sorted(index_of(ext)["stamp_ns"]) == [T0, T0 + 1, T0 + 3]
    assert "message 2 " in ext.metadata["skipped_messages"]["raw_value"]["/cam/compressed"]["first"]


def test_zero_stamps_are_counted_and_warned(tmp_path: Path) -> None:
    drive = tmp_path / "landing" / "stamps"
    drive.mkdir(parents=True)
    msgs = image_messages("mcap", 5, zero_stamp={1, 2})
    write_bag(drive / "cam", "mcap", {TOPIC: msgs})
    _, ext, log = run_both(drive, tmp_path / "out")
    index = index_of(ext).set_index("log_time_ns")
    assert index.loc[msgs[1][0], "stamp_ns"] == msgs[1][0]  # the log time stands in
    assert ext.metadata["frames_without_stamp"]["raw_value"] == {TOPIC: 2}
    (row,) = ext.metadata["frames_per_topic"]["raw_value"]["records"]
    assert row["zero_stamps"] == 2
    assert any(TOPIC in w and "2 frame(s)" in w and "header stamp" in w for w in log.warnings), log.warnings


# --- damaged bags: recovered, recorded, and never silently lost --------------------------------------------


def ros1_unindexed(drive: Path, count: int) -> Path:
    path = write_bag(drive / "unindexed.bag", "ros1", {TOPIC: image_messages("ros1", count)})
    data = path.read_bytes()
    at = data.index(b"index_pos=") + len(b"index_pos=")
    path.write_bytes(data[:at] + bytes(8) + data[at + 8 :])
    return path


def mcap_cut(drive: Path, count: int, fraction: float) -> Path:
    """An MCAP bag folder whose storage file is cut at `fraction` (frames big enough for several chunks)."""
    rng = np.random.default_rng(3)
    msgs = [
        (T0 + i, make_image("mcap", "rgb8", 120, 160, 480, rng.bytes(120 * 480), stamp_ns=T0 + i))
        for i in range(count)
    ]
    folder = write_bag(drive / "cut", "mcap", {TOPIC: msgs})
    (storage,) = folder.glob("*.mcap")
    storage.write_bytes(storage.read_bytes()[: int(storage.stat().st_size * fraction)])
    return folder


def test_damaged_bags_are_recovered_and_recorded(tmp_path: Path) -> None:
    from test_recovery import write_ros1_mcap

    drive = tmp_path / "landing" / "damaged"
    drive.mkdir(parents=True)
    ros1_unindexed(drive, 6)  # whole after a reindex scan
    write_ros1_mcap(drive / "ros1-profile.mcap", 9)  # rosbags reads only the ros2 profile; 6 raw images
    out = LocalStorage(tmp_path / "out")
    log = Log()
    inv = run_raw_bags(drive="damaged", source=LocalStorage(drive), output=out, log=log)
    manifest = publish.current(out, "damaged/raw_bags")
    bags = {b["name"]: b for b in manifest["bags"]}
    assert bags["unindexed.bag"]["read_mode"] == "reindexed" and bags["unindexed.bag"]["complete"]
    assert bags["ros1-profile.mcap"]["read_mode"] == "mcap-ros1" and bags["ros1-profile.mcap"]["complete"]
    assert inv.metadata["recovered_bags"]["raw_value"] == 2
    assert not inv.checks[0].passed  # all_bags_readable (WARN) says recovery was needed
    # whole recoveries need no allow_partial: every frame comes out
    ext = run_extracted_frames(drive="damaged", source=LocalStorage(drive), output=out, log=log)
    per_bag = index_of(ext).groupby("bag").size().to_dict()
    assert per_bag == {"unindexed.bag": 6, "ros1-profile.mcap": 6}
    # that writer's 3 CompressedImages hold random bytes, not JPEG: skipped one by one, counted
    assert ext.metadata["skipped_messages"]["raw_value"]["/camera/compressed"]["count"] == 3
    assert {c.name: c.passed for c in ext.checks}["all_bags_extracted"]


def test_a_partly_readable_bag_fails_unless_allow_partial(tmp_path: Path) -> None:
    drive = tmp_path / "landing" / "partial"
    drive.mkdir(parents=True)
    write_bag(drive / "good.bag", "ros1", {TOPIC: image_messages("ros1", 4)})
    mcap_cut(drive, 60, 0.6)
    out = LocalStorage(tmp_path / "out")
    run_raw_bags(drive="partial", source=LocalStorage(drive), output=out, log=Log())
    cut = {b["name"]: b for b in publish.current(out, "partial/raw_bags")["bags"]}["cut/"]
    assert cut["ok"] and cut["read_mode"] == "sequential" and not cut["complete"] and cut["stop_offset"] > 0
    with pytest.raises(IncompleteDriveError, match=r"(?s)1 bag\(s\).*allow_partial.*cut/: recovered in part"):
        run_extracted_frames(drive="partial", source=LocalStorage(drive), output=out)
    assert publish.current(out, "partial/extracted_frames") is None
    ext = run_extracted_frames(
        drive="partial", source=LocalStorage(drive), output=out, options={"allow_partial": True}
    )
    per_bag = index_of(ext).groupby("bag").size().to_dict()
    assert per_bag["good.bag"] == 4 and 0 < per_bag["cut/"] < 60  # what could be read, and no more
    check = {c.name: c for c in ext.checks}["all_bags_extracted"]
    assert not check.passed and [p["bag"] for p in check.metadata["incomplete_bags"]["raw_value"]] == ["cut/"]
    assert (
        publish.current(out, "partial/extracted_frames")["version"]
        in ext.metadata["frames_root"]["raw_value"]
    )


def test_a_drive_of_unreadable_bags_is_never_green(tmp_path: Path) -> None:
    drive = tmp_path / "landing" / "junk"
    drive.mkdir(parents=True)
    (drive / "zero.bag").write_bytes(b"")
    (drive / "junk.mcap").write_bytes(b"not an mcap at all" * 64)
    out = LocalStorage(tmp_path / "out")
    inv = run_raw_bags(drive="junk", source=LocalStorage(drive), output=out, log=Log())
    assert inv.metadata["unreadable_bags"]["raw_value"] == 2
    with pytest.raises(IncompleteDriveError, match=r"(?s)2 bag\(s\).*junk\.mcap.*zero\.bag"):
        run_extracted_frames(drive="junk", source=LocalStorage(drive), output=out)
    ext = run_extracted_frames(
        drive="junk", source=LocalStorage(drive), output=out, options={"allow_partial": True}
    )
    assert ext.metadata["frames"]["raw_value"] == 0
    failed = [c for c in ext.checks if not c.passed and c.severity == "ERROR"]
    assert [c.name for c in failed] == ["all_bags_extracted"]
    assert {p["bag"] for p in failed[0].metadata["incomplete_bags"]["raw_value"]} == {"zero.bag", "junk.mcap"}
