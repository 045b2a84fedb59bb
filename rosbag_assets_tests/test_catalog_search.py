"""catalog upserts one drive at a time (also from concurrent processes); search finds the expected frames."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import shared
from test_timeline_scenes import CAMERA, EPOCH, S, synthetic_drive, timeline_of

from rosbag_assets.steps.catalog.db import upsert_drive
from rosbag_assets.steps.catalog.schema import CatalogError, connect
from rosbag_assets.steps.scenes import find_scenes
from rosbag_assets.steps.search import SearchError, main, search, write_sheet


def drive_tables(name: str, epoch: int = EPOCH) -> dict[str, pd.DataFrame]:
    d = synthetic_drive(name, epoch=epoch)
    for key in ("frames", "labels", "lanes"):
        d[key]["drive"] = name
    timeline = timeline_of(d, drive=name)
    bags = pd.DataFrame({"bag": ["b0"], "bytes": [123], "start_ns": [epoch], "end_ns": [epoch + 10 * S]})
    topics = pd.DataFrame({"bag": "b0", "topic": list(d["types"]), "msgtype": list(d["types"].values())})
    return {
        "bags": bags,
        "topics": topics,
        "frames": d["frames"],
        "labels": d["labels"],
        "lanes": d["lanes"],
        "timeline": timeline,
        "scenes": find_scenes(timeline),
    }


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[str, pd.DataFrame]]:
    return {name: drive_tables(name, EPOCH + i * 3600 * S) for i, name in enumerate(["d1", "d2"])}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tables: dict) -> Path:
    db = tmp_path_factory.mktemp("catalog") / "catalog.duckdb"
    for name, t in tables.items():
        upsert_drive(db, name, t)
    return db


@pytest.fixture
def catalog(built: Path, tmp_path: Path) -> Path:
    """A private copy of the two-drive catalog (upserts closed it, so the file is complete)."""
    db = tmp_path / "catalog.duckdb"
    shutil.copyfile(built, db)
    return db


def rows(db: Path, sql: str) -> list[tuple]:
    con = connect(db, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_upsert_replaces_only_that_drive(catalog: Path, tables: dict, tmp_path: Path) -> None:
    before_d2 = rows(catalog, "SELECT * FROM labels WHERE drive = 'd2' ORDER BY frame_key, class_name")
    labels = tables["d1"]["labels"]
    fewer = labels[labels["class_name"] == "car"]
    report = upsert_drive(catalog, "d1", {"labels": fewer}, export_root=str(tmp_path / "export"))
    assert report.rows["labels"] == len(fewer) and report.rows["frames"] == 100  # frames untouched
    assert rows(catalog, "SELECT drive, count(*) FROM labels GROUP BY drive ORDER BY drive") == [
        ("d1", 20),
        ("d2", 40),
    ]
    assert (
        rows(catalog, "SELECT * FROM labels WHERE drive = 'd2' ORDER BY frame_key, class_name") == before_d2
    )
    assert rows(catalog, "SELECT drive, labels_rows, hits_rows, frames_rows FROM drives ORDER BY drive") == [
        ("d1", 20, 20, 100),
        ("d2", 40, 40, 100),
    ]
    # hits follow the labels: d1 has no person hit any more, d2 still has
    assert rows(catalog, "SELECT drive, count(*) FROM hits WHERE class_name = 'person' GROUP BY drive") == [
        ("d2", 20)
    ]
    part = tmp_path / "export" / "catalog" / "labels" / "drive=d1" / "part.parquet"
    assert len(pd.read_parquet(part)) == 20
    back = duckdb.sql(
        f"SELECT drive, count(*) FROM read_parquet('{tmp_path}/export/catalog/drives/*/part.parquet', "
        "hive_partitioning = true) GROUP BY drive"
    ).fetchall()
    assert back == [("d1", 1)]


def test_new_columns_are_added_and_bad_types_refused(catalog: Path, tables: dict) -> None:
    labels = tables["d2"]["labels"].assign(track_id=7)
    upsert_drive(catalog, "d2", {"labels": labels})
    assert rows(catalog, "SELECT drive, count(track_id) FROM labels GROUP BY drive ORDER BY drive") == [
        ("d1", 0),
        ("d2", 40),
    ]
    assert rows(catalog, "SELECT count(track_id) FROM hits")[0][0] == 40  # searchable too
    bad = tables["d1"]["labels"].assign(confidence="high")
    with pytest.raises(CatalogError, match="drive d1, table labels, column confidence"):
        upsert_drive(catalog, "d1", {"frames": tables["d1"]["frames"].head(3), "labels": bad})
    assert rows(catalog, "SELECT count(*) FROM frames WHERE drive = 'd1'") == [(100,)]  # rolled back
    with pytest.raises(CatalogError, match="rows of other drives"):
        upsert_drive(catalog, "d1", {"labels": tables["d2"]["labels"]})
    with pytest.raises(ValueError, match="drive name"):
        upsert_drive(catalog, "../d1", {"labels": tables["d1"]["labels"]})
    with pytest.raises(CatalogError, match="unknown catalog tables"):
        upsert_drive(catalog, "d1", {"label": tables["d1"]["labels"]})


WRITER = """
import sys
import pandas as pd
from rosbag_assets.steps.catalog.db import upsert_drive

