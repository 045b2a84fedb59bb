"""The topic/timeline/scenes/catalog/foxglove steps over published data, as the Dagster assets run them.

One module fixture runs the whole chain on the rendered sample drive (ROS1 + MCAP bags with speed and IMU
topics): raw_bags -> extracted_frames -> lane_labels -> object_labels -> topic_tables -> drive_timeline ->
scenes -> catalog -> foxglove, through the same entry point every compute target calls.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
import pytest
from mcap.reader import make_reader

from rosbag_assets.demo import sample_drive as sd
from rosbag_assets.demo.sample_drive import write_sample_drive
from rosbag_assets.io import publish
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.catalog.run import catalog_versions
from rosbag_assets.steps.entrypoint import run_step
from rosbag_assets.steps.search import search
from rosbag_assets.steps.topic_tables.run import read_topic_tables
from rosbag_assets.vision import topic_rows

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
YOLO = DATA / "models" / "yolo11n_int8.tflite"
DRIVE = "sample"
IMAGE_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}


def _step(root: Path, step: str, drive: str | None = DRIVE, **options: Any):
    params = {
        "step": step,
        "drive": drive,
        "source": str(root / "landing" / (drive or "")),
        "output": str(root / "out"),
        "run_id": f"test-{step}",
        "options": options,
    }
    return run_step(params)


def _raw(result, key: str) -> Any:
    return result.metadata[key]["raw_value"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Any]:
    if not YOLO.is_file() or importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("needs the yolo11n int8 TFLite model and ai-edge-litert")
    root = tmp_path_factory.mktemp("catassets")
    write_sample_drive(root / "landing" / DRIVE, seconds=2.0, hz=5.0, width=640, height=360, seed=0)
    rules = root / "rules.yaml"
    rules.write_text("rules:\n  cruising:\n    when: speed_mps > 7.5\n")
    results = {}
    results["raw_bags"] = _step(root, "raw_bags")
    results["extracted_frames"] = _step(root, "extracted_frames")
    results["lane_labels"] = _step(root, "lane_labels", max_frames=8)
    results["object_labels"] = _step(root, "object_labels", weights=str(YOLO), max_frames=8)
    results["topic_tables"] = _step(root, "topic_tables")
    results["drive_timeline"] = _step(root, "drive_timeline")
    results["scenes"] = _step(root, "scenes", rules_file=str(rules))
    results["catalog"] = _step(root, "catalog", drive=None)
    results["foxglove"] = _step(root, "foxglove")
    return {"root": root, "out": LocalStorage(root / "out"), "results": results}


@pytest.mark.slow
def test_topic_tables_hold_every_non_image_message(chain):
    out = chain["out"]
    raw, _ = publish.require_current(out, f"{DRIVE}/raw_bags")
    counts = raw.read_parquet("topics.parquet")
    expected = counts[~counts["msgtype"].isin(IMAGE_TYPES)].groupby("topic")["count"].sum().to_dict()
    _, manifest, tables = read_topic_tables(out, DRIVE)
    assert {sd.SPEED_TOPIC, sd.IMU_TOPIC} <= set(tables)
    assert {t: tab.num_rows for t, tab in tables.items()} == expected
    assert manifest["topics"][sd.IMU_TOPIC]["msgtype"] == sd.IMU_TYPE
    assert "linear_acceleration.x" in tables[sd.IMU_TOPIC].column_names
    result = chain["results"]["topic_tables"]
    assert _raw(result, "published") and _raw(result, "rows") == sum(expected.values())


@pytest.mark.slow
def test_timeline_and_scenes_are_published_with_custom_rules(chain):
    out = chain["out"]
    tl_version, manifest = publish.require_current(out, f"{DRIVE}/drive_timeline")
    timeline = tl_version.read_parquet("timeline.parquet")
    assert (
        manifest["sources"]["speed"].startswith(sd.SPEED_TOPIC) and manifest["sources"]["imu"] == sd.IMU_TOPIC
    )
    assert timeline["speed_mps"].notna().mean() > 0.9 and timeline["frame_key"].notna().any()
    sc_version, sc_manifest = publish.require_current(out, f"{DRIVE}/scenes")
    scenes = sc_version.read_parquet("scenes.parquet")
    assert {"rule", "start_ns", "end_ns", "frame_keys"} <= set(scenes.columns)
    assert "cruising" in sc_manifest["rules"] and "ego_stopped" in sc_manifest["rules"]  # file + defaults
    (cruise,) = scenes[scenes["rule"] == "cruising"].itertuples()  # the sample drives at ~8 m/s throughout
    assert cruise.end_ns - cruise.start_ns >= 1.5e9 and len(cruise.frame_keys) > 0
    assert not (scenes["rule"] == "ego_stopped").any()
    timeline_result, scenes_result = chain["results"]["drive_timeline"], chain["results"]["scenes"]
    assert {c.name: c.passed for c in timeline_result.checks} == {
        "grid_is_regular": True,
        "speed_meets_frames": True,
    }
    assert manifest["rules"]["frame"] == {"method": "asof", "max_gap_ms": 200.0, "smooth_ms": 0.0}
    for result, version, name in [
        (timeline_result, tl_version, "timeline.png"),
        (scenes_result, sc_version, "scenes.png"),
    ]:
        picture = cv2.imread(str(Path(version.uri(name))))
        assert picture is not None and picture.shape[1] == 960
        assert _raw(result, "picture").startswith("![")


@pytest.mark.slow
def test_catalog_is_searchable_and_incremental(chain):
    root, result = chain["root"], chain["results"]["catalog"]
    db = root / "out" / "catalog" / "catalog.duckdb"
    assert _raw(result, "drives_updated") == 1 and _raw(result, "drives_total") == 1
    rows = {r["table"]: r["rows"] for r in _raw(result, "rows_per_table")["records"]}
    assert rows["labels"] > 0 and rows["timeline"] > 0 and rows["topics"] > 0 and rows["scenes"] > 0
    assert str(db) in _raw(result, "search_example")
    hits = search(db, "class_name = 'bus'")
    assert hits.total > 0 and set(hits.rows["drive"]) == {DRIVE}
    assert hits.rows["speed_mps"].notna().all()  # the timeline joined onto the labels
    loaded = catalog_versions(db)[DRIVE]
    for asset in ("raw_bags", "extracted_frames", "object_labels", "lane_labels", "drive_timeline", "scenes"):
        assert loaded[asset] == publish.current(chain["out"], f"{DRIVE}/{asset}")["version"]
    assert {c.name: c.passed for c in result.checks} == {
        "catalog_has_current_versions": True,
        "every_label_searchable_once": True,
    }
    (summary,) = _raw(result, "drives")["records"]
    assert summary["drive"] == DRIVE and summary["labels"] == rows["labels"]
    assert (root / "out" / "catalog" / "labels" / f"drive={DRIVE}" / "part.parquet").is_file()
    again = _step(root, "catalog", drive=None)
    assert _raw(again, "drives_updated") == 0 and _raw(again, "drives_total") == 1
    assert search(db, "class_name = 'bus'").total == hits.total


@pytest.mark.slow
def test_foxglove_mcap_reads_back(chain):
    result = chain["results"]["foxglove"]
    path = Path(_raw(result, "mcap"))
    assert path.name == "drive.mcap" and path.is_file()
    with path.open("rb") as fh:
        summary = make_reader(fh).get_summary()
    schemas = {s.name for s in summary.schemas.values()}
    assert {"foxglove.CompressedImage", "foxglove.ImageAnnotations"} <= schemas
    topics = {c.topic for c in summary.channels.values()}
    assert sd.FRONT_TOPIC in topics and f"{sd.FRONT_TOPIC}/objects" in topics and "/timeline" in topics
    counts = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
    frames, _ = publish.require_current(chain["out"], f"{DRIVE}/extracted_frames")
    index = frames.read_parquet("index.parquet")
    assert counts[sd.FRONT_TOPIC] == (index["topic"] == sd.FRONT_TOPIC).sum() > 0  # every frame, none lost
    assert counts[f"{sd.FRONT_TOPIC}/objects"] == counts[sd.FRONT_TOPIC] and _raw(result, "boxes") > 0
    frame = cv2.imread(str(path.with_name("frame.jpg")))  # the picture: a labelled frame, 640 px wide
    assert frame is not None and frame.shape == (360, 640, 3)  # the sample's 640x360 frames
    assert _raw(result, "frame").startswith(f"![{DRIVE} /camera/")


def test_topic_tables_of_a_real_bag_match_the_inventory(tmp_path):
    bag = DATA / "bags" / "ros1" / "tiny_svo.bag"
    if not bag.is_file():
        pytest.skip("needs /work/shared/data/bags/ros1/tiny_svo.bag")
    drive = "svo"
    (tmp_path / "landing" / drive).mkdir(parents=True)
    shutil.copy(bag, tmp_path / "landing" / drive / bag.name)
    _step(tmp_path, "raw_bags", drive=drive)
    result = _step(tmp_path, "topic_tables", drive=drive)
    out = LocalStorage(tmp_path / "out")
    raw, _ = publish.require_current(out, f"{drive}/raw_bags")
    counts = raw.read_parquet("topics.parquet")
    non_image = counts[~counts["msgtype"].isin(IMAGE_TYPES)]
    assert len(non_image) > 0
    _, _, tables = read_topic_tables(out, drive)
    written = pd.Series({t: tab.num_rows for t, tab in tables.items()}, dtype=int)
    assert written.sort_index().to_dict() == non_image.groupby("topic")["count"].sum().sort_index().to_dict()
    assert _raw(result, "published")
    # the picture: one row per topic (all fit), stored in the published version
    version, _ = publish.require_current(out, f"{drive}/topic_tables")
    picture = cv2.imread(version.uri("rows.png"))
    assert _raw(result, "rows_over_time").startswith(f"![{drive} rows per topic over time](data:image/png")
    assert picture.shape == (topic_rows.TITLE_H + len(written) * topic_rows.ROW_H + topic_rows.AXIS_H, 640, 3)


@pytest.mark.slow
def test_catalog_asset_materializes_through_dagster(chain):
    import dagster as dg

    from rosbag_assets.compute import ComputeTargets, LocalCompute
    from rosbag_assets.defs.catalog import catalog
    from rosbag_assets.defs.resources import DriveStorage

    root = chain["root"]
    storage = DriveStorage(landing_root=str(root / "landing"), output_root=str(root / "out"))
    resources = {"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode="in_process"))}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("drives", [DRIVE])
    result = dg.materialize(
        [catalog],
        resources=resources,
        run_config={"ops": {"catalog": {"config": {"rebuild": True}}}},
        instance=instance,
    )
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["drives_updated"].value == 1 and meta["drives_total"].value == 1  # rebuild reloads all
    assert all(e.passed for e in result.get_asset_check_evaluations())
    db = root / "out" / "catalog" / "catalog.duckdb"
    assert search(db, "class_name = 'bus'").total > 0
    # the drive's partition is deleted in Dagster (its outputs stay): the next update drops its rows
    instance.delete_dynamic_partition("drives", DRIVE)
    result = dg.materialize([catalog], resources=resources, instance=instance)
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["drives_removed"].value == 1 and meta["drives_total"].value == 0
    assert search(db, "class_name = 'bus'").total == 0
    assert not (root / "out" / "catalog" / "labels" / f"drive={DRIVE}" / "part.parquet").exists()
    instance.add_dynamic_partitions("drives", [DRIVE])  # and back, for the tests after this one
    dg.materialize([catalog], resources=resources, instance=instance)
    assert search(db, "class_name = 'bus'").total > 0


def test_catalog_updates_itself_after_a_drive_changes(tmp_path: Path) -> None:
    """The automation sensor runs the catalog once a drive's upstream was materialized and nothing upstream
    is still running; it does not ask again until something else changes."""
    import dagster as dg

    from rosbag_assets.defs.definitions import defs

    sensor = defs.resolve_sensor_def("catalog_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    catalog_key = dg.AssetKey("catalog")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("drives", ["d1", "d2"])
        selection = dg.AssetSelection.assets(catalog_key)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection)
        assert first.get_num_requested(catalog_key) == 0  # nothing materialized yet
        instance.report_runless_asset_event(dg.AssetMaterialization("scenes", partition="d2"))
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=first.cursor
        )
        assert second.get_num_requested(catalog_key) == 1
        third = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=second.cursor
        )
        assert third.get_num_requested(catalog_key) == 0  # handled: no second run for the same change
        instance.report_runless_asset_event(dg.AssetMaterialization("object_labels", partition="d1"))
        fourth = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, cursor=third.cursor
        )
        assert fourth.get_num_requested(catalog_key) == 1


@pytest.mark.slow
def test_catalog_on_s3_is_built_in_a_temp_copy_and_uploaded(chain, moto_server, tmp_path):
    from rosbag_assets.io.storage import storage_from_uri

    moto_server.client("s3").create_bucket(Bucket="cat")
    s3 = storage_from_uri("s3://cat/out", endpoint_url=moto_server.url)
    local = chain["root"] / "out"
    for path in local.rglob("*"):
        if path.is_file() and path.relative_to(local).parts[0] != "catalog":
            s3.upload_file(path, path.relative_to(local).as_posix())
    params = {"step": "catalog", "output": "s3://cat/out", "s3_endpoint_url": moto_server.url, "options": {}}
    first = run_step(params)
    assert _raw(first, "drives_updated") == 1 and _raw(first, "db") == "s3://cat/out/catalog/catalog.duckdb"
    assert s3.exists(f"catalog/labels/drive={DRIVE}/part.parquet")
    assert _raw(first, "search_example").count("aws s3 cp s3://cat/out/catalog/catalog.duckdb") == 1
    s3.download_file("catalog/catalog.duckdb", tmp_path / "catalog.duckdb")
    assert search(tmp_path / "catalog.duckdb", "class_name = 'bus'").total > 0
    assert _raw(run_step(params), "drives_updated") == 0  # the uploaded catalog says nothing changed
