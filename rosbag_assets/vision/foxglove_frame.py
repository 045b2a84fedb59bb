"""One exported frame drawn the way Foxglove's Image panel shows it, for the `foxglove` asset's picture.

The boxes and lanes use the very colours written into the MCAP's ``ImageAnnotations``
(`io.foxglove_annotations`): a class box in its class colour with a "class score" tag on a 70% opaque
background, lanes coloured by side. The frame is drawn 640 px wide with lines and print twice the size
Foxglove uses, so the 320 px copy the Dagster UI shows reads like the panel at full size.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from rosbag_assets.io.foxglove_annotations import OTHER_SIDE, SIDE_COLORS, class_rgb
from rosbag_assets.vision.preview import caption, thumbnail

WIDTH = 640
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _bgr(rgb: tuple[float, float, float]) -> tuple[int, int, int]:
    r, g, b = rgb
    return round(b * 255), round(g * 255), round(r * 255)


def draw_foxglove_frame(
    data: bytes,
    topic: str,
    stamp_ns: int,
    boxes: Sequence[dict[str, Any]] = (),
    lanes: Sequence[dict[str, Any]] = (),
    width: int = WIDTH,
) -> np.ndarray:
    """BGR picture of a stored frame (JPEG/PNG bytes) with its label rows and lane rows drawn, captioned
    with the topic, the frame's UTC time and what is drawn."""
    img = thumbnail(data)
    k = width / img.shape[1]
    img = cv2.resize(img, (width, max(1, round(img.shape[0] * k))), interpolation=cv2.INTER_AREA)
    for lane in lanes:
        xy = np.asarray([np.asarray(p, dtype=float) for p in lane["points"]], dtype=float).reshape(-1, 2)
        if len(xy) < 2:
            continue
        colour = _bgr(SIDE_COLORS.get(str(lane["side"]), OTHER_SIDE))
        cv2.polylines(img, [np.round(xy * k).astype(np.int32)], False, colour, 5, cv2.LINE_AA)
    tags: list[tuple[str, tuple[int, int, int], int, int, int, int]] = []
    for box in boxes:
        colour = _bgr(class_rgb(box))
        x1, y1, x2, y2 = (round(float(box[c]) * k) for c in ("x1", "y1", "x2", "y2"))
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 3, cv2.LINE_AA)
        label = f"{box['class_name']} {float(box['confidence']):.2f}"
        (tw, th), _ = cv2.getTextSize(label, FONT, 0.7, 2)
        tags.append((label, colour, x1, max(y1 - th - 8, 0), tw, th))
    backgrounds = img.copy()
    for _, colour, x, top, tw, th in tags:
        cv2.rectangle(backgrounds, (x, top), (x + tw + 6, top + th + 8), colour, -1)
    img = cv2.addWeighted(backgrounds, 0.7, img, 0.3, 0)  # tag backgrounds 70% opaque, as in the MCAP
    for label, _, x, top, _, th in tags:
        cv2.putText(img, label, (x + 3, top + th + 4), FONT, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    clock = time.strftime("%H:%M:%S", time.gmtime(stamp_ns / 1e9))
    return caption(img, f"{topic}  {clock}.{stamp_ns % 1_000_000_000 // 1_000_000:03d} UTC")