db, prefix = sys.argv[1], sys.argv[2]
for k in range(2):
    frames = pd.DataFrame({"frame_key": [f"f{i}" for i in range(50)], "stamp_ns": range(50), "topic": "/cam"})
    labels = frames.assign(class_name="car", confidence=0.5)
    report = upsert_drive(db, f"{prefix}{k}", {"frames": frames, "labels": labels})
    print(f"{report.lock_wait_s:.3f}")
"""


def test_concurrent_writers_wait_for_each_other(tmp_path: Path) -> None:
    db = str(tmp_path / "catalog.duckdb")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db, prefix], env=env, stdout=subprocess.PIPE, text=True
        )
        for prefix in ("a", "b")
    ]
    waits = [float(w) for p in procs for w in p.communicate(timeout=120)[0].split()]
    assert [p.returncode for p in procs] == [0, 0]
    assert rows(Path(db), "SELECT count(DISTINCT drive), count(*) FROM frames") == [(4, 200)]
    assert rows(Path(db), "SELECT count(*), sum(hits_rows) FROM drives") == [(4, 200)]
    assert len(waits) == 4


def test_search_finds_the_frames(catalog: Path) -> None:
    result = search(catalog, "class_name = 'person' AND in_ego_lane AND speed_mps > 5", limit=100)
    assert result.total == 20 and len(result.rows) == 20
    assert sorted(set(result.rows["drive"])) == ["d1", "d2"]
    d1 = result.rows[result.rows["drive"] == "d1"]
    assert list(d1["stamp_ns"]) == [EPOCH + S + k * S // 10 for k in range(10)]
    assert (d1["topic"] == CAMERA).all() and (d1["path"] == "/nowhere/shard-00000.tar").all()
    assert list(d1["offset"]) == [1000 * (10 + k) for k in range(10)]
    # the person beside the road shows while stopped
    stopped = search(catalog, "class_name = 'person' AND NOT in_ego_lane AND speed_mps < 0.2")
    assert stopped.total == 20 and (stopped.rows["lateral_offset"] == 3.5).all()
    limited = search(catalog, "confidence > 0.5", limit=5)
    assert limited.total == 80 and len(limited.rows) == 5


def test_search_by_scene(catalog: Path) -> None:
    frames = search(catalog, scene="ego_stopped", limit=1000)
    assert frames.total == 2 * 31  # 5.0 s to 8.0 s at 10 Hz, both drives
    d1 = frames.rows[frames.rows["drive"] == "d1"]["stamp_ns"]
    assert (d1.min(), d1.max()) == (EPOCH + 5 * S, EPOCH + 8 * S)
    people = search(catalog, "class_name = 'person'", scene="ego_stopped")
    assert people.total == 20 and set(people.rows["scene_id"]) == {
        f"d1:ego_stopped:{EPOCH + 5 * S}",
        f"d2:ego_stopped:{EPOCH + 3600 * S + 5 * S}",
    }


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("true; DROP TABLE labels", "';' is not allowed"),
        ("drive IN (SELECT drive FROM drives)", "subqueries are not allowed"),
        ("speed > 3", "unknown column 'speed'"),
        ("class_name = 'person') UNION (SELECT 1", "not a WHERE expression"),
        ("confidence >", "not a WHERE expression"),
    ],
)
def test_search_refuses_anything_but_a_where_expression(catalog: Path, where: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        search(catalog, where)


def test_search_connection_cannot_write_or_read_files(catalog: Path) -> None:
    con = connect(catalog, read_only=True)
    try:
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM labels")
        with pytest.raises(duckdb.Error, match="disabled by config"):
            con.execute("SELECT * FROM read_csv('/etc/hostname')")
    finally:
        con.close()


def test_cli_prints_hits_and_writes_a_sheet_of_real_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Frames stored as files (the index's `files` layout) are the real BDD100K dash-cam JPEGs."""
    images = sorted(shared("images", "bdd100k").glob("*.jpg"))[:3]
    stamps = [EPOCH + k * S for k in range(len(images))]
    frames = pd.DataFrame(
        {
            "bag": "b0",
            "topic": CAMERA,
            "stamp_ns": stamps,
            "frame_key": [p.name for p in images],
            "path": [str(p) for p in images],
            "offset": 0,
            "bytes": [p.stat().st_size for p in images],
        }
    )
    labels = pd.DataFrame(
        {
            "bag": "b0",
            "topic": CAMERA,
            "stamp_ns": stamps,
            "frame_key": [p.name for p in images],
            "class_id": 2,
            "class_name": ["car", "car", "truck"],
            "confidence": [0.9, 0.4, 0.8],
            "x1": 500.0,
            "y1": 300.0,
            "x2": 800.0,
            "y2": 500.0,
        }
    )
    db = tmp_path / "real.duckdb"
    upsert_drive(db, "bdd", {"frames": frames, "labels": labels})
    sheet = tmp_path / "sheet.jpg"
    code = main(["class_name = 'car' AND confidence > 0.5", "--db", str(db), "--sheet", str(sheet)])
    out, err = capsys.readouterr()
    assert code == 0 and "1 matches" in err
    (line,) = out.splitlines()
    assert line.startswith("bdd 2024-05-01T10:00:00.000Z /camera/front/image_raw") and images[0].name in line
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] == 320  # one tile
    tile = cv2.resize(cv2.imread(str(images[0])), (320, 180))
    assert np.abs(img[:150].astype(int) - tile[:150].astype(int)).mean() < 40  # the real frame, boxed
    assert main(["speed_mps > 3", "--db", str(db)]) == 2  # no timeline in this catalog: unknown column
    assert "unknown column 'speed_mps'" in capsys.readouterr().err
    n = write_sheet(db, search(db, "true").rows, tmp_path / "all.jpg")
    assert n == 3


