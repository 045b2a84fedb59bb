"""The `reviewed_labels` preview: the reviewed frames that changed most, reviewed vs model boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from rosbag_assets.io import frames, publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.vision import preview

MODEL_COLOUR = (0, 140, 255)  # BGR orange: the model's boxes
REVIEW_COLOUR = (60, 200, 40)  # BGR green: the reviewer's boxes


def model_labels(output: Storage, drive: str) -> pd.DataFrame:
    manifest = publish.current(output, join_key(drive, "object_labels"))
    if manifest is None:
        return pd.DataFrame(columns=["frame_key", "class_name", "x1", "y1", "x2", "y2"])
    return publish.Version(output, join_key(drive, "object_labels"), manifest["version"]).read_parquet(
        "labels.parquet"
    )


def _changed(reviewed: pd.DataFrame, model: pd.DataFrame) -> int:
    """How many boxes differ between a frame's review and its model labels (same class, IoU >= 0.9 match)."""
    rev = reviewed[reviewed["class_name"].notna()]
    unmatched = list(model.itertuples())
    matched = 0
    for r in rev.itertuples():
        for j, m in enumerate(unmatched):
            ix = max(0.0, min(r.x2, m.x2) - max(r.x1, m.x1)) * max(0.0, min(r.y2, m.y2) - max(r.y1, m.y1))
            union = (r.x2 - r.x1) * (r.y2 - r.y1) + (m.x2 - m.x1) * (m.y2 - m.y1) - ix
            if r.class_name == m.class_name and union > 0 and ix / union >= 0.9:
                matched += 1
                del unmatched[j]
                break
    return len(rev) + len(model) - 2 * matched


def preview_sheet(output: Storage, drive: str, mine: pd.DataFrame, model: pd.DataFrame, n: int) -> bytes:
    """The reviewed frames that changed most: model boxes thin orange, reviewed boxes green.

    Drawn on the anonymized frames when they exist (the picture shows in the UI), else on the extracted ones.
    """
    source = "anonymized_frames" if publish.current(output, join_key(drive, "anonymized_frames")) else None
    if source:
        version, _ = publish.require_current(output, join_key(drive, source))
        index = version.read_parquet("index.parquet")
    else:
        version, index = frames.committed_frames(output, drive)
    rows = index.drop_duplicates("frame_key").set_index("frame_key")
    by_frame = dict(tuple(model.groupby("frame_key"))) if len(model) else {}
    empty = model.iloc[0:0]
    ranked = sorted(
        ((-_changed(g, by_frame.get(k, empty)), k) for k, g in mine.groupby("frame_key") if k in rows.index),
    )
    tiles = []
    for _, key in ranked[:n]:
        row = {"frame_key": key, **rows.loc[key].to_dict()}
        img = preview.thumbnail(frames.read_frame_bytes(output, version, row))
        rev = mine[(mine["frame_key"] == key) & mine["class_name"].notna()]
        mod = by_frame.get(key, empty)
        for boxes, colour, width in ((mod, MODEL_COLOUR, 1), (rev, REVIEW_COLOUR, 2)):
            _draw(img, boxes, colour, width)
        tiles.append(preview.caption(img, f"reviewed {len(rev)} (green) vs model {len(mod)}"))
    return preview.jpeg_bytes(preview.contact_sheet(tiles))


def _draw(img: np.ndarray, boxes: pd.DataFrame, colour: tuple[int, int, int], width: int) -> None:
    """Boxes (in their label image's pixels) onto the stored frame `img`, scaled if the sizes differ."""
    k = max(1.0, img.shape[1] / 320)
    for b in boxes.to_dict("records"):
        sx = img.shape[1] / b["image_width"] if b.get("image_width") else 1.0
        sy = img.shape[0] / b["image_height"] if b.get("image_height") else 1.0
        p1 = (round(b["x1"] * sx), round(b["y1"] * sy))
        p2 = (round(b["x2"] * sx), round(b["y2"] * sy))
        cv2.rectangle(img, p1, p2, colour, max(1, round(width * k)))
