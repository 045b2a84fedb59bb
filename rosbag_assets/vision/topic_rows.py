"""Rows (messages) per topic over time as a picture that stays readable at the Dagster UI's 320 px.

`vision.timeline` draws the full 960 px inventory timeline with small print; shrunk to the 320 px inline copy
its text is about 3 px high. This chart is drawn 640 px wide with print twice that size: one row per topic,
the topic name and its total written over pale rate bars (each topic relative to its own peak), bag gaps cut
out the way the timeline cuts them (its `time_segments`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from rosbag_assets.vision.chart import BG, DIM, INK, PALETTE, fit_text, pale, put_text, text_width, tick_step
from rosbag_assets.vision.timeline import rates_per_pixel, time_segments

WIDTH = 640
MARGIN = 8
ROW_H = 34
TITLE_H = 36
AXIS_H = 34
MAX_TOPICS = 24
TEXT = 0.62  # font scale of names and numbers: ~7 px capitals once shown at 320 px


def draw_topic_rows(
    bags: Sequence[dict[str, Any]], rates: Sequence[dict[str, Any]], title: str, width: int = WIDTH
) -> np.ndarray:
    """BGR picture: `title`, then one row per topic (at most MAX_TOPICS, the busiest) and a time axis.

    `bags`: dicts with ``bag``, ``start_ns``, ``end_ns``; `rates`: dicts with ``topic``, ``start_ns``,
    ``bin_ns``, ``count`` (the shapes `vision.timeline.draw_timeline` takes).
    """
    spans = sorted((int(b["start_ns"]), int(b["end_ns"])) for b in bags if b.get("start_ns") is not None)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for row in rates:
        by_topic.setdefault(row["topic"], []).append(row)
    totals = {t: sum(int(r["count"]) for r in rows) for t, rows in by_topic.items()}
    if not spans or not totals:
        img = np.full((TITLE_H + ROW_H, width, 3), BG, np.uint8)
        put_text(img, fit_text(title, width - 2 * MARGIN, TEXT), (MARGIN, 26), TEXT)
        put_text(img, "no rows written", (MARGIN, TITLE_H + 24), TEXT, DIM)
        return img
    topics = sorted(sorted(totals, key=lambda t: -totals[t])[:MAX_TOPICS])
    hidden = len(totals) - len(topics)
    segments = time_segments(spans, MARGIN, width - 2 * MARGIN)
    axis_y = TITLE_H + len(topics) * ROW_H
    height = axis_y + AXIS_H + (ROW_H if hidden else 0)
    img = np.full((height, width, 3), BG, np.uint8)
    put_text(img, fit_text(title, width - 2 * MARGIN, TEXT), (MARGIN, 26), TEXT)
    for i, topic in enumerate(topics):
        y = TITLE_H + i * ROW_H
        if i % 2:
            cv2.rectangle(img, (0, y), (width - 1, y + ROW_H - 1), (245, 245, 245), -1)
        colour = pale(PALETTE[i % len(PALETTE)])
        for seg in segments:
            per_px = rates_per_pixel(by_topic[topic], seg)
            peak = float(per_px.max()) if len(per_px) else 0.0
            if peak <= 0:
                continue
            bars = np.round(per_px / peak * (ROW_H - 4)).astype(int)
            for col in np.nonzero(bars)[0]:
                x = seg[2] + int(col)
                cv2.line(img, (x, y + ROW_H - 2), (x, y + ROW_H - 2 - int(bars[col])), colour, 1)
        count = f"{totals[topic]:,}"
        put_text(img, count, (width - MARGIN - text_width(count, TEXT), y + ROW_H - 10), TEXT)
        put_text(
            img,
            fit_text(topic, width - 3 * MARGIN - text_width(count, TEXT), TEXT),
            (MARGIN, y + ROW_H - 10),
            TEXT,
        )
    _axis(img, segments, axis_y)
    if hidden:
        put_text(img, f"+{hidden} quieter topics not drawn", (MARGIN, height - 10), TEXT, DIM)
    return img


def _axis(img: np.ndarray, segments: Sequence[tuple[int, int, int, int]], axis_y: int) -> None:
    """Seconds from the start over one segment; each segment's start clock time when recordings are apart."""
    for _, _, xs, xe in segments:
        cv2.line(img, (xs, axis_y), (xe, axis_y), INK, 2)
    if len(segments) == 1:
        t0, t1, xs, xe = segments[0]
        step = tick_step((t1 - t0) / 1e9, ticks=5)
        for k in range(int((t1 - t0) / 1e9 / step + 1e-9) + 1):
            x = xs + round(k * step * 1e9 / (t1 - t0) * (xe - xs))
            cv2.line(img, (x, axis_y), (x, axis_y + 6), INK, 2)
            label = f"{k * step:g} s"
            put_text(
                img,
                label,
                (
                    min(max(x - text_width(label, TEXT) // 2, 0), img.shape[1] - text_width(label, TEXT)),
                    axis_y + 28,
                ),
                TEXT,
            )
        return
    free = 0
    for t0, _, xs, _ in segments:
        cv2.line(img, (xs, axis_y), (xs, axis_y + 6), INK, 2)
        label = time.strftime("%H:%M:%S", time.gmtime(t0 / 1e9))
        x = min(xs, img.shape[1] - text_width(label, TEXT) - 2)  # the last recording's label ends at the edge
        if x >= free:
            put_text(img, label, (x, axis_y + 28), TEXT)
            free = x + text_width(label, TEXT) + 10