def test_a_first_drive_without_scenes_or_labels_does_not_fix_wrong_types(
    tmp_path: Path, tables: dict
) -> None:
    db = tmp_path / "catalog.duckdb"
    quiet = find_scenes(tables["d1"]["timeline"].head(0))
    empty_labels = tables["d1"]["labels"].head(0)
    upsert_drive(
        db, "quiet", {"scenes": quiet, "labels": empty_labels, "frames": tables["d1"]["frames"].head(0)}
    )
    upsert_drive(db, "d1", tables["d1"])
    assert rows(
        db, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'scenes' AND column_name = 'start_ns'"
    ) == [("BIGINT",)]
    assert search(db, scene="person_in_ego_lane").total == 10
    assert rows(db, "SELECT drive, labels_rows, scenes_rows FROM drives ORDER BY drive") == [
        ("d1", 40, 6),
        ("quiet", 0, 0),
    ]


def test_sample_drive_from_bags_to_search(small_sample_landing: Path, tmp_path: Path) -> None:
    """The generated sample drive's real bags and extracted tar shards: timeline, catalog, search, sheet."""
    from rosbags.highlevel import AnyReader

    from rosbag_assets.demo import sample_drive as sd
    from rosbag_assets.io import frames as fr
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.drive_timeline import build_timeline
    from rosbag_assets.steps.extracted_frames import run_extracted_frames
    from rosbag_assets.steps.raw_bags import run_raw_bags

    source, out = LocalStorage(small_sample_landing / "sample"), LocalStorage(tmp_path / "out")
    run_raw_bags(drive="sample", source=source, output=out)
    run_extracted_frames(drive="sample", source=source, output=out)
    _, index = fr.committed_frames(out, "sample")
    fields = {
        sd.SPEED_TOPIC: {"twist.linear.x": "twist.linear.x", "twist.linear.y": "twist.linear.y"},
        sd.IMU_TOPIC: {
            f"{a}.{x}": f"{a}.{x}" for a in ("linear_acceleration", "angular_velocity") for x in "xyz"
        },
    }
    topics: dict[str, list[dict]] = {t: [] for t in fields}
    with AnyReader([small_sample_landing / "sample" / sd.ROS1_BAG]) as reader:
        conns = [c for c in reader.connections if c.topic in fields]
        for conn, log_ns, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            row = {
                "log_time_ns": log_ns,
                "header_stamp_ns": msg.header.stamp.sec * S + msg.header.stamp.nanosec,
            }
            for name in fields[conn.topic]:
                value = msg
                for part in name.split("."):
                    value = getattr(value, part)
                row[name] = value
            topics[conn.topic].append(row)
    front = index[index["topic"] == sd.FRONT_TOPIC]
    labels = front[["bag", "topic", "stamp_ns", "frame_key"]].assign(
        class_id=0,
        class_name="person",
        confidence=0.9,
        x1=10.0,
        y1=10.0,
        x2=100.0,
        y2=200.0,
        in_ego_lane=True,
    )
    types = {sd.SPEED_TOPIC: sd.SPEED_TYPE, sd.IMU_TOPIC: sd.IMU_TYPE}
    result = build_timeline(
        "sample",
        {t: pd.DataFrame(r) for t, r in topics.items()},
        topic_types=types,
        labels=labels,
        frames=index,
    )
    tl = result.table
    assert (
        result.sources["speed"] == f"{sd.SPEED_TOPIC} (twist)" and result.sources["camera"] == sd.FRONT_TOPIC
    )
    np.testing.assert_allclose(tl["speed_mps"], sd.EGO_SPEED_MPS + 0.2 * np.sin(0.5 * tl["t_s"]), atol=1e-6)
    np.testing.assert_allclose(tl["yaw_rate"].iloc[1:-1], 0.1 * np.cos(0.9 * tl["t_s"].iloc[1:-1]), atol=2e-3)
    assert (tl["persons"] == 1).all() and tl["person_in_ego_lane"].all()

    db = tmp_path / "catalog.duckdb"
    upsert_drive(db, "sample", {"frames": index, "labels": labels, "timeline": tl, "scenes": find_scenes(tl)})
    hits = search(db, "person_in_ego_lane AND speed_mps > 8.05", limit=100)
    # 8 + 0.2 sin(t/2) > 8.05 from t = 0.505 s: the frames at 0.6-0.9 s, of both bags (ROS1 and MCAP)
    start = tl["t_ns"].iloc[0]
    assert hits.total == 8 and sorted(set(hits.rows["stamp_ns"] - start)) == [
        k * S // 10 for k in (6, 7, 8, 9)
    ]
    assert {b.rstrip("/") for b in hits.rows["bag"]} == {sd.ROS1_BAG, sd.ROS2_BAG}
    sheet = tmp_path / "sheet.jpg"
    assert write_sheet(db, hits.rows, sheet, max_frames=4) == 4  # read from the tar shards by byte range
    assert cv2.imread(str(sheet)).shape[:2] == (2 * 180, 3 * 320)  # four 320-px tiles, three to a row


