"""What a person sees: progress lines, the topic timeline, previews, the drive report, honest metadata, and
the discovery sensor leaving alone drives that are already up to date."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pytest
from conftest import ROS2_BAGS, shared
from support import Log, tick

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.defs.definitions import defs
from rosbag_assets.defs.drives import raw_bags
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.io import publish
from rosbag_assets.io.bag_index import _connection_times, message_times
from rosbag_assets.io.bags import open_bag
from rosbag_assets.io.drives import find_bags, scan_landing_root
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps import progress, report
from rosbag_assets.steps.entrypoint import run_step
from rosbag_assets.vision import topic_rows
from rosbag_assets.vision.timeline import draw_timeline, time_segments


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_reports_at_a_steady_cadence_with_totals_rate_and_eta() -> None:
    log, clock = Log(), Clock()
    bar = progress.Progress(log, "bag.bag", {"/a": 100, "/b": 100}, clock=clock, stream=io.StringIO())
    for i in range(150):  # 10 items per second for 15 s: three 5-second reports, not 150
        clock.now = i / 10
        bar.update("/a" if i % 2 else "/b")
    assert len(log.infos) == 2  # at 5.0 s and 10.0 s; the 15 s mark is not reached within 150 items
    clock.now = 15.0
    bar.update("/a")
    assert len(log.infos) == 3
    line = log.infos[-1]
    assert line.startswith("bag.bag: 151/200 frames (76%), 10.1 frames/s, ETA 5s")
    assert "/a 76/100" in line and "/b 75/100" in line


def test_progress_draws_a_bar_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, tty = io.StringIO(), Tty()
    for stream in (plain, tty):
        with progress.Progress(Log(), "labelling", 3, stream=stream) as bar:
            for _ in bar.iterate(range(3)):
                pass
    assert plain.getvalue() == ""
    assert "labelling" in tty.getvalue()


def test_extraction_logs_progress_per_topic(
    small_sample_landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "REPORT_EVERY_S", 0.0)  # every message, so a 1-second drive reports
    log, out = Log(), LocalStorage(tmp_path)
    source = LocalStorage(small_sample_landing / "sample")
    run_raw_bags_step(source, out)
    from rosbag_assets.steps.extracted_frames import run_extracted_frames

    run_extracted_frames(drive="sample", source=source, output=out, log=log)
    lines = [m for m in log.infos if m.startswith("extracting ")]
    assert lines, log.infos
    assert any("/camera/front/image_raw 10/10" in m and "20/20 frames (100%)" in m for m in lines), lines[-3:]


def run_raw_bags_step(source: LocalStorage, out: LocalStorage, drive: str = "sample") -> report.StepResult:
    return run_step({"step": "raw_bags", "drive": drive, "source": source.root_uri, "output": out.root_uri})


def test_message_times_come_from_the_indexes(small_sample_landing: Path) -> None:
    """ROS1 index, MCAP message indexes and sqlite3 timestamps give exactly the messages' times."""
    storages = [LocalStorage(small_sample_landing / "sample"), LocalStorage(shared("bags", "ros2"))]
    formats = set()
    for storage in storages:
        bags, _ = find_bags(storage.list_files(""))
        for bag in bags:
            with open_bag(storage, bag) as reader:
                assert all(_connection_times(c) is not None for c in reader.connections), bag.name
                times = message_times(reader)
                expected: dict[str, list[int]] = {}
                for conn, stamp, _ in reader.messages():
                    expected.setdefault(conn.topic, []).append(stamp)
                assert set(times) == set(expected)
                for topic, values in expected.items():
                    assert np.array_equal(times[topic], np.sort(values)), (bag.name, topic)
                formats.add(bag.format)
    assert formats == {"ros1", "ros2-mcap", "ros2-sqlite3"}
    assert ROS2_BAGS.exists()


def test_timeline_shows_each_topic_and_cuts_long_gaps() -> None:
    second = 1_000_000_000
    bags = [{"bag": "a.bag", "start_ns": 0, "end_ns": 10 * second}]
    rates = [
        {"bag": "a.bag", "topic": t, "start_ns": i * second, "bin_ns": second, "count": n}
        for t, n in (("/cam", 10), ("/gps", 1))
        for i in range(10)
    ]
    img = draw_timeline(bags, rates)
    assert img.shape[1] == 960 and img.dtype == np.uint8
    assert draw_timeline(bags, rates[:10]).shape[0] < img.shape[0]  # one row per topic
    # two recordings a year apart: two segments, each wide enough to see
    segments = time_segments(
        [(0, 10 * second), (365 * 86400 * second, 365 * 86400 * second + 60 * second)], 0, 600
    )
    assert len(segments) == 2 and all(xe - xs >= 30 for _, _, xs, xe in segments)
    assert len(time_segments([(0, 10 * second), (11 * second, 20 * second)], 0, 600)) == 1


