"""A drive's topic timeline as one picture: bag spans on top, message rate over time per topic below.

Drawn with OpenCV (no plotting library) from the binned counts `raw_bags` publishes (``rates.parquet``):
each topic row is filled up to its rate relative to that topic's own peak, so a 1 Hz GPS and a 400 Hz IMU
are both readable; the peak and mean rate are written at the right. `FULL` is the picture a click opens;
`INLINE` is drawn for the asset page's metadata column (320 px): a 960-px drawing scaled down to that width
has unreadable 4-px text, so the inline copy is drawn at its own size with fewer words instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from rosbag_assets.vision.chart import BG, DIM, GRID, INK, PALETTE, fit_text, put_text, text_width, tick_step

MAX_TOPICS = 48
SEGMENT_GAP = 8


@dataclass(frozen=True)
class Layout:
    """Sizes in pixels and the font scale of one drawing of the timeline."""

    width: int = 960
    label_w: int = 250
    stats_w: int = 150  # 0: no peak / mean column
    row_h: int = 20
    lane_h: int = 16
    axis_h: int = 26
    font: float = 0.38


FULL = Layout()
INLINE = Layout(width=320, label_w=112, stats_w=0, row_h=15, lane_h=13, axis_h=20, font=0.34)


def _rate_label(hz: float) -> str:
    return f"{hz:.0f} Hz" if hz >= 10 else f"{hz:.1f} Hz" if hz >= 0.1 else f"{hz * 60:.1f}/min"


def rates_per_pixel(rows: Sequence[dict[str, Any]], seg: Segment) -> np.ndarray:
    """Counts of one segment spread over the pixel columns each bin overlaps, in proportion to the overlap."""
    t0, t1, xs, xe = seg
    ns_per_px = (t1 - t0) / max(xe - xs, 1)
    out = np.zeros(xe - xs, np.float64)
    for row in rows:
        x0 = (row["start_ns"] - t0) / ns_per_px
        x1 = x0 + row["bin_ns"] / ns_per_px
        first, last = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), len(out))
        if last <= first:
            continue
        cols = np.arange(first, last)
        overlap = np.minimum(cols + 1, x1) - np.maximum(cols, x0)
        out[cols] += row["count"] * np.clip(overlap, 0, None) / (x1 - x0)
    return out / (ns_per_px / 1e9)  # messages per second


Segment = tuple[int, int, int, int]  # t_start, t_end (ns), x_start, x_end (px)


def time_segments(spans: Sequence[tuple[int, int]], x: int, width: int) -> list[Segment]:
    """The time axis: one segment over all bags, or, when bags lie far apart (long gaps between
    recordings), one segment per group of nearby bags so each stays visible."""
    groups: list[list[int]] = []
    for start, end in sorted(spans):
        if groups and start <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], end)
        else:
            groups.append([start, end])
    recorded = sum(max(e - s, 1) for s, e in groups)
    merged = [groups[0]]
    for start, end in groups[1:]:
        if start - merged[-1][1] <= 0.2 * recorded:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    avail = width - SEGMENT_GAP * (len(merged) - 1)
    durations = np.array([max(e - s, 1) for s, e in merged], np.float64)
    floor = min(30, avail // len(merged))
    widths = np.maximum(floor, durations / durations.sum() * avail)
    widths = np.floor(widths / widths.sum() * avail).astype(int)
    segments, pos = [], x
    for (start, end), w in zip(merged, widths, strict=True):
        segments.append((start, max(end, start + 1), pos, pos + max(int(w), 1)))
        pos += int(w) + SEGMENT_GAP
    return segments


def _x(t: int, segments: Sequence[Segment]) -> int:
    for t0, t1, xs, xe in segments:
        if t <= t1:
            return xs + round((max(t, t0) - t0) / (t1 - t0) * (xe - xs))
    return segments[-1][3]


def _lanes(spans: Sequence[tuple[int, int]]) -> list[int]:
    """Greedy lane per span so overlapping bags (e.g. ROS1 + ROS2 of one drive) get their own line."""
    ends: list[int] = []
    lanes = []
    for start, end in spans:
        lane = next((i for i, e in enumerate(ends) if e <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        lanes.append(lane)
    return lanes


def draw_timeline(
    bags: Sequence[dict[str, Any]], rates: Sequence[dict[str, Any]], layout: Layout = FULL
) -> np.ndarray:
    """BGR image of the drive's timeline.

    `bags`: dicts with ``bag``, ``start_ns``, ``end_ns`` (bags without messages are skipped);
    `rates`: dicts with ``bag``, ``topic``, ``start_ns``, ``bin_ns``, ``count`` (see `io.bag_index`).
    Bars show the message rate (all bags together) relative to the topic's own peak; the numbers at the
    right are the topic's peak and mean rate within a bag (not in a layout without that column).
    """
    width, f = layout.width, layout.font
    row_h, lane_h = layout.row_h, layout.lane_h
    spans = sorted(
        ((b["bag"], int(b["start_ns"]), int(b["end_ns"])) for b in bags if b.get("start_ns") is not None),
        key=lambda s: (s[1], s[0]),
    )
    plot_x, plot_w = layout.label_w, width - layout.label_w - layout.stats_w
    if not spans:
        img = np.full((60, width, 3), BG, np.uint8)
        put_text(img, "no messages in any bag", (10, 35), f * 1.3, DIM)
        return img
    t0, t1 = spans[0][1], max(s[2] for s in spans)
    segments = time_segments([(s[1], s[2]) for s in spans], plot_x, plot_w)
    duration = {name: max(end - start, int(1e9)) for name, start, end in spans}  # >= 1 s: no absurd means
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for row in rates:
        by_topic.setdefault(row["topic"], []).append(row)
    topics = sorted(by_topic)
    hidden = max(0, len(topics) - MAX_TOPICS)
    topics = topics[:MAX_TOPICS]
    lanes = _lanes([(s[1], s[2]) for s in spans])
    top = round(f * 58)
    bag_h = (max(lanes) + 1) * lane_h + 6
    rows_top = top + bag_h
    axis_y = rows_top + len(topics) * row_h
    height = axis_y + layout.axis_h + (16 if hidden else 0)
    img = np.full((height, width, 3), BG, np.uint8)
    clock = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0 / 1e9))
    what = f"{len(spans)} bag{'s' * (len(spans) != 1)}, {(t1 - t0) / 1e9:.1f} s from {clock}"
    if len(segments) > 1:
        recorded = sum(seg[1] - seg[0] for seg in segments) / 1e9
        what = (
            f"{len(spans)} bags in {len(segments)} separate recordings ({recorded:.1f} s, gaps cut out), "
            f"from {clock}"
        )
    put_text(img, fit_text(what, width - 12, f * 1.1), (6, top - 7), f * 1.1, INK)
    if layout.stats_w:
        put_text(img, "peak / mean rate", (plot_x + plot_w + 8, top - 7), f, DIM)

    for i in range(1, len(topics), 2):
        cv2.rectangle(
            img, (0, rows_top + i * row_h), (width - 1, rows_top + (i + 1) * row_h - 1), (246,) * 3, -1
        )
    _axis(img, segments, rows_top, axis_y, f * 0.9)
    put_text(img, "bags", (6, top + lane_h - 5), f, DIM)
    for (name, start, end), lane in zip(spans, lanes, strict=True):
        x0, x1 = _x(start, segments), _x(end, segments)
        x1 = max(x1, x0 + 2)
        y = top + lane * lane_h
        cv2.rectangle(img, (x0, y + 2), (x1, y + lane_h - 2), (232, 215, 190), -1)
        cv2.rectangle(img, (x0, y + 2), (x1, y + lane_h - 2), (160, 120, 70), 1)
        put_text(img, fit_text(name, max(x1 - x0 - 6, 0), f * 0.9), (x0 + 3, y + lane_h - 4), f * 0.9, INK)
        for x in (x0, x1):
            cv2.line(img, (x, rows_top), (x, axis_y), (200, 170, 130), 1)

    for i, topic in enumerate(topics):
        y = rows_top + i * row_h
        rows = by_topic[topic]
        colour = PALETTE[i % len(PALETTE)]
        for seg in segments:
            hz = rates_per_pixel(rows, seg)
            peak_px = float(hz.max()) if len(hz) else 0.0
            if peak_px <= 0:
                continue
            bars = np.round(hz / peak_px * (row_h - 4)).astype(int)
            for col in np.nonzero(bars)[0]:
                x = seg[2] + int(col)
                cv2.line(img, (x, y + row_h - 2), (x, y + row_h - 2 - int(bars[col])), colour, 1)
        peak = max(r["count"] / (r["bin_ns"] / 1e9) for r in rows)
        mean = sum(r["count"] for r in rows) / (
            sum(duration.get(b, 1) for b in {r["bag"] for r in rows}) / 1e9
        )
        put_text(img, fit_text(topic, layout.label_w - 10, f), (6, y + row_h - 5), f, INK)
        if layout.stats_w:
            stats = f"{_rate_label(peak)} / {_rate_label(mean)}"
            put_text(img, stats, (plot_x + plot_w + 8, y + row_h - 5), f, DIM)
    if hidden:
        put_text(img, f"+{hidden} more topics not drawn (see topic_table)", (6, height - 5), f, DIM)
    return img


def _axis(img: np.ndarray, segments: Sequence[Segment], rows_top: int, axis_y: int, font: float) -> None:
    """Seconds from the start over one segment; each segment's start time when recordings are apart."""
    for _, _, xs, xe in segments:
        cv2.line(img, (xs, axis_y), (xe, axis_y), INK, 1)
    if len(segments) == 1:
        t0, t1, xs, xe = segments[0]
        step = tick_step((t1 - t0) / 1e9, 8 if xe - xs > 300 else 4)
        for k in range(int((t1 - t0) / 1e9 / step + 1e-9) + 1):
            x = xs + round(k * step * 1e9 / (t1 - t0) * (xe - xs))
            cv2.line(img, (x, rows_top), (x, axis_y), GRID, 1)
            cv2.line(img, (x, axis_y), (x, axis_y + 4), INK, 1)
            put_text(img, f"{k * step:g}s", (x - 8, axis_y + 15), font, DIM)
        return
    long = segments[-1][1] - segments[0][0] > 86_400e9
    free = 0
    for t0, _, xs, _ in segments:
        cv2.line(img, (xs, axis_y), (xs, axis_y + 4), INK, 1)
        label = time.strftime("%Y-%m-%d" if long else "%H:%M:%S", time.gmtime(t0 / 1e9))
        if xs >= free:
            put_text(img, label, (xs, axis_y + 15), font, DIM)
            free = xs + text_width(label, font) + 6