def publish_drive(out, drive: str, tables: dict[str, pd.DataFrame], assets: tuple[str, ...] = ()) -> None:
    """Commit each upstream asset of a drive with the file the catalog reads from it."""
    from rosbag_assets.io import publish
    from rosbag_assets.steps.catalog.run import SOURCES

    for asset in assets or tuple(dict.fromkeys(a for a, _ in SOURCES.values())):
        draft = publish.begin(out, f"{drive}/{asset}")
        for name, (source, file) in SOURCES.items():
            if source == asset:
                draft.write_parquet(file, tables.get(name, pd.DataFrame({"bag": ["b0"]})))
        draft.commit({"drive": drive})


def test_catalog_step_reloads_changed_drives_and_drops_gone_ones(tmp_path: Path, tables: dict) -> None:
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.catalog.run import run_catalog

    out = LocalStorage(tmp_path / "out")
    db = tmp_path / "out" / "catalog" / "catalog.duckdb"
    for name in ("d1", "d2"):
        publish_drive(out, name, tables[name])
    publish_drive(out, "d3", drive_tables("d3", EPOCH + 7200 * S))

    def raw(result, key):
        return result.metadata[key]["raw_value"]

    def updated_at(drive: str):
        return rows(db, f"SELECT updated_at FROM drives WHERE drive = '{drive}'")[0][0]

    first = run_catalog(output=out)
    assert raw(first, "drives_updated") == 3 and raw(first, "drives_total") == 3
    assert all(c.passed for c in first.checks)
    (first_picture,) = (tmp_path / "out" / "catalog" / "overviews").glob("*.png")
    _assert_overview(first, first_picture, db)
    d2_loaded = updated_at("d2")
    # a new labels version of d1 only: d1 is reloaded, d2 is not touched
    publish_drive(out, "d1", {"labels": tables["d1"]["labels"].head(7)}, assets=("object_labels",))
    second = run_catalog(output=out)
    assert raw(second, "updated") == ["d1"] and updated_at("d2") == d2_loaded
    # each update keeps its own picture: the first materialization still shows the catalog as it was then
    assert first_picture.is_file() and len(list(first_picture.parent.glob("*.png"))) == 2
    assert rows(db, "SELECT drive, count(*) FROM hits GROUP BY drive ORDER BY drive") == [
        ("d1", 7),
        ("d2", 40),
        ("d3", 40),
    ]
    # d2's outputs are gone (deleted from storage): its rows and Parquet exports go
    assert (tmp_path / "out" / "catalog" / "labels" / "drive=d2" / "part.parquet").is_file()
    shutil.rmtree(tmp_path / "out" / "d2")
    third = run_catalog(output=out)
    assert raw(third, "removed") == ["d2"] and raw(third, "drives_updated") == 0
    assert rows(db, "SELECT DISTINCT drive FROM frames ORDER BY drive") == [("d1",), ("d3",)]
    assert rows(db, "SELECT count(*) FROM scene_frames WHERE drive = 'd2'") == [(0,)]
    assert not (tmp_path / "out" / "catalog" / "labels" / "drive=d2").exists()
    # d3's partition was deleted in Dagster (outputs still there): the asset passes the partitions left
    fourth = run_catalog(output=out, drives=["d1"])
    assert raw(fourth, "removed") == ["d3"] and raw(fourth, "drives_total") == 1
    assert all(c.passed for c in fourth.checks)
    # an upstream that is no longer committed takes its rows with it on the next reload
    (tmp_path / "out" / "d1" / "scenes" / "CURRENT.json").unlink()
    fifth = run_catalog(output=out, drives=["d1"])
    assert raw(fifth, "updated") == ["d1"] and rows(db, "SELECT count(*) FROM scenes") == [(0,)]
    assert rows(db, "SELECT scenes_version FROM drives") == [(None,)]


