"""A drive's timeline signals as one picture: speed, yaw rate, braking, persons and vehicles over time, with
scene ranges as coloured bands below.

Drawn with OpenCV like `vision.timeline` (no plotting library). Each signal is reduced to one value per
pixel column first (mean for lines, max for counts), so an hour of 100 ms steps draws as fast as ten
seconds. A missing signal (NULL throughout) says so in its panel instead of drawing a flat line. `FULL` is
the picture a click opens; `INLINE` is drawn at the Dagster UI's 320 px with fewer words, since the full
picture scaled down to that width has unreadable print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from rosbag_assets.vision.chart import BG, DIM, GRID, INK, PALETTE, fit_text, put_text, tick_step

WIDTH = 960
LABEL_W = 150
RIGHT_W = 70
PANEL_H = 56
BAND_H = 16
AXIS_H = 24
# (column, label, unit, colour) of the line panels
LINES = [
    ("speed_mps", "speed", "m/s", (180, 119, 31)),
    ("yaw_rate", "yaw rate", "rad/s", (44, 160, 44)),
    ("accel_x", "accel x", "m/s2", (75, 86, 140)),
]
# (count column, flag column, label): bars of the count, red where the flag holds (in the ego lane)
COUNTS = [("persons", "person_in_ego_lane", "persons"), ("vehicles", "vehicle_in_ego_lane", "vehicles")]
IN_LANE, COUNT = (40, 39, 214), (170, 170, 170)


@dataclass(frozen=True)
class Layout:
    """Sizes in pixels and the font scale of one drawing of the signals."""

    width: int = WIDTH
    label_w: int = LABEL_W
    right_w: int = RIGHT_W  # 0: no value ranges, maxima and scene counts at the right
    panel_h: int = PANEL_H  # under 40: no unit line under a panel's name
    band_h: int = BAND_H
    axis_h: int = AXIS_H
    font: float = 0.38


FULL = Layout()
INLINE = Layout(width=320, label_w=74, right_w=0, panel_h=30, band_h=14, axis_h=18, font=0.34)


def _columns(t_s: np.ndarray, width: int, span: float) -> np.ndarray:
    return np.clip((t_s / span * (width - 1)).astype(int), 0, width - 1)


def _per_column(cols: np.ndarray, values: np.ndarray, width: int, how: str) -> np.ndarray:
    """One value per pixel column (NaN where no finite sample falls): the mean, or the max."""
    ok = np.isfinite(values)
    out = np.full(width, np.nan)
    if not ok.any():
        return out
    if how == "max":
        np.fmax.at(out, cols[ok], values[ok])
        return out
    sums = np.bincount(cols[ok], values[ok], width)
    counts = np.bincount(cols[ok], minlength=width)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _floats(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").astype(float).to_numpy()


def draw_signals(
    timeline: pd.DataFrame,
    bands: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    *,
    title: str = "",
    layout: Layout = FULL,
) -> np.ndarray:
    """BGR picture of a drive timeline (`drive_timeline`'s columns: t_ns, t_s, speed_mps, yaw_rate, ...).

    `bands` maps a row name (a scene rule) to its [start_ns, end_ns) ranges, drawn as bands under the
    signals on the same time axis.
    """
    bands = dict(bands or {})
    lay, f = layout, layout.font
    width, panel_h, band_h = lay.width, lay.panel_h, lay.band_h
    panels = len(LINES) + len(COUNTS)
    top = round(f * 58)
    bands_top = top + panels * panel_h
    axis_y = bands_top + len(bands) * band_h + 4
    img = np.full((axis_y + lay.axis_h, width, 3), BG, np.uint8)
    put_text(img, fit_text(title, width - 12, f * 1.1), (6, top - 7), f * 1.1, INK)
    plot_x, plot_w = lay.label_w, width - lay.label_w - lay.right_w
    if timeline.empty:
        put_text(img, "empty timeline", (plot_x, top + 30), f * 1.3, DIM)
        return img
    t_ns = timeline["t_ns"].to_numpy(np.int64)
    t0 = int(t_ns[0])
    span = max((int(t_ns[-1]) - t0) / 1e9, 1e-3)
    cols = _columns((t_ns - t0) / 1e9, plot_w, span)
    for i in range(0, panels, 2):
        cv2.rectangle(img, (0, top + i * panel_h), (width - 1, top + (i + 1) * panel_h - 1), (248,) * 3, -1)
    _grid(img, span, plot_x, plot_w, top, axis_y, f * 0.9)
    bar_w = max(1, -(-plot_w // max(len(t_ns), 1)))  # ceil: neighbouring steps touch
    sublabels = panel_h >= 40
    for i, (col, label, unit, colour) in enumerate(LINES):
        y = top + i * panel_h
        put_text(img, label, (6, y + (20 if sublabels else panel_h // 2 + 4)), f)
        if sublabels:
            put_text(img, unit, (6, y + 36), f * 0.9, DIM)
        _line(img, cols, _floats(timeline, col), (plot_x, y, plot_w, panel_h), colour, lay.right_w > 0)
    for j, (col, flag, label) in enumerate(COUNTS):
        y = top + (len(LINES) + j) * panel_h
        put_text(img, label, (6, y + (20 if sublabels else panel_h // 2 + 4)), f)
        if sublabels:
            put_text(img, "red: in ego lane", (6, y + 36), f * 0.9, DIM)
        counts = _per_column(cols, _floats(timeline, col), plot_w, "max")
        flagged = _per_column(cols, _floats(timeline, flag), plot_w, "max")
        _bars(img, counts, flagged, (plot_x, y, plot_w, panel_h), bar_w, lay.right_w > 0)
    for k, (name, ranges) in enumerate(bands.items()):
        y = bands_top + k * band_h
        colour = PALETTE[k % len(PALETTE)]
        put_text(
            img,
            fit_text(name, lay.label_w - 10, f * 0.95, keep_end=False),
            (6, y + band_h - 4),
            f * 0.95,
            INK,
        )
        cv2.line(img, (plot_x, y + band_h // 2), (plot_x + plot_w, y + band_h // 2), GRID, 1)
        for start, end in ranges:
            x0 = plot_x + round((start - t0) / 1e9 / span * (plot_w - 1))
            x1 = plot_x + round((end - t0) / 1e9 / span * (plot_w - 1))
            x1 = min(max(x1, x0 + 2), plot_x + plot_w)  # a range ends one step after its last step
            cv2.rectangle(img, (x0, y + 2), (x1, y + band_h - 3), colour, -1)
        if lay.right_w:
            put_text(img, f"{len(ranges)}", (plot_x + plot_w + 8, y + band_h - 4), f * 0.9, DIM)
    return img


def _grid(img: np.ndarray, span: float, plot_x: int, plot_w: int, top: int, axis_y: int, font: float) -> None:
    cv2.line(img, (plot_x, axis_y), (plot_x + plot_w, axis_y), INK, 1)
    step = tick_step(span, 8 if plot_w > 300 else 4)
    for k in range(int(span / step + 1e-9) + 1):
        x = plot_x + round(k * step / span * (plot_w - 1))
        cv2.line(img, (x, top), (x, axis_y), GRID, 1)
        cv2.line(img, (x, axis_y), (x, axis_y + 4), INK, 1)
        put_text(img, f"{k * step:g}s", (x - 8, axis_y + round(font * 45)), font, DIM)


Panel = tuple[int, int, int, int]  # x, y, width, height of a plot area


def _line(
    img: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    panel: Panel,
    colour: tuple[int, int, int],
    ranges_at_right: bool,
) -> None:
    """A line over the finite values, scaled to the panel, with its range written at the right. Each run
    of consecutive finite steps is one polyline (its mean per pixel column): a NULL step stays a gap."""
    x0, y, plot_w, panel_h = panel
    ok = np.isfinite(values)
    if not ok.any():
        put_text(img, "no data", (x0 + 8, y + panel_h // 2 + 4), 0.4, DIM)
        return
    lo, hi = float(values[ok].min()), float(values[ok].max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5

    def height(v: np.ndarray) -> np.ndarray:
        return y + panel_h - 6 - (v - lo) / (hi - lo) * (panel_h - 12)

    if lo < 0 < hi:  # the zero line, for signed signals (yaw rate, acceleration)
        zero = round(float(height(np.array(0.0))))
        cv2.line(img, (x0, zero), (x0 + plot_w, zero), (200, 200, 200), 1)
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        run_cols, inverse = np.unique(cols[a:b], return_inverse=True)
        means = np.bincount(inverse, values[a:b]) / np.bincount(inverse)
        pts = np.stack([x0 + run_cols, np.round(height(means))], axis=1).astype(np.int32)
        if len(pts) == 1:
            pts = np.vstack([pts, pts + np.array([1, 0], np.int32)])
        cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
    if ranges_at_right:
        right = x0 + plot_w + 8
        put_text(img, f"{hi:.3g}", (right, y + 14), 0.34, DIM)
        put_text(img, f"{lo:.3g}", (right, y + panel_h - 6), 0.34, DIM)


def _bars(
    img: np.ndarray, counts: np.ndarray, flagged: np.ndarray, panel: Panel, bar_w: int, peak_at_right: bool
) -> None:
    """Bars of the count per column (`bar_w` wide, so sparse steps touch), red where the flag held."""
    x0, y, _, panel_h = panel
    ok = np.isfinite(counts)
    if not ok.any():
        put_text(img, "no labels", (x0 + 8, y + panel_h // 2 + 4), 0.4, DIM)
        return
    peak = max(float(counts[ok].max()), 1.0)
    for col in np.flatnonzero(ok & (counts > 0)):
        h = round(counts[col] / peak * (panel_h - 10))
        colour = IN_LANE if np.isfinite(flagged[col]) and flagged[col] > 0 else COUNT
        left = x0 + int(col)
        cv2.rectangle(img, (left, y + panel_h - 4 - h), (left + bar_w - 1, y + panel_h - 4), colour, -1)
    if peak_at_right:
        put_text(img, f"max {peak:.0f}", (x0 + len(counts) + 8, y + 14), 0.34, DIM)
