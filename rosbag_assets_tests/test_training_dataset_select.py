"""training_dataset selection: drives, classes after mapping, confidence, reviewed rows, frame sizes."""

from __future__ import annotations

import pandas as pd
import pytest
from training_dataset_data import Drives, model_labels, real_images

from rosbag_assets.steps.training_dataset import REVIEWED_COLUMNS, TrainingDatasetOptions
from rosbag_assets.steps.training_dataset.select import DatasetInputError, select_boxes

VEHICLES = {"bus": "vehicle", "car": "vehicle", "truck": "vehicle"}


@pytest.fixture(scope="module")
def drives() -> Drives:
    d = Drives()
    names = sorted(real_images())
    d.add("city_a", names[:5])
    d.add("city_b", names[5:], start_s=1_700_000_500.0)
    return d


def test_class_map_classes_and_confidence_follow_the_model_rows(drives: Drives) -> None:
    opts = TrainingDatasetOptions(class_map=VEHICLES, classes=["vehicle", "person"], min_confidence=0.5)
    sel = select_boxes(drives.frames, drives.label_rows, opts)

    csv = model_labels()
    csv = csv.assign(mapped=csv["class_name"].map(lambda n: VEHICLES.get(n, n)))
    expected = csv[(csv["confidence"] >= 0.5) & csv["mapped"].isin(["vehicle", "person"])]
    assert sel.class_names == ["vehicle", "person"]
    assert len(sel.boxes) == len(expected)
    assert sel.boxes.groupby("class_name").size().to_dict() == expected.groupby("mapped").size().to_dict()
    assert (sel.boxes["class_id"] == sel.boxes["class_name"].map({"vehicle": 0, "person": 1})).all()
    assert sel.counts["below_confidence"] == int((csv["confidence"] < 0.5).sum())
    assert sel.counts["other_classes"] == int(
        ((csv["confidence"] >= 0.5) & ~csv["mapped"].isin(["vehicle", "person"])).sum()
    )
    # only frames that keep at least one box: the tie-only and low-confidence-only pictures are gone
    pictures = {drives.source[(r.drive, r.frame_key)] for r in sel.frames.itertuples()}
    assert pictures == set(expected["image"])
    assert sel.frames["n_boxes"].sum() == len(sel.boxes)


def test_without_classes_every_mapped_class_is_kept_in_name_order(drives: Drives) -> None:
    sel = select_boxes(
        drives.frames, drives.label_rows, TrainingDatasetOptions(class_map=VEHICLES, min_confidence=0)
    )
    assert sel.class_names == sorted({VEHICLES.get(n, n) for n in model_labels()["class_name"]})
    assert len(sel.boxes) == len(model_labels())


def test_drives_and_topics_filter_and_unknown_drives_are_named(drives: Drives) -> None:
    sel = select_boxes(
        drives.frames, drives.label_rows, TrainingDatasetOptions(drives=["city_b"], min_confidence=0)
    )
    assert set(sel.frames["drive"]) == {"city_b"} and set(sel.boxes["drive"]) == {"city_b"}
    with pytest.raises(DatasetInputError, match="nowhere"):
        select_boxes(drives.frames, drives.label_rows, TrainingDatasetOptions(drives=["city_a", "nowhere"]))
    none = select_boxes(drives.frames, drives.label_rows, TrainingDatasetOptions(topics=["/other"]))
    assert none.frames.empty and none.boxes.empty


def test_depth_frames_are_never_selected(drives: Drives) -> None:
    frames = drives.frames
    frames.loc[0, ["format", "encoding"]] = ["png", "16UC1"]
    sel = select_boxes(frames, drives.label_rows, TrainingDatasetOptions(min_confidence=0, keep_empty=True))
    assert frames.loc[0, "frame_key"] not in set(sel.frames["frame_key"])
    assert len(sel.frames) == len(frames) - 1


def test_keep_empty_adds_unlabelled_frames_as_background(drives: Drives) -> None:
    d = Drives()
    d.add("quiet", sorted(real_images())[:2], labelled=False)
    frames = pd.concat([drives.frames, d.frames], ignore_index=True)
    without = select_boxes(frames, drives.label_rows, TrainingDatasetOptions())
    with_empty = select_boxes(frames, drives.label_rows, TrainingDatasetOptions(keep_empty=True))
    assert "quiet" not in set(without.frames["drive"])
    assert (with_empty.frames.loc[with_empty.frames["drive"] == "quiet", "n_boxes"] == 0).all()
    assert len(with_empty.frames) == len(frames)


