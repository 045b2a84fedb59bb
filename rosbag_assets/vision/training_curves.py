"""A detector's training curves as one picture: train/val loss and val mAP50 / mAP50-95 per epoch.

Drawn with OpenCV from the rows of Ultralytics' ``results.csv`` (no plotting library, like `signal_plot`).
The picture is 640x360 with large text and thick lines because the Dagster UI shows it at 320 px wide
(`report.INLINE_WIDTH`): everything must stay readable at half size. A run of one epoch draws points, a
missing column or a NaN value leaves a gap instead of a made-up line.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from rosbag_assets.vision.chart import BG, DIM, GRID, INK, put_text, text_width
from rosbag_assets.vision.preview import png_bytes

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT = 78, 14  # y-axis labels at the left
HEADER_H, PLOT_H, GAP = 38, 112, 10
TEXT = 0.8  # font scale: ~9 px high text once shown at 320 px
LINE = 3
TRAIN, VAL, MAP50, MAP50_95 = (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214)  # BGR
TRAIN_LOSSES = ("train/box_loss", "train/cls_loss", "train/dfl_loss")
VAL_LOSSES = ("val/box_loss", "val/cls_loss", "val/dfl_loss")
MARKERS_UP_TO = 15  # epochs: with so few, each epoch also gets a dot


def _column(rows: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """One float per row; NaN where the value is missing or not a number."""
    out = np.full(len(rows), np.nan)
    for i, row in enumerate(rows):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            out[i] = float(row[name])
    return out


def _total(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """The sum of the loss components present in any row (NaN in a row missing one of them)."""
    present = [n for n in names if any(n in r for r in rows)]
    if not present:
        return np.full(len(rows), np.nan)
    return np.sum([_column(rows, n) for n in present], axis=0)


def _stripped(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Older Ultralytics versions pad the CSV header with spaces."""
    return [{str(k).strip(): v for k, v in r.items()} for r in rows]


def _nice_top(hi: float) -> float:
    """The smallest 1/2/5 x 10^k at or above `hi` (an mAP axis from 0 that fits the values)."""
    if not math.isfinite(hi) or hi <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(hi))
    return min(next(m * magnitude for m in (1, 2, 5, 10) if hi <= m * magnitude + 1e-12), 1.0)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _panel(
    img: np.ndarray,
    top: int,
    title: str,
    series: Sequence[tuple[str, np.ndarray, tuple[int, int, int]]],
    xs: np.ndarray,
    from_zero: bool,
) -> None:
    """A header (title, legend with each series' last value) and a plot of the series on one y scale."""
    plot_top, plot_bottom = top + HEADER_H, top + HEADER_H + PLOT_H
    x = 6 + put_text(img, title, (6, top + 27), TEXT, INK) + 16
    values = np.concatenate([v for _, v, _ in series]) if series else np.array([])
    finite = values[np.isfinite(values)]
    cv2.rectangle(img, (LEFT, plot_top), (WIDTH - RIGHT, plot_bottom), GRID, 1)
    if not finite.size:
        put_text(img, "no data", (LEFT + 12, plot_top + PLOT_H // 2 + 8), TEXT, DIM)
        return
    for label, v, colour in series:
        ok = np.isfinite(v)
        if not ok.any():
            continue
        cv2.line(img, (x, top + 19), (x + 16, top + 19), colour, LINE + 1, cv2.LINE_AA)
        x += 22 + put_text(img, f"{label} {_fmt(float(v[ok][-1]))}", (x + 22, top + 27), TEXT, colour) + 16
    lo, hi = (
        (0.0, _nice_top(float(finite.max()))) if from_zero else (float(finite.min()), float(finite.max()))
    )
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0 if from_zero else 0.06 * (hi - lo)
    lo, hi = max(lo - pad, 0.0) if lo >= 0 else lo - pad, hi + pad  # losses are >= 0: no negative axis
    put_text(img, _fmt(hi), (6, plot_top + 18), TEXT - 0.08, DIM)
    put_text(img, _fmt(lo), (6, plot_bottom - 2), TEXT - 0.08, DIM)
    mid = (plot_top + plot_bottom) // 2
    cv2.line(img, (LEFT, mid), (WIDTH - RIGHT, mid), GRID, 1)
    for _, v, colour in series:
        ys = plot_bottom - (v - lo) / (hi - lo) * PLOT_H
        _curve(img, xs, ys, colour)


def _curve(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Polylines through each run of finite values; a run of one value (or few epochs) as dots."""
    ok = np.isfinite(ys)
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    dots = len(xs) <= MARKERS_UP_TO
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        pts = np.round(np.stack([xs[a:b], ys[a:b]], axis=1)).astype(np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, colour, LINE, cv2.LINE_AA)
        if dots or len(pts) == 1:
            for px, py in pts:
                cv2.circle(img, (int(px), int(py)), LINE + 2, colour, -1, cv2.LINE_AA)


def draw_training_curves(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """BGR picture of the per-epoch rows of an Ultralytics ``results.csv`` (columns ``epoch``,
    ``train/*_loss``, ``val/*_loss``, ``metrics/mAP50(B)``, ``metrics/mAP50-95(B)``)."""
    rows = _stripped(rows)
    img = np.full((HEIGHT, WIDTH, 3), BG, np.uint8)
    epochs = _column(rows, "epoch")
    if not np.isfinite(epochs).all():
        epochs = np.arange(1, len(rows) + 1, dtype=float)
    plot_w = WIDTH - RIGHT - LEFT
    first, last = (float(epochs.min()), float(epochs.max())) if len(rows) else (1.0, 1.0)
    if last > first:
        xs = LEFT + 10 + (epochs - first) / (last - first) * (plot_w - 20)
    else:
        xs = np.full(len(rows), LEFT + plot_w / 2)
    loss = [("train", _total(rows, TRAIN_LOSSES), TRAIN), ("val", _total(rows, VAL_LOSSES), VAL)]
    maps = [
        ("mAP50", _column(rows, "metrics/mAP50(B)"), MAP50),
        ("mAP50-95", _column(rows, "metrics/mAP50-95(B)"), MAP50_95),
    ]
    _panel(img, 0, "loss", loss, xs, from_zero=False)
    _panel(img, HEADER_H + PLOT_H + GAP, "val mAP", maps, xs, from_zero=True)
    axis_y = 2 * (HEADER_H + PLOT_H) + GAP + 28
    if len(rows):
        put_text(img, f"epoch {first:g}", (LEFT, axis_y), TEXT, DIM)
        if last > first:
            end = f"{last:g}"
            put_text(img, end, (WIDTH - RIGHT - text_width(end, TEXT), axis_y), TEXT, DIM)
    else:
        put_text(img, "no epochs recorded", (LEFT, axis_y), TEXT, DIM)
    return img


def training_curves_png(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """`draw_training_curves` as PNG bytes (lossless: thin lines and text stay sharp)."""
    return png_bytes(draw_training_curves(rows))
