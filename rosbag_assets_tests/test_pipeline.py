"""The four assets through Dagster: in-process and as Pipes subprocesses, local folder and S3 (moto)."""

import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pandas as pd
import pytest
from bagwriting import make_image, write_bag
from conftest import REPO_ROOT, TFLITE_MODEL, shared

from rosbag_assets.compute import ComputeTargets, LocalCompute
from rosbag_assets.defs.drives import extracted_frames, raw_bags
from rosbag_assets.defs.jobs import drive_assets
from rosbag_assets.defs.partitions import drives
from rosbag_assets.defs.resources import DriveStorage
from rosbag_assets.io import publish
from rosbag_assets.io.storage import LocalStorage, storage_from_uri


def materialize(
    assets, drive: str, storage: DriveStorage, mode: str = "in_process", config: dict | None = None
):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(drives.name, [drive])
    return dg.materialize(
        assets,
        partition_key=drive,
        instance=instance,
        resources={"storage": storage, "compute": ComputeTargets(local=LocalCompute(mode=mode))},
        run_config={"ops": config or {}},
        raise_on_error=False,
    )


def read(storage, drive: str, asset: str, name: str) -> pd.DataFrame:
    version, _ = publish.require_current(storage, f"{drive}/{asset}")
    return pd.read_parquet(io.BytesIO(storage.read_bytes(version.key(name))))


