"""Where detected objects stand relative to the road: on the drivable area? in the ego lane? how far across?

An object's ground contact is the bottom edge of its box; the road just below that edge is what the
object stands on (the object itself hides the road above it, so the mask never covers the box). Pure
numpy: boxes in frame pixels, a drivable mask of any resolution (scaled to the frame), lanes as
polylines in frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rosbag_assets.vision.lanes import Lane

__all__ = ["RoadPlacement", "lane_x_at", "place_boxes"]


@dataclass(frozen=True)
class RoadPlacement:
    """Road position of one box."""

    contact: tuple[float, float]  # ground-contact point (bottom centre of the box), frame pixels
    on_drivable: float  # 0..1: share of the box's bottom edge standing on drivable area
    in_ego_lane: bool | None  # contact point between the ego lane lines; None without an ego pair
    lateral: float | None  # -1 on the left ego line, 0 centred, +1 on the right line; None without a pair


def lane_x_at(lane: Lane | Sequence[tuple[float, float]], y: float) -> float | None:
    """x of a polyline at row ``y``; beyond its ends continued along its first/last segment."""
    pts = np.asarray(lane.points if isinstance(lane, Lane) else lane, float).reshape(-1, 2)
    if len(pts) < 2:
        return None
    pts = pts[np.argsort(pts[:, 1], kind="stable")]
    ys, xs = pts[:, 1], pts[:, 0]
    if ys[-1] - ys[0] < 1e-6:
        return None
    if ys[0] <= y <= ys[-1]:
        return float(np.interp(y, ys, xs))
    a, b = (pts[0], pts[min(2, len(pts) - 1)]) if y < ys[0] else (pts[max(0, len(pts) - 3)], pts[-1])
    if abs(b[1] - a[1]) < 1e-6:
        return float(a[0])
    return float(a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]))


def _ego_pair(lanes: Sequence[Lane]) -> tuple[Lane, Lane] | None:
    left = [ln for ln in lanes if ln.side == "left"]
    right = [ln for ln in lanes if ln.side == "right"]
    return (left[0], right[0]) if left and right else None


def place_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]],
    drivable: np.ndarray,
    lanes: Sequence[Lane],
    image_size: tuple[int, int],
    band: float = 0.02,
) -> list[RoadPlacement]:
    """Road placement of every box (x1, y1, x2, y2 in frame pixels of an ``image_size`` = (w, h) frame).

    ``on_drivable`` looks at a band of ``band`` x mask height rows (at least one) just below each box's
    bottom edge and counts a column as drivable when any row of the band is.
    """
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    mask = np.asarray(drivable, bool)
    mh, mw = mask.shape
    w, h = image_size
    sx, sy = mw / w, mh / h
    pair = _ego_pair(lanes)
    depth = max(1, round(band * mh))
    out = []
    for x1, _y1, x2, y2 in boxes:
        cx, cy = (x1 + x2) / 2, min(y2, h - 1.0)
        c0 = int(np.clip(np.floor(min(x1, x2) * sx), 0, mw - 1))
        c1 = int(np.clip(np.ceil(max(x1, x2) * sx), c0 + 1, mw))
        r0 = int(np.clip(np.floor(cy * sy), 0, mh - 1))
        r0 = min(r0, mh - depth)  # a box cut off by the frame's bottom: use the last rows
        on = float(mask[r0 : r0 + depth, c0:c1].any(axis=0).mean())
        lateral = inside = None
        if pair is not None:
            xl, xr = lane_x_at(pair[0], cy), lane_x_at(pair[1], cy)
            if xl is not None and xr is not None and xr - xl > 1.0:
                lateral = float(2.0 * (cx - xl) / (xr - xl) - 1.0)
                inside = bool(-1.0 <= lateral <= 1.0)
        out.append(
            RoadPlacement(contact=(float(cx), float(cy)), on_drivable=on, in_ego_lane=inside, lateral=lateral)
        )
    return out