def test_catalog_step_loads_the_other_drives_when_one_cannot_be_loaded(tmp_path: Path, tables: dict) -> None:
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.catalog.run import run_catalog

    out = LocalStorage(tmp_path / "out")
    publish_drive(out, "d1", tables["d1"])
    bad = tables["d2"] | {"labels": tables["d2"]["labels"].assign(confidence="high")}
    publish_drive(out, "d2", bad)
    result = run_catalog(output=out)
    checks = {c.name: c for c in result.checks}
    assert not checks["catalog_has_current_versions"].passed
    assert checks["catalog_has_current_versions"].metadata["missing"]["raw_value"] == ["d2"]
    assert "column confidence" in result.metadata["not_loaded"]["raw_value"]["d2"]
    assert result.metadata["updated"]["raw_value"] == ["d1"]
    assert search(tmp_path / "out" / "catalog" / "catalog.duckdb", "true").total == 40


def test_catalog_pictures_are_one_per_update_and_only_the_latest_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A served output root links each update's own picture (a browser never shows a cached older one under
    a reused address); older ones, with their inline copies, are pruned."""
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps import report
    from rosbag_assets.steps.catalog import overview

    monkeypatch.setenv(report.OUTPUT_URL_ENV, "http://127.0.0.1:3001")
    out = LocalStorage(tmp_path / "out")
    shown = [{"drive": f"d{i}", "duration_s": 10.0, "classes": {"person": (0, i + 1)}} for i in range(3)]
    keys = []
    for total in range(3, 8):
        png, key = overview.store_overview(out, shown, total)
        keys.append(key)
        value = report.picture(png, "drives", key, "image/png", out)["raw_value"]
        assert value.endswith(f"(http://127.0.0.1:3001/{key})")  # the link opens this update's picture
        assert out.exists(report.inline_key(key))
    assert len(set(keys)) == 5  # the totals differ, so do the pictures and their names
    deleted = overview.prune_overviews(out, keep=2)
    assert sorted(deleted) == sorted(k for key in keys[:3] for k in (key, report.inline_key(key)))
    left = sorted(f.key for f in out.list_files(overview.OVERVIEW_DIR))
    assert left == sorted(k for key in keys[3:] for k in (key, report.inline_key(key)))


def test_search_starts_without_pandas_or_opencv() -> None:
    """On the command line most of a search's second is starting Python: the module imports only DuckDB."""
    code = (
        "import sys, rosbag_assets.cli, rosbag_assets.steps.search; "
        "print(sorted(m for m in ('pandas', 'cv2', 'pyarrow', 'dagster') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _assert_overview(result, path: Path, db: Path) -> None:
    """The catalog's picture: one row per drive, latest recorded first, each with its class-coloured bar."""
    import cv2

    from rosbag_assets.steps.catalog.run import overview_rows
    from rosbag_assets.vision import catalog_chart as chart

    assert result.metadata["overview"]["raw_value"].startswith("![drives in the catalog](data:image/png")
    shown = overview_rows(db, 10)
    assert [d["drive"] for d in shown] == ["d3", "d2", "d1"]  # started 2 h, 1 h, 0 h after EPOCH
    assert [d["duration_s"] for d in shown] == [10.0] * 3
    labels = dict(rows(db, "SELECT drive, count(*) FROM labels GROUP BY drive"))
    assert {d["drive"]: sum(n for _, n in d["classes"].values()) for d in shown} == labels
    assert shown[0]["classes"]["person"][0] == 0
    picture = cv2.imread(str(path))
    assert picture.shape == (chart.TITLE_H + chart.LEGEND_H + 3 * chart.ROW_H + chart.MARGIN, 640, 3)
    for i in range(3):
        bar = picture[chart.TITLE_H + chart.LEGEND_H + i * chart.ROW_H + chart.ROW_H // 2, chart.NAME_W :]
        assert (bar.astype(int).max(axis=1) - bar.min(axis=1) > 60).sum() > 20  # coloured, not grey
    # bounded: only the latest few are queried and drawn, however many the catalog holds
    assert [d["drive"] for d in overview_rows(db, 2)] == ["d3", "d2"]
    two = chart.draw_catalog_overview(overview_rows(db, 2), total=5000)
    assert two.shape[0] == chart.TITLE_H + chart.LEGEND_H + 2 * chart.ROW_H + chart.MARGIN