def checks_of(result) -> dict[str, bool]:
    return {
        f"{e.asset_key.to_user_string()}.{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["in_process", "subprocess"])
def test_whole_chain_on_sample_drive(small_sample_landing: Path, tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out"
    storage = DriveStorage(landing_root=str(small_sample_landing), output_root=str(out))
    config = {"object_labels": {"config": {"weights": str(shared("models", "yolo11n_int8.tflite"))}}}
    result = materialize(drive_assets, "sample", storage, mode, config)
    assert result.success
    declared = {f"{s.asset_key.to_user_string()}.{s.name}" for a in drive_assets for s in a.check_specs}
    assert set(checks_of(result)) == declared and all(
        checks_of(result).values()
    )  # every check ran and passed

    local = LocalStorage(out)
    frames = read(local, "sample", "extracted_frames", "index.parquet")
    assert frames.groupby("topic").size().to_dict() == {
        "/camera/front/image_raw": 20,
        "/camera/side/image_raw/compressed": 20,
    }
    labels = read(local, "sample", "object_labels", "labels.parquet")
    assert {"bus", "person"} <= set(labels["class_name"])
    assert set(labels["model"]) == {"yolo11n_int8.tflite"} and labels["weights_sha256"].str.len().eq(64).all()
    assert set(labels["frame_key"]) <= set(frames["frame_key"])
    lanes = read(local, "sample", "lane_labels", "lanes.parquet")
    assert len(lanes) and set(lanes["model"]) == {"twinlitenet-bdd100k-v1"}
    assert {"left", "right"} <= set(lanes["side"])
    road = read(local, "sample", "lane_labels", "road.parquet")
    assert (
        set(road["frame_key"]) == set(frames["frame_key"])
        and road["drivable_fraction"].between(0.05, 0.9).all()
    )
    # every box stands somewhere on the road picture: placement comes from the same frames' lanes and mask
    assert labels["on_drivable"].notna().all() and labels["on_drivable"].between(0, 1).all()
    ego = labels[labels["in_ego_lane"].notna()]
    assert len(ego) and ego["lateral_offset"].notna().all()
    anonymized = read(local, "sample", "anonymized_frames", "index.parquet")
    assert set(anonymized["frame_key"]) == set(frames["frame_key"]) and anonymized["faces"].sum() > 0

    mats = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert mats["raw_bags"]["bags"].value == 2
    assert mats["extracted_frames"]["frames"].value == 40
    assert mats["object_labels"]["model"].value == "yolo11n_int8.tflite"
    assert mats["object_labels"]["preview"].value.startswith("![")
    assert mats["topic_tables"]["rows"].value > 0 and mats["scenes"]["published"].value
    assert mats["foxglove"]["mcap"].value.endswith("drive.mcap")
    preview = mats["lane_labels"]["preview_uri"].value
    assert cv2.imread(preview) is not None


def test_unavailable_weights_fail_clearly_or_fall_back(
    small_sample_landing: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("ROSBAG_ASSETS_WEIGHTS_CACHE", str(tmp_path / "empty-cache"))
    storage = DriveStorage(landing_root=str(small_sample_landing), output_root=str(tmp_path / "out"))
    assert materialize([raw_bags, extracted_frames], "sample", storage).success
    from rosbag_assets.defs.labels import object_labels

    failed = materialize(
        [object_labels], "sample", storage, config={"object_labels": {"config": {"allow_fallback": False}}}
    )
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "yolo11n.pt" in str(failure.step_failure_data.error)
    fallback = materialize(
        [object_labels], "sample", storage, config={"object_labels": {"config": {"allow_fallback": True}}}
    )
    assert fallback.success
    (mat,) = fallback.get_asset_materialization_events()
    assert mat.materialization.metadata["model"].value == "yolo11n_int8.tflite"
    assert "yolo11n.pt" in mat.materialization.metadata["fallback_reason"].value
    labels = read(LocalStorage(tmp_path / "out"), "sample", "object_labels", "labels.parquet")
    assert set(labels["model"]) == {"yolo11n_int8.tflite"}
    assert {"bus", "person"} <= set(labels["class_name"])  # a real COCO detector, not a person-only fallback


@pytest.mark.slow
def test_yolo_finds_the_bus_in_a_bag(tmp_path: Path) -> None:
    """Ultralytics' real bus.jpg written into a bag, extracted and labelled by the real COCO YOLO11n."""
    import ultralytics

    model = shared("models", "yolo11n_int8.tflite")
    bus = cv2.imread(str(Path(ultralytics.__file__).parent / "assets" / "bus.jpg"))
    h, w = bus.shape[:2]
    drive = tmp_path / "landing" / "bus"
    drive.mkdir(parents=True)
    t0 = 1_700_000_000_000_000_000
    write_bag(
        drive / "bus.bag",
        "ros1",
        {"/cam": [(t0, make_image("ros1", "bgr8", h, w, w * 3, bus.tobytes(), stamp_ns=t0))]},
    )
    storage = DriveStorage(landing_root=str(tmp_path / "landing"), output_root=str(tmp_path / "out"))
    from rosbag_assets.defs.labels import object_labels

    result = materialize(
        [raw_bags, extracted_frames, object_labels],
        "bus",
        storage,
        config={"object_labels": {"config": {"weights": str(model)}}},
    )
    assert result.success and all(checks_of(result).values())
    labels = read(LocalStorage(tmp_path / "out"), "bus", "object_labels", "labels.parquet")
    buses = labels[labels["class_name"] == "bus"]
    assert len(buses) == 1 and buses["confidence"].iloc[0] > 0.8
    assert (labels["class_name"] == "person").sum() >= 3
    assert labels[["x1n", "y1n", "x2n", "y2n"]].stack().between(0, 1).all()


def test_s3_landing_and_output_same_code_path(moto_server, tmp_path: Path) -> None:
    moto_s3 = moto_server.url
    """raw bags in one bucket, outputs in another, through the Pipes subprocess like a container would."""
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket="raw")
    s3.create_bucket(Bucket="out")
    for bag in ("get_images_tiny.bag", "duckietown_sim_compressed.bag"):
        s3.upload_file(str(shared("bags", "ros1", bag)), "raw", f"landing/drive-s3/{bag}")
    storage = DriveStorage(
        landing_root="s3://raw/landing", output_root="s3://out/assets", s3_endpoint_url=moto_s3
    )
    result = materialize([raw_bags, extracted_frames], "drive-s3", storage, mode="subprocess")
    assert result.success
    out = storage_from_uri("s3://out/assets", endpoint_url=moto_s3)
    index = read(out, "drive-s3", "extracted_frames", "index.parquet")
    assert index.groupby("topic").size().to_dict() == {
        "/dvs/image_raw": 4,
        "/dvs1/image_raw": 3,
        "/gym/observations": 1,
    }
    assert index["path"].str.startswith("s3://out/assets/drive-s3/extracted_frames/versions/").all()
    row = index.iloc[0]
    key = row["path"].removeprefix("s3://out/")
    assert key.endswith(".tar")  # frames live in tar shards; the index holds each one's byte range
    first, last = int(row["offset"]), int(row["offset"]) + int(row["bytes"]) - 1
    payload = s3.get_object(Bucket="out", Key=key, Range=f"bytes={first}-{last}")["Body"].read()
    assert cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED) is not None


def test_definitions_validate(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "ROSBAG_ASSETS_LANDING_ROOT": str(tmp_path / "landing"),
        "ROSBAG_ASSETS_OUTPUT_ROOT": str(tmp_path / "out"),
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tflite_model_is_present_for_the_slow_tests() -> None:
    """The real model the slow tests use must be where SOURCES.md says (skips only when shared/ is absent)."""
    assert shared("models", "yolo11n_int8.tflite") == TFLITE_MODEL


def test_launchpad_config_is_the_step_options_model() -> None:
    """One model per step: the Launchpad config classes are the steps' own options models, every field is
    explained in the UI, and what the UI offers is exactly what the step accepts."""
    from rosbag_assets.defs.drives import ExtractedFramesConfig
    from rosbag_assets.defs.labels import LaneLabelsConfig, ObjectLabelsConfig
    from rosbag_assets.steps.extracted_frames import ExtractedFramesOptions
    from rosbag_assets.steps.lane_labels import LaneLabelsOptions
    from rosbag_assets.steps.object_labels import ObjectLabelsOptions

    for config, options in [
        (ExtractedFramesConfig, ExtractedFramesOptions),
        (ObjectLabelsConfig, ObjectLabelsOptions),
        (LaneLabelsConfig, LaneLabelsOptions),
    ]:
        assert issubclass(config, options)
        schema = config.to_config_schema().as_field().config_type.fields
        assert set(schema) == set(options.model_fields), config
        undocumented = [name for name, field in options.model_fields.items() if not field.description]
        assert not undocumented, f"{options.__name__}: fields without a description: {undocumented}"
        options.model_validate(config().model_dump())


def test_a_mistyped_or_invalid_option_fails_the_step_before_any_work(tmp_path: Path) -> None:
    """A params file or Pipes extras with a typo fails naming the field, and nothing is written."""
    from rosbag_assets.io.storage import LocalStorage
    from rosbag_assets.steps.extracted_frames import run_extracted_frames

    out = LocalStorage(tmp_path / "out")
    for options, field in [({"jpeg_quality": 0}, "jpeg_quality"), ({"jpeg_qualty": 80}, "jpeg_qualty")]:
        with pytest.raises(ValueError, match=field):
            run_extracted_frames(drive="d", source=LocalStorage(tmp_path), output=out, options=options)
    assert not (tmp_path / "out").exists()


def test_only_defs_and_compute_import_dagster() -> None:
    """The layout's promise: steps, io, vision and demo are plain Python (the entry point speaks dagster-pipes)."""
    import re

    package = REPO_ROOT / "rosbag_assets"
    offenders = []
    for path in package.rglob("*.py"):
        top = path.relative_to(package).parts[0]
        if top in ("defs", "compute"):
            continue
        for line in path.read_text().splitlines():
            if re.match(r"\s*(import dagster\b|from dagster(\.| import))", line):
                offenders.append(f"{path.relative_to(REPO_ROOT)}: {line.strip()}")
    assert not offenders, offenders
