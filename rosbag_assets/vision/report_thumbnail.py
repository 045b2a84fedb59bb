"""A drive report's thumbnail: its first annotated frames in a 2-column sheet above the drive's topic chart.

Drawn 640 px wide; tile labels are printed large enough to read in the Dagster UI's 320 px copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rosbag_assets.vision.chart import fit_text, put_text
from rosbag_assets.vision.preview import contact_sheet

WIDTH = 640
MAX_TILES = 4
TEXT = 0.62
LABEL = 0.8  # font scale on a 320 px tile: ~8 px capitals at 320 px overall


def _labelled(img: np.ndarray, label: str, width: int) -> np.ndarray:
    tile = cv2.resize(
        img, (width, max(1, round(img.shape[0] * width / img.shape[1]))), interpolation=cv2.INTER_AREA
    )
    cv2.rectangle(tile, (0, tile.shape[0] - 30), (width, tile.shape[0]), (0, 0, 0), -1)
    put_text(tile, fit_text(label, width - 12, LABEL), (6, tile.shape[0] - 8), LABEL, (255, 255, 255))
    return tile


def report_thumbnail(
    frames: Sequence[tuple[np.ndarray, str]], chart: np.ndarray | None, width: int = WIDTH
) -> np.ndarray:
    """BGR picture: up to MAX_TILES (frame, label) in two columns, then `chart` scaled to `width`."""
    parts = []
    if frames:
        tiles = [_labelled(img, label, width // 2) for img, label in frames[:MAX_TILES]]
        parts.append(contact_sheet(tiles, columns=min(2, len(tiles)), tile_width=width // min(2, len(tiles))))
    if chart is not None:
        h = max(1, round(chart.shape[0] * width / chart.shape[1]))
        parts.append(cv2.resize(chart, (width, h), interpolation=cv2.INTER_AREA))
    if not parts:
        blank = np.full((60, width, 3), 255, np.uint8)
        put_text(blank, "nothing published yet", (8, 38), TEXT)
        return blank
    return np.vstack(parts)
