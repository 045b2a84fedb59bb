"""Suite-wide set-up: offline Ultralytics, shared real data, a small generated drive."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

from rosbag_assets.steps.runtime import configure_ultralytics

configure_ultralytics(Path(tempfile.gettempdir()) / "rosbag_assets_tests_yolo_cfg")

# one moto server per session, a clean backend per test: `moto_server` is available to every test
from conftest_aws import _moto_server_process, moto_server  # noqa: E402, F401

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ROS1_BAGS = SHARED_DATA / "bags" / "ros1"
ROS2_BAGS = SHARED_DATA / "bags" / "ros2"
TFLITE_MODEL = SHARED_DATA / "models" / "yolo11n_int8.tflite"


def shared(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when the shared data is not beside the checkout."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data missing: {path}")
    return path


@pytest.fixture(scope="session")
def small_sample_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A landing root holding one generated drive `sample` (ROS1 + MCAP bags, 1 s at 10 Hz, 480x270)."""
    from rosbag_assets.demo.sample_drive import write_sample_drive

    root = tmp_path_factory.mktemp("landing")
    write_sample_drive(root / "sample", seconds=1.0, width=480, height=270)
    return root
