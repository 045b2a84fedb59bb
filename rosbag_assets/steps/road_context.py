"""The road under a drive's frames, as published by `lane_labels`: lanes and drivable masks per frame.

`object_labels` reads it to place each box on the road (on the drivable area? in the ego lane? how far left or
right?) and to draw lanes and drivable area under its boxes. Plain Python; absent when lanes were not run on the
same frames version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key
from rosbag_assets.steps.report import StepLog
from rosbag_assets.vision.drivable import decode_mask
from rosbag_assets.vision.lanes import Lane
from rosbag_assets.vision.road import place_boxes

PLACEMENT_COLUMNS = ["on_drivable", "in_ego_lane", "lateral_offset"]


class RoadContext:
    """Lanes and (lazily decoded) drivable masks of the frames `lane_labels` saw, keyed by frame."""

    def __init__(self, lanes: dict[str, list[Lane]], masks: dict[str, bytes], model: str) -> None:
        self.lanes, self._masks, self.model = lanes, masks, model

    def mask(self, frame_key: str) -> np.ndarray | None:
        data = self._masks.get(frame_key)
        return decode_mask(data) if data is not None else None

    def place(
        self, frame_key: str, boxes: list[tuple[float, float, float, float]], size: tuple[int, int]
    ) -> list[dict[str, Any]]:
        """Placement columns for each box of one frame (None where the frame has no drivable mask)."""
        mask = self.mask(frame_key)
        if mask is None or not boxes:
            return [dict.fromkeys(PLACEMENT_COLUMNS) for _ in boxes]
        return [
            {"on_drivable": p.on_drivable, "in_ego_lane": p.in_ego_lane, "lateral_offset": p.lateral}
            for p in place_boxes(boxes, mask, self.lanes.get(frame_key, []), size)
        ]


def load_road(storage: Storage, drive: str, frames_version: str, log: StepLog) -> RoadContext | None:
    """The committed lane_labels of `drive` when they were made from `frames_version`, else None (logged)."""
    prefix = join_key(drive, "lane_labels")
    manifest = publish.current(storage, prefix)
    if manifest is None or manifest.get("frames_version") != frames_version:
        log.info(
            f"{drive}: no lane_labels for frames version {frames_version}; boxes are not placed on the road"
        )
        return None
    version = publish.Version(storage, prefix, manifest["version"])
    lanes: dict[str, list[Lane]] = {}
    for row in version.read_parquet("lanes.parquet").itertuples(index=False):
        points = [(float(x), float(y)) for x, y in row.points]
        lanes.setdefault(row.frame_key, []).append(Lane(int(row.lane_id), row.side, points, float(row.score)))
    masks: dict[str, bytes] = {}
    if storage.exists(version.key("road.parquet")):
        road = version.read_parquet("road.parquet")
        masks = dict(zip(road["frame_key"], road["drivable_png"], strict=True))
    return RoadContext(lanes, masks, str(manifest.get("model", "")))
