"""Reliability, security: nothing outside the landing root is read; credentials never reach logs, metadata
or manifests; a bad seed entry is skipped, not fatal; hostile and very long names stay distinct and safe."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from bagwriting import make_image, write_bag

from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.defs.sensors import discover
from rosbag_assets.io import publish
from rosbag_assets.io.drives import OutsideLandingRootError, scan_landing_root
from rosbag_assets.io.s3_storage import S3Storage
from rosbag_assets.io.storage import LocalStorage, OutsideRootError, redact, redact_text, safe_name
from rosbag_assets.steps.extracted_frames import run_extracted_frames
from rosbag_assets.steps.raw_bags import run_raw_bags

T0 = 1_700_000_000_000_000_000


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str) -> None:
        self.lines.append(msg)

    def warning(self, msg: str) -> None:
        self.lines.append(msg)


def cam_bag(path: Path, fmt: str = "ros1", topics: tuple[str, ...] = ("/cam",), frames: int = 2) -> Path:
    img = np.full((8, 8, 3), 7, np.uint8).tobytes()
    msgs = {
        t: [(T0 + i, make_image(fmt, "bgr8", 8, 8, 24, img, stamp_ns=T0 + i)) for i in range(frames)]
        for t in topics
    }
    return write_bag(path, fmt, msgs)


@pytest.fixture
def landing_with_links(tmp_path: Path) -> tuple[Path, Path]:
    """landing/d1 holds good.bag plus links out (a bag, a folder); landing/d2 is itself a link out."""
    outside = tmp_path / "outside"
    (outside / "drive").mkdir(parents=True)
    cam_bag(outside / "secret.bag")
    cam_bag(outside / "drive" / "x.bag")
    landing = tmp_path / "landing"
    (landing / "d1").mkdir(parents=True)
    cam_bag(landing / "d1" / "good.bag")
    (landing / "d1" / "evil.bag").symlink_to(outside / "secret.bag")
    (landing / "d1" / "evil-dir").symlink_to(outside / "drive")
    (landing / "d1" / "alias.bag").symlink_to(landing / "d1" / "good.bag")  # inside: fine
    (landing / "d2").symlink_to(outside / "drive")
    return landing, outside


def test_links_out_of_the_landing_root_are_never_read(
    landing_with_links: tuple[Path, Path], tmp_path: Path
) -> None:
    landing, outside = landing_with_links
    root = LocalStorage(landing)
    found, _ = scan_landing_root(root)
    assert set(found) == {"d1"}  # d2 leads outside: no drive
    refused = dict(root.refused)
    assert "outside" in refused["d2"] and "d1/evil.bag" in refused and "d1/evil-dir" in refused
    # the sensor warns, naming each one
    log = Log()
    assert set(
        discover(DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "o")), log)[0]
    ) == {"d1"}
    assert any("d2" in w and str(outside / "drive") in w for w in log.lines), log.lines
    assert any("evil.bag" in w and "outside" in w for w in log.lines), log.lines
    # a run asked for the linked drive by name is refused, not followed
    with pytest.raises(OutsideLandingRootError, match="d2"):
        DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "o")).drive_uri("d2")
    # the drive's own listing skips the link out with a warning naming it; the outside bag is never opened
    out = LocalStorage(tmp_path / "out")
    log = Log()
    run_raw_bags(drive="d1", source=LocalStorage(landing / "d1"), output=out, log=log)
    bags = [b["name"] for b in publish.current(out, "d1/raw_bags")["bags"]]
    assert sorted(bags) == ["alias.bag", "good.bag"]
    assert any("evil.bag" in w and str(outside / "secret.bag") in w for w in log.lines), log.lines
    with pytest.raises(OutsideRootError, match=r"evil\.bag"):
        LocalStorage(landing / "d1").local_path("evil.bag")


def test_hostile_names_stay_distinct_and_inside_the_output(tmp_path: Path) -> None:
    drive = tmp_path / "landing" / "hostile"
    drive.mkdir(parents=True)
    names = ["a b.bag", "a_b.bag", "-rf.bag", "ünï cødé.bag", "x;$(touch pwned).bag"]
    for name in names:
        cam_bag(drive / name)
    cam_bag(drive / "topics.bag", topics=("/cam/a", "/cam_a"), frames=3)  # one folder name, two topics
    out = LocalStorage(tmp_path / "out")
    run_raw_bags(drive="hostile", source=LocalStorage(drive), output=out, log=Log())
    ext = run_extracted_frames(
        drive="hostile", source=LocalStorage(drive), output=out, options={"shard_mb": 1}
    )
    index = pd.read_parquet(ext.metadata["index"]["raw_value"])
    assert index.groupby("bag").size().to_dict() == {**{n: 2 for n in names}, "topics.bag": 6}
    assert index.groupby(["bag", "topic"]).size()["topics.bag"].to_dict() == {"/cam/a": 3, "/cam_a": 3}
    assert index.groupby("bag")["data_key"].apply(lambda k: k.str.split("/").str[1].iloc[0]).nunique() == 6
    assert index["data_key"].nunique() == 7  # one shard per bag and topic: no two share one
    root = os.path.realpath(tmp_path / "out")
    for path in index["path"]:
        assert os.path.realpath(path).startswith(root + "/") and Path(path).is_file()
    assert not (tmp_path / "landing" / "hostile" / "pwned").exists() and not Path("pwned").exists()


def test_very_long_keys_map_to_safe_local_names(moto_server: Any, tmp_path: Path) -> None:
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket="landing")
    long_name = "very-" + "long" * 72 + ".bag"  # 297 characters: no local file system takes that name
    assert len(long_name) > 255
    bag = cam_bag(tmp_path / "src.bag")
    s3.put_object(Bucket="landing", Key=f"drive/{long_name}", Body=bag.read_bytes())
    s3.put_object(Bucket="landing", Key="drive/../escape.bag", Body=bag.read_bytes())
    source = S3Storage("landing", "drive", endpoint_url=moto_server.url)
    out = LocalStorage(tmp_path / "out")
    log = Log()
    run_raw_bags(drive="drive", source=source, output=out, log=log)
    (entry,) = publish.current(out, "drive/raw_bags")["bags"]
    assert entry["name"] == long_name and entry["ok"]  # downloaded to a safe local name and read
    assert any("../escape.bag" in w and "'..'" in w for w in log.lines), log.lines
    ext = run_extracted_frames(drive="drive", source=source, output=out)
    index = pd.read_parquet(ext.metadata["index"]["raw_value"])
    assert list(index["bag"]) == [long_name] * 2 and all(Path(p).is_file() for p in index["path"])
    assert all(len(part.encode()) <= 255 for p in index["path"] for part in Path(p).parts)
    assert safe_name(long_name) != safe_name(long_name[:-5] + "x.bag") and safe_name(long_name).endswith(
        ".bag"
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:pa55@models.example/yolo.pt", "https://***@models.example/yolo.pt"),
        ("https://token@host/w.pt?x=1", "https://***@host/w.pt?x=1"),
        (
            "https://h/w.pt?X-Amz-Signature=abc&X-Amz-Credential=AKIA%2F1&v=2",
            "https://h/w.pt?X-Amz-Signature=***&X-Amz-Credential=***&v=2",
        ),
        ("s3://AKIA:secret@bucket/key", "s3://***@bucket/key"),
        ("s3://bucket/key", "s3://bucket/key"),
        ("https://user:pa/ss?#@host/x", "https://***@host/x"),  # unescaped '/', '?', '#' in a password
        ("https://host:8080/a@b.pt", "https://***@b.pt"),  # ambiguous: over-redacted, never leaked
        ("/local/path/w.pt", "/local/path/w.pt"),
    ],
)
def test_redact(uri: str, expected: str) -> None:
    assert redact(uri) == expected
    assert redact_text(f"cannot download {uri}: offline") == f"cannot download {expected}: offline"


def test_weights_url_credentials_never_leave_the_process(small_sample_landing: Path, tmp_path: Path) -> None:
    from rosbag_assets.steps.object_labels import run_object_labels

    out = LocalStorage(tmp_path / "out")
    drive = small_sample_landing / "sample"
    run_raw_bags(drive="sample", source=LocalStorage(drive), output=out, log=Log())
    run_extracted_frames(drive="sample", source=LocalStorage(drive), output=out, log=Log())
    log = Log()
    url = "https://robot:hunter2-secret@127.0.0.1:9/weights/yolo11n.pt?token=tok3n-secret"
    res = run_object_labels(
        drive="sample",
        output=out,
        options={"weights": url, "allow_fallback": True, "max_frames": 2, "cache_dir": str(tmp_path / "c")},
        log=log,
    )
    published = json.dumps(res.metadata) + json.dumps([c.metadata for c in res.checks]) + "\n".join(log.lines)
    version, manifest = publish.require_current(out, "sample/object_labels")
    published += json.dumps(manifest) + version.read_parquet("labels.parquet").to_csv()
    assert "hunter2" not in published and "tok3n" not in published
    assert "https://***@127.0.0.1:9/weights/yolo11n.pt?token=***" in published  # still says which URL


def test_one_bad_seed_entry_is_skipped_with_a_warning(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    cam_bag(good / "a.bag")
    seed = tmp_path / "seed.json"
    entries = {
        "good-1": {"path": str(good)},
        "../escape": {"path": "/etc"},
        "no-spec": 5,
        "ftp-drive": {"uri": "ftp://user:pw-secret@host/x"},
        "missing-folder": {"path": str(tmp_path / "absent")},
    }
    seed.write_text(json.dumps({"drives_to_process": entries}))
    log = Log()
    found, _ = discover(DriveStorage(drives_file=str(seed), output_root=str(tmp_path / "o")), log)
    assert set(found) == {"good-1"}
    for name in ("../escape", "no-spec", "ftp-drive"):
        assert any(repr(name) in w and "skipped" in w for w in log.lines), (name, log.lines)
    assert not any("pw-secret" in w for w in log.lines)
    storage = DriveStorage(drives_file=str(seed), output_root=str(tmp_path / "o"))
    assert storage.drive_uri("good-1") == str(good)  # another entry's mistake does not block this drive