def test_boxes_are_clipped_and_rescaled_into_the_stored_frame(drives: Drives) -> None:
    labels = drives.label_rows
    first = labels.index[0]
    key = labels.loc[first, "frame_key"]
    # labelled on a half-size copy of the frame, one box spilling over the right edge
    on_frame = labels["frame_key"] == key
    labels.loc[on_frame, ["x1", "y1", "x2", "y2"]] /= 2
    labels.loc[on_frame, ["image_width", "image_height"]] = (
        labels.loc[on_frame, ["image_width", "image_height"]] // 2
    )
    labels.loc[first, "x2"] = labels.loc[first, "image_width"] + 50
    sel = select_boxes(drives.frames, labels, TrainingDatasetOptions(min_confidence=0))
    width = drives.frames.set_index("frame_key").loc[key, "width"]
    boxes = sel.boxes[sel.boxes["frame_key"] == key].reset_index(drop=True)
    original = drives.label_rows[on_frame].reset_index(drop=True)
    assert boxes.loc[0, "x2"] == width  # clipped at the stored frame's edge
    pd.testing.assert_series_equal(boxes["y2"], original["y2"], check_names=False, atol=0.5)


def reviewed_rows(frame: dict, boxes: list[tuple[str, float, float, float, float]]) -> pd.DataFrame:
    common = {
        "drive": frame["drive"],
        "frame_key": frame["frame_key"],
        "image_width": frame["width"],
        "image_height": frame["height"],
        "source": "sagemaker-gt",
        "job": "adjust-1",
        "human_annotated": True,
    }
    if not boxes:
        return pd.DataFrame([{**common, "class_name": None, "confidence": None}], columns=REVIEWED_COLUMNS)
    return pd.DataFrame(
        [
            {**common, "class_name": c, "x1": a, "y1": b, "x2": x, "y2": y, "confidence": None}
            for c, a, b, x, y in boxes
        ],
        columns=REVIEWED_COLUMNS,
    )


def test_reviewed_rows_replace_model_rows_on_their_frames_only(drives: Drives) -> None:
    frames = drives.frames
    busy = frames[frames["frame_key"].isin(drives.label_rows["frame_key"])].iloc[0].to_dict()
    emptied = frames[frames["frame_key"].isin(drives.label_rows["frame_key"])].iloc[1].to_dict()
    reviewed = pd.concat(
        [reviewed_rows(busy, [("car", 10, 20, 110, 220)]), reviewed_rows(emptied, [])], ignore_index=True
    )
    opts = TrainingDatasetOptions(min_confidence=0.99)  # would drop every model box; reviewed rows never
    sel = select_boxes(frames, drives.label_rows, opts, reviewed)
    on_busy = sel.boxes[sel.boxes["frame_key"] == busy["frame_key"]]
    assert on_busy[["class_name", "x1", "y1", "x2", "y2"]].values.tolist() == [["car", 10, 20, 110, 220]]
    assert on_busy["source"].tolist() == ["reviewed:sagemaker-gt:adjust-1"]
    assert (sel.boxes["frame_key"] == emptied["frame_key"]).sum() == 0
    # the frame reviewed as empty stays in as a background image; the other frames keep their model rows
    assert emptied["frame_key"] in set(sel.frames["frame_key"])
    assert sel.counts["reviewed_frames"] == 2
    replaced = drives.label_rows["frame_key"].isin([busy["frame_key"], emptied["frame_key"]]).sum()
    assert sel.counts["model_rows_replaced_by_review"] == replaced

    ignored = select_boxes(
        frames, drives.label_rows, opts.model_copy(update={"use_reviewed": False}), reviewed
    )
    assert not ignored.boxes["source"].str.startswith("reviewed").any()


def test_missing_label_columns_are_named(drives: Drives) -> None:
    with pytest.raises(DatasetInputError, match="confidence"):
        select_boxes(drives.frames, drives.label_rows.drop(columns=["confidence"]), TrainingDatasetOptions())


def test_frames_trainers_reject_as_too_small_are_left_out_and_counted(drives: Drives) -> None:
    frames = drives.frames.copy()
    frames.loc[0, ["width", "height"]] = [2, 2]
    frames.loc[1, ["width", "height"]] = [9, 400]
    sel = select_boxes(frames, drives.label_rows, TrainingDatasetOptions(keep_empty=True))
    assert sel.counts["too_small_frames"] == 2
    assert not set(frames.loc[:1, "frame_key"]) & set(sel.frames["frame_key"])
    everything = select_boxes(
        frames, drives.label_rows, TrainingDatasetOptions(keep_empty=True, min_image_side=1)
    )
    assert everything.counts["too_small_frames"] == 0 and len(everything.frames) == len(frames)