def test_raw_bags_timeline_picture_and_the_sensor_fingerprint_agree(
    small_sample_landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = LocalStorage(tmp_path / "out")
    monkeypatch.delenv(report.OUTPUT_URL_ENV, raising=False)
    res = run_raw_bags_step(LocalStorage(small_sample_landing / "sample"), out)
    fingerprints, _ = scan_landing_root(LocalStorage(small_sample_landing))
    assert res.metadata["drive_fingerprint"]["raw_value"] == fingerprints["sample"] == res.data_version
    version, _ = publish.require_current(out, "sample/raw_bags")
    rates = version.read_parquet("rates.parquet")
    assert rates.groupby("topic")["count"].sum().to_dict() == {
        "/camera/front/image_raw": 20,
        "/camera/side/image_raw/compressed": 20,
        "/imu/data": 20,
        "/vehicle/speed": 20,
    }
    png = cv2.imdecode(np.frombuffer(out.read_bytes(version.key("timeline.png")), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[1] <= 1024
    embedded = res.metadata["timeline"]["raw_value"]
    assert embedded.startswith("![sample topics over time](data:image/png;base64,")
    # with an http address for the output root the picture is a short link, which the UI shows in place: an
    # inline-width copy stored beside the picture, linked to the full one
    monkeypatch.setenv(report.OUTPUT_URL_ENV, "http://127.0.0.1:8000/out/")
    linked_res = run_raw_bags_step(LocalStorage(small_sample_landing / "sample"), out)
    version, _ = publish.require_current(out, "sample/raw_bags")
    full, small = version.key("timeline.png"), version.key("timeline.inline.png")
    linked = linked_res.metadata["timeline"]["raw_value"]
    assert (
        linked
        == f"[![sample topics over time](http://127.0.0.1:8000/out/{small})](http://127.0.0.1:8000/out/{full})"
    )
    assert len(linked) < 1000
    inline = cv2.imdecode(np.frombuffer(out.read_bytes(small), np.uint8), cv2.IMREAD_COLOR)
    full_png = cv2.imdecode(np.frombuffer(out.read_bytes(full), np.uint8), cv2.IMREAD_COLOR)
    assert inline.shape[1] == report.INLINE_WIDTH < full_png.shape[1]
    # drawn for that width, not the full one scaled down (whose text would be 4 px high): rows stay tall
    assert inline.shape[0] > 1.5 * full_png.shape[0] * report.INLINE_WIDTH / full_png.shape[1]
    # any other picture is scaled down, keeping its aspect
    wide = cv2.imencode(".jpg", np.full((300, 960, 3), 128, np.uint8))[1].tobytes()
    report.picture(wide, "w", "d/a/wide.jpg", storage=LocalStorage(tmp_path / "wide"))
    scaled = cv2.imread(str(tmp_path / "wide" / "d/a/wide.inline.jpg"))
    assert scaled.shape[:2] == (100, report.INLINE_WIDTH)
    # a picture already narrow enough is linked as it is, without a copy
    narrow = cv2.imencode(".jpg", np.zeros((50, 200, 3), np.uint8))[1].tobytes()
    written = LocalStorage(tmp_path / "narrow")
    value = report.picture(narrow, "n", "d/a/x.jpg", storage=written)
    assert (
        value["raw_value"]
        == "[![n](http://127.0.0.1:8000/out/d/a/x.jpg)](http://127.0.0.1:8000/out/d/a/x.jpg)"
    )
    assert not (tmp_path / "narrow").exists() or not any((tmp_path / "narrow").rglob("*"))
    assert res.metadata["elapsed_s"]["raw_value"] == round(res.metadata["elapsed_s"]["raw_value"], 2)
    assert res.metadata["target"]["raw_value"].startswith("local on ")


def test_sensor_skips_a_drive_materialized_outside_the_sensor(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "drive-a").mkdir(parents=True)
    shutil.copy(shared("bags", "ros1", "get_images_tiny.bag"), landing / "drive-a" / "a.bag")
    storage = DriveStorage(landing_root=str(landing), output_root=str(tmp_path / "out"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(drives.name, ["drive-a"])
    result = dg.materialize(
        [raw_bags],
        partition_key="drive-a",
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode="in_process"))},
    )
    assert result.success
    first = tick(instance, storage, None)  # a fresh cursor: the sensor has never seen this drive
    assert first.run_requests == []
    shutil.copy(shared("bags", "ros1", "duckietown_sim_compressed.bag"), landing / "drive-a" / "b.bag")
    second = tick(instance, storage, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["drive-a"]


def test_drive_report_is_published_and_says_what_is_missing(
    small_sample_landing: Path, tmp_path: Path
) -> None:
    out = LocalStorage(tmp_path / "out")
    source = LocalStorage(small_sample_landing / "sample")
    run_raw_bags_step(source, out)
    base = {"drive": "sample", "output": out.root_uri, "source": source.root_uri}
    run_step({**base, "step": "extracted_frames"})
    run_step({**base, "step": "lane_labels"})
    log = Log()
    res = run_step({**base, "step": "drive_report"}, log=log)
    page = (tmp_path / "out" / "sample" / "report" / "index.html").read_text()
    manifest = json.loads((tmp_path / "out" / "sample" / "report" / "CURRENT.json").read_text())
    assert (tmp_path / "out" / "sample" / "report" / "versions" / manifest["version"] / "index.html").exists()
    assert res.metadata["report"]["raw_value"].endswith("sample/report/index.html")
    assert manifest["missing"] == ["object_labels"]
    assert any("object_labels is not published yet" in w for w in log.warnings)
    assert page.count("<img") == 1 + 2 * 6  # the timeline and six frames of each camera topic
    assert "/camera/front/image_raw" in page and "Lanes" in page and "not published yet" in page
    # the thumbnail: 2 x 2 frames (each topic's first, then later ones), the topic chart below
    version = tmp_path / "out" / "sample" / "report" / "versions" / manifest["version"]
    thumb = cv2.imread(str(version / "thumbnail.jpg"))
    assert res.metadata["thumbnail"]["raw_value"].startswith("![sample report](data:image/jpeg;base64,")
    raw, _ = publish.require_current(out, "sample/raw_bags")
    topics = min(raw.read_parquet("rates.parquet")["topic"].nunique(), topic_rows.MAX_TOPICS)
    chart_h = topic_rows.TITLE_H + topics * topic_rows.ROW_H + topic_rows.AXIS_H
    frames_h = thumb.shape[0] - chart_h
    assert thumb.shape[1] == 640 and frames_h == 2 * round(360 * 320 / 640)  # the sample's 640x360 frames
    assert thumb[:frames_h].std() > 20 and thumb[frames_h + topic_rows.TITLE_H :].mean() > 150


def test_definitions_describe_and_wire_the_report() -> None:
    job = defs.resolve_job_def("process_drive")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert "drive_report" in keys
    assert job.executor_def.name == "multiprocess"
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    for name in (
        "raw_bags",
        "extracted_frames",
        "object_labels",
        "lane_labels",
        "drive_report",
        "topic_tables",
        "drive_timeline",
        "scenes",
        "foxglove",
        "catalog",
    ):
        assert "Docs: README" in (specs[name].description or ""), name
    assert "ultralytics" in specs["object_labels"].kinds


def test_loading_the_code_location_imports_no_remote_client_or_model_runtime() -> None:
    """Every run worker imports the code location: the AWS/Kubernetes clients (seconds of start-up) are
    imported only when a step runs on that target, no model runtime is imported at all, and neither are
    the data libraries of the steps (the steps' options models, the Launchpad config, are import-light)."""
    remote = ["boto3", "botocore", "dagster_aws", "dagster_k8s", "kubernetes"]
    runtimes = ["torch", "ultralytics", "onnxruntime"]
    data = ["pandas", "pyarrow", "cv2", "duckdb", "numpy"]
    code = (
        "import sys, rosbag_assets.defs.definitions as d; d.defs.get_repository_def(); "
        f"print([m for m in {remote + runtimes + data!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr[-2000:]


def test_process_drive_forks_steps_from_a_server_that_preloads_what_a_step_imports(tmp_path: Path) -> None:
    """A forked step opens the instance and unpickles its command: without those modules in the fork server,
    each step imported them again (seconds per step, BENCHMARKS.md "Orchestration")."""
    from rosbag_assets.defs.jobs import process_drive

    config = process_drive.executor_def.apply_config_mapping({}).value["config"]
    preload = config["start_method"]["forkserver"]["preload_modules"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    code = (
        f"import sys; import {preload[0]}; "
        "print(sorted(m for m in ('dagster._cli', 'sqlalchemy', 'alembic', 'upath', "
        "'dagster._core.storage.sqlite_storage') if m in sys.modules))"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    loaded = done.stdout.strip()
    expected = "['alembic', 'dagster._cli', 'dagster._core.storage.sqlite_storage', 'sqlalchemy', 'upath']"
    assert loaded == expected, loaded + done.stderr[-2000:]
