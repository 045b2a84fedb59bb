"""Contact sheets: a grid of annotated frames a person can look at from the Dagster UI."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import cv2
import numpy as np

_PALETTE = [
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
    (168, 153, 44),
    (255, 194, 0),
]


def class_colour(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)]


def draw_boxes(img: np.ndarray, boxes: Sequence[dict]) -> np.ndarray:
    """Draw label rows (x1, y1, x2, y2, class_id, class_name, confidence) onto a copy of `img`."""
    out = img.copy()
    thick = max(1, round(min(img.shape[:2]) / 300))
    for b in boxes:
        colour = class_colour(int(b["class_id"]))
        p1, p2 = (int(b["x1"]), int(b["y1"])), (int(b["x2"]), int(b["y2"]))
        cv2.rectangle(out, p1, p2, colour, thick)
        label = f"{b['class_name']} {b['confidence']:.2f}"
        scale = 0.4 * thick
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = max(p1[1], th + 4)
        cv2.rectangle(out, (p1[0], y - th - 4), (p1[0] + tw + 2, y), colour, -1)
        cv2.putText(
            out, label, (p1[0] + 1, y - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


def caption(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, out.shape[0] - 18), (out.shape[1], out.shape[0]), (0, 0, 0), -1)
    cv2.putText(
        out, text[:60], (4, out.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
    )
    return out


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 4, tile_width: int = 320) -> np.ndarray:
    """Tile images (resized to `tile_width`, letterboxed to a common height) into one BGR image."""
    if not tiles:
        return np.zeros((90, tile_width, 3), np.uint8)
    resized = [
        cv2.resize(t, (tile_width, max(1, round(t.shape[0] * tile_width / t.shape[1])))) for t in tiles
    ]
    height = max(t.shape[0] for t in resized)
    padded = [cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in resized]
    columns = min(columns, len(padded))
    while len(padded) % columns:
        padded.append(np.zeros_like(padded[0]))
    rows = [np.hstack(padded[i : i + columns]) for i in range(0, len(padded), columns)]
    return np.vstack(rows)


def jpeg_bytes(img: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the preview")
    return buf.tobytes()


def markdown_image(data: bytes, alt: str = "preview") -> str:
    """Markdown that shows a JPEG inline in the Dagster UI's metadata panel."""
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(data).decode()})"
