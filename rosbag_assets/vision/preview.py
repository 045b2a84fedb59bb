"""Contact sheets: a grid of annotated frames a person can look at from the Dagster UI."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from rosbag_assets.vision.chart import fit_text

# Ultralytics' class colours (hex RGB), so our pictures colour a class the way YOLO users know it.
_PALETTE_HEX = "FF3838 FF9D97 FF701F FFB21D CFD231 48F90A 92CC17 3DDB86 1A9334 00D4BB 2C99A8 00C2FF"
_PALETTE = [(int(h[4:6], 16), int(h[2:4], 16), int(h[0:2], 16)) for h in _PALETTE_HEX.split()]  # BGR


def class_colour(class_id: int) -> tuple[int, int, int]:
    return _PALETTE[class_id % len(_PALETTE)]


def draw_boxes(img: np.ndarray, boxes: Sequence[dict]) -> np.ndarray:
    """Draw label rows (x1, y1, x2, y2, class_id, class_name, confidence) onto a copy of `img`."""
    out = img.copy()
    k = _tile_scale(img)
    thick = max(1, round(k * 1.5))
    for b in boxes:
        colour = class_colour(int(b["class_id"]))
        p1, p2 = (int(b["x1"]), int(b["y1"])), (int(b["x2"]), int(b["y2"]))
        cv2.rectangle(out, p1, p2, colour, thick)
        label = f"{b['class_name']} {b['confidence']:.2f}"
        scale = 0.45 * k
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(k)))
        y = max(p1[1], th + 4)
        cv2.rectangle(out, (p1[0], y - th - 4), (p1[0] + tw + 2, y), colour, -1)
        cv2.putText(
            out, label, (p1[0] + 1, y - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
            max(1, round(k)), cv2.LINE_AA,
        )  # fmt: skip
    return out


TILE_WIDTH = 320  # px per frame in a contact sheet


def _tile_scale(img: np.ndarray, tile_width: int = TILE_WIDTH) -> float:
    """How much a contact sheet shrinks this image: text drawn this much larger stays readable there."""
    return max(1.0, img.shape[1] / tile_width)


def caption(img: np.ndarray, text: str) -> np.ndarray:
    """A black strip with `text` at the bottom, sized to read well once tiled at 320 px wide."""
    out = img.copy()
    k = _tile_scale(img)
    bar = round(18 * k)
    cv2.rectangle(out, (0, out.shape[0] - bar), (out.shape[1], out.shape[0]), (0, 0, 0), -1)
    text = fit_text(text, out.shape[1] - round(8 * k), 0.42 * k)  # the end (time, size) matters most
    cv2.putText(
        out, text, (round(4 * k), out.shape[0] - round(5 * k)), cv2.FONT_HERSHEY_SIMPLEX, 0.42 * k,
        (255, 255, 255), max(1, round(k)), cv2.LINE_AA,
    )  # fmt: skip
    return out


SHEET_WIDTH = 960  # the Dagster UI's markdown dialog is at most 80% of the window: 1024 px on a 1280 screen


def contact_sheet(tiles: Sequence[np.ndarray], columns: int = 3, tile_width: int = TILE_WIDTH) -> np.ndarray:
    """Tile images (resized to `tile_width`, letterboxed to a common height) into one BGR image.

    The defaults make a sheet SHEET_WIDTH wide, which the Dagster UI shows without cutting it off.
    """
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


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _decode_flag(data: bytes, width: int, shown_width: int) -> int:
    """A JPEG shown at `shown_width` is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) while it stays
    at least that wide: a full 1920x1080 decode was a third of a small drive's extraction time (`make bench
    --quick`), the reduced one is several times faster and looks the same once tiled."""
    if shown_width and width and data[:2] == b"\xff\xd8":
        for factor, flag in _REDUCED:
            if width // factor >= shown_width:
                return flag
    return cv2.IMREAD_UNCHANGED


def thumbnail(data: bytes, width: int = 0, shown_width: int = 0) -> np.ndarray:
    """Any stored frame (8-bit JPEG/PNG, 16-bit PNG, float TIFF) as a BGR uint8 picture a person can read:
    colour stays as it is, depth and other single-channel high-range frames are stretched to their 1-99th
    percentile and coloured (near = warm). With the frame's `width` and the `shown_width` it will be shown at,
    a large JPEG is decoded at a reduced scale."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), _decode_flag(data, width, shown_width))
    if img is None:
        raise ValueError("undecodable image data")
    if img.dtype != np.uint8:
        values = img.astype(np.float32)
        finite = values[np.isfinite(values) & (values > 0)]
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        scaled = np.clip((np.nan_to_num(values) - lo) / max(hi - lo, 1e-6), 0, 1)
        gray = (255 - scaled * 255).astype(np.uint8)
        img = cv2.applyColorMap(gray if gray.ndim == 2 else gray[..., 0], cv2.COLORMAP_TURBO)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img[..., :3] if img.shape[2] == 4 else img


def png_bytes(img: np.ndarray) -> bytes:
    """Lossless, for drawings with thin lines and small text (JPEG smears them)."""
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("could not encode the picture")
    return buf.tobytes()
