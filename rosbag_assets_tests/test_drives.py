"""Drive names, seeds, landing roots and which files are bags."""

import json
from pathlib import Path

import pytest

from rosbag_assets.io.drives import (
    ROS1,
    ROS2_MCAP,
    ROS2_SQLITE,
    InvalidDriveNameError,
    drives_from_seed,
    find_bags,
    scan_landing_root,
    validate_drive_name,
)
from rosbag_assets.io.storage import FileInfo, LocalStorage


@pytest.mark.parametrize("name", ["drive1", "2024-05-01_run.3", "A-b_c.d", "x" * 128])
def test_valid_drive_names(name: str) -> None:
    assert validate_drive_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("../etc", "may only contain|'\\.\\.'"),
        ("a..b", "'\\.\\.'"),
        ("drive/1", "may only contain"),
        ("drive 1", "may only contain"),
        ("drive;rm", "may only contain"),
        ("x" * 129, "limit is 128"),
        ("ünïcode", "may only contain"),
    ],
)
def test_invalid_drive_names_are_rejected_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidDriveNameError, match=reason):
        validate_drive_name(name)


def test_seed_format(tmp_path: Path) -> None:
    seed = {
        "drives_to_process": {
            "drive1": {"bucket": "raw", "prefix": "drive1/"},
            "drive2": {"path": str(tmp_path)},
            "drive3": {"uri": "s3://other/x"},
        }
    }
    drives = drives_from_seed(seed)
    assert drives["drive1"].uri == "s3://raw/drive1"
    assert drives["drive2"].uri == str(tmp_path)
    assert drives["drive3"].uri == "s3://other/x"
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    assert drives_from_seed(path) == drives
    with pytest.raises(InvalidDriveNameError):
        drives_from_seed({"drives_to_process": {"../x": {"bucket": "b"}}})
    with pytest.raises(ValueError, match="drives_to_process"):
        drives_from_seed({"drives": {}})


def _files(*keys: str) -> list[FileInfo]:
    return [FileInfo(k, 10, "t") for k in keys]


def test_find_bags_groups_ros2_folders_and_reports_other_files() -> None:
    bags, skipped = find_bags(
        _files(
            "a.bag",
            "run2/metadata.yaml",
            "run2/run2_0.mcap",
            "run2/run2_1.mcap",
            "run3/metadata.yaml",
            "run3/run3_0.db3",
            "loose.db3",
            "sub/loose.mcap",
            "notes.txt",
            "rec.bag.active",
            ".hidden/x.bag",
        )
    )
    by_name = {b.name: b for b in bags}
    assert by_name["a.bag"].format == ROS1
    assert by_name["run2/"].format == ROS2_MCAP and len(by_name["run2/"].files) == 3
    assert by_name["run3/"].format == ROS2_SQLITE and by_name["run3/"].has_metadata
    assert by_name["loose.db3"].format == ROS2_SQLITE and not by_name["loose.db3"].has_metadata
    assert by_name["sub/loose.mcap"].format == ROS2_MCAP
    assert {name for name, _ in skipped} == {"notes.txt", "rec.bag.active"}
    assert "reindex" in dict(skipped)["rec.bag.active"]


def test_scan_landing_root_fingerprints_change_with_bags(tmp_path: Path) -> None:
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "a.bag").write_bytes(b"x" * 10)
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "readme.txt").write_text("no bags here")
    (tmp_path / "bad name").mkdir()
    (tmp_path / "bad name" / "a.bag").write_bytes(b"x")
    found, rejected = scan_landing_root(LocalStorage(tmp_path))
    assert list(found) == ["d1"] and rejected == ["bad name"]
    (tmp_path / "d1" / "b.bag").write_bytes(b"y")
    again, _ = scan_landing_root(LocalStorage(tmp_path))
    assert again["d1"] != found["d1"]
    assert scan_landing_root(LocalStorage(tmp_path))[0] == again
