"""`anonymized_frames` on the rendered sample drive: raw_bags -> extracted_frames -> object_labels -> here.

The sample drive shows Ultralytics' bus and zidane photos, so CenterFace has real faces to hide.
"""

from __future__ import annotations

import importlib.util
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rosbag_assets.demo.sample_drive import write_sample_drive
from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.anonymized_frames import (
    ANON_COLUMNS,
    AnonymizedFramesOptions,
    choose_frames,
    run_anonymized_frames,
)
from rosbag_assets.steps.extracted_frames import run_extracted_frames
from rosbag_assets.steps.object_labels import run_object_labels
from rosbag_assets.steps.raw_bags import run_raw_bags
from rosbag_assets.vision.anonymize import AnonymizeOptions

YOLO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "models" / "yolo11n_int8.tflite"
DRIVE = "sample"
MAX_FRAMES = 6


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root holding committed raw_bags, extracted_frames and object_labels of the sample drive."""
    if not YOLO.is_file() or importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("needs the yolo11n int8 TFLite model and ai-edge-litert")
    root = tmp_path_factory.mktemp("anon")
    write_sample_drive(root / "landing" / DRIVE, seconds=1.0, hz=4.0, width=640, height=360, seed=0)
    source, out = LocalStorage(root / "landing" / DRIVE), LocalStorage(root / "out")
    run_raw_bags(drive=DRIVE, source=source, output=out)
    run_extracted_frames(drive=DRIVE, source=source, output=out)
    run_object_labels(drive=DRIVE, output=out, options={"weights": str(YOLO), "max_frames": 8})
    return root / "out"


@pytest.fixture(scope="module")
def anonymized(labelled: Path) -> tuple[object, pd.DataFrame, pd.DataFrame]:
    out = LocalStorage(labelled)
    result = run_anonymized_frames(drive=DRIVE, output=out, options={"max_frames": MAX_FRAMES})
    version, _ = publish.require_current(out, f"{DRIVE}/anonymized_frames")
    return result, version.read_parquet("index.parquet"), version.read_parquet("regions.parquet")


def test_options_are_documented_strict_and_map_onto_the_anonymizer() -> None:
    fields = AnonymizedFramesOptions.model_fields
    assert all(f.description for f in fields.values()), [n for n, f in fields.items() if not f.description]
    with pytest.raises(ValueError, match="extra"):
        AnonymizedFramesOptions.model_validate({"blur": True})
    assert AnonymizedFramesOptions().anonymize_options() == AnonymizeOptions()
    assert AnonymizedFramesOptions(method="pixelate", carry_frames=0).anonymize_options().method == "pixelate"
    assert AnonymizedFramesOptions().jpeg_quality == 95


def test_max_frames_keeps_consecutive_frames_per_bag_and_topic() -> None:
    index = pd.DataFrame(
        {
            "bag": ["a"] * 6 + ["b"] * 2,
            "topic": ["/f", "/f", "/f", "/s", "/s", "/s", "/f", "/f"],
            "stamp_ns": [3, 1, 2, 1, 2, 3, 1, 2],
            "frame_key": list("abcdefgh"),
            "format": ["jpg"] * 7 + ["png"],
            "encoding": ["rgb8"] * 7 + ["16UC1"],  # the depth frame is never chosen
        }
    )
    chosen = choose_frames(index, None, 4)
    assert list(zip(chosen["bag"], chosen["topic"], chosen["stamp_ns"], strict=True)) == [
        ("a", "/f", 1),
        ("a", "/f", 2),
        ("a", "/s", 1),
        ("a", "/s", 2),
    ]


@pytest.mark.slow
def test_publishes_every_chosen_frame_in_extracted_layout(labelled: Path, anonymized) -> None:
    result, index, _ = anonymized
    extracted = frames.committed_frames(LocalStorage(labelled), DRIVE)[1].set_index("frame_key")
    assert result.metadata["published"]["raw_value"] is True
    assert [c.passed for c in result.checks if c.name == "every_frame_anonymized"] == [True]
    assert len(index) == MAX_FRAMES == result.metadata["frames"]["raw_value"]
    assert list(index.columns) == ANON_COLUMNS
    assert set(index["frame_key"]) <= set(extracted.index)  # labels join unchanged
    assert (index["format"].to_numpy() == extracted.loc[index["frame_key"], "format"].to_numpy()).all()
    for shard, rows in index.groupby("path"):
        with tarfile.open(shard) as tar:
            assert set(rows["frame_key"]) <= set(tar.getnames())
    assert result.metadata["preview"]["raw_value"].startswith("![")
    models = {r["model"]: r for r in result.metadata["models"]["raw_value"]["records"]}
    assert {"centerface", "ppocr-det"} <= set(models) and all(len(m["sha256"]) == 64 for m in models.values())


@pytest.mark.slow
def test_face_pixels_are_hidden_and_the_rest_kept(labelled: Path, anonymized) -> None:
    _, index, regions = anonymized
    extracted = frames.committed_frames(LocalStorage(labelled), DRIVE)[1].set_index("frame_key")
    faces = regions[regions["kind"] == "face"]
    assert len(faces) >= 1 and index["faces"].sum() == len(faces)
    assert index.loc[index["faces"] > 0, "models"].str.contains("centerface").all()
    key = faces["frame_key"].iloc[0]
    row = index.set_index("frame_key").loc[key]
    after = frames.load_frame({**row.to_dict(), "frame_key": key}).astype(np.int16)
    before = frames.load_frame({**extracted.loc[key].to_dict(), "frame_key": key}).astype(np.int16)
    assert after.shape == before.shape
    inside = np.zeros(after.shape[:2], bool)
    for r in regions[regions["frame_key"] == key].itertuples():
        inside[r.y1 : r.y2, r.x1 : r.x2] = True
    diff = np.abs(after - before).mean(axis=2)
    assert diff[inside].mean() > 8  # blurred
    assert diff[~inside].mean() < 3  # only JPEG re-encoding noise elsewhere


@pytest.mark.slow
def test_corrupt_frame_fails_the_check_and_publishes_nothing(labelled: Path, tmp_path: Path) -> None:
    root = tmp_path / "out"
    shutil.copytree(labelled, root)
    shutil.rmtree(root / DRIVE / "anonymized_frames", ignore_errors=True)
    out = LocalStorage(root)
    version, index = frames.committed_frames(out, DRIVE)
    victim = choose_frames(index, None, 3).iloc[1]
    with open(root / version.key(victim["data_key"]), "r+b") as fh:  # same length: the index stays valid
        fh.seek(int(victim["offset"]))
        fh.write(b"\0" * int(victim["bytes"]))

    result = run_anonymized_frames(drive=DRIVE, output=out, options={"max_frames": 3})
    (check,) = [c for c in result.checks if c.name == "every_frame_anonymized"]
    assert not check.passed and check.severity == "ERROR"
    assert check.metadata["failed_frames"]["raw_value"] == 1
    assert victim["frame_key"] in check.metadata["first_error"]["raw_value"]
    assert result.metadata["published"]["raw_value"] is False
    assert publish.current(out, f"{DRIVE}/anonymized_frames") is None
