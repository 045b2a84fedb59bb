"""The catalog at a glance: one bar per drive (latest first), its boxes stacked by class, its length written.

Drawn 640 px wide with print that reads at the Dagster UI's 320 px, for the `catalog` asset's picture. The
caller passes a bounded list (the latest drives); the title says how many of how many are shown. Classes
are coloured as everywhere else (`preview.class_colour`); beyond the most frequent few they are one grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from rosbag_assets.vision.chart import BG, DIM, INK, fit_text, put_text, text_width
from rosbag_assets.vision.preview import class_colour

WIDTH = 640
TEXT = 0.62  # font scale: ~7 px capitals once shown at 320 px
MARGIN = 8
TITLE_H = 36
LEGEND_H = 30
ROW_H = 34
NAME_W = 190
LENGTH_W = 96
LEGEND_CLASSES = 6
OTHER = (170, 170, 170)


def _length(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


def _fit_middle(text: str, width: int) -> str:
    """`text` with its middle cut out to fit `width` pixels: drive names differ at both ends (date, run)."""
    if text_width(text, TEXT) <= width:
        return text
    head, tail = len(text) // 2, len(text) - len(text) // 2
    while head + tail > 2 and text_width(text[:head] + ".." + text[len(text) - tail :], TEXT) > width:
        head, tail = (head - 1, tail) if head > tail else (head, tail - 1)
    return text[:head] + ".." + text[len(text) - tail :]


def _legend(names: Sequence[str], width: int) -> list[tuple[int, int, str]]:
    """(line, x, name) of each legend entry, wrapping onto further lines."""
    out, line, x = [], 0, MARGIN
    for name in names:
        step = 22 + text_width(fit_text(name, 120, 0.55), 0.55) + 16
        if x > MARGIN and x + step - 16 > width - MARGIN:
            line, x = line + 1, MARGIN
        out.append((line, x, name))
        x += step
    return out


def draw_catalog_overview(drives: Sequence[dict[str, Any]], total: int, width: int = WIDTH) -> np.ndarray:
    """BGR picture of `drives` (dicts: ``drive``, ``duration_s``, ``classes`` {class name: (class id, boxes)})
    in the order given; `total` is how many drives the catalog holds."""
    title = (
        f"latest {len(drives)} of {total:,} drives: boxes per class"
        if total > len(drives)
        else (f"{total:,} drive{'s' * (total != 1)}: boxes per class")
    )
    totals: dict[str, list[int]] = {}
    for d in drives:
        for name, (class_id, n) in d.get("classes", {}).items():
            entry = totals.setdefault(name, [int(class_id), 0])
            entry[1] += int(n)
    named = sorted(totals, key=lambda c: -totals[c][1])[:LEGEND_CLASSES]
    colours = {c: class_colour(totals[c][0]) for c in named}
    legend = _legend([*named, *(["other"] if len(totals) > len(named) else [])], width)
    top = TITLE_H + LEGEND_H * (max((line for line, _, _ in legend), default=0) + 1)
    height = top + max(len(drives), 1) * ROW_H + MARGIN
    img = np.full((height, width, 3), BG, np.uint8)
    put_text(img, fit_text(title, width - 2 * MARGIN, TEXT), (MARGIN, 26), TEXT)
    for line, x, name in legend:
        y = TITLE_H + line * LEGEND_H
        cv2.rectangle(img, (x, y + 6), (x + 16, y + 22), colours.get(name, OTHER), -1)
        put_text(img, fit_text(name, 120, 0.55), (x + 22, y + 21), 0.55)
    if not drives:
        put_text(img, "no drives in the catalog yet", (MARGIN, top + 24), TEXT, DIM)
        return img
    peak = max(sum(n for _, n in d.get("classes", {}).values()) for d in drives) or 1
    bar_x, bar_w = NAME_W, width - NAME_W - LENGTH_W - MARGIN
    for i, d in enumerate(drives):
        y = top + i * ROW_H
        if i % 2 == 0:
            cv2.rectangle(img, (0, y), (width - 1, y + ROW_H - 1), (245, 245, 245), -1)
        put_text(img, _fit_middle(str(d["drive"]), NAME_W - 2 * MARGIN), (MARGIN, y + ROW_H - 10), TEXT)
        classes = d.get("classes", {})
        order = [c for c in named if c in classes] + sorted(c for c in classes if c not in colours)
        pos, count = float(bar_x), 0
        for name in order:
            n = int(classes[name][1])
            count += n
            end = pos + n / peak * bar_w
            cv2.rectangle(img, (round(pos), y + 6), (max(round(end) - 1, round(pos)), y + ROW_H - 7),
                          colours.get(name, OTHER), -1)  # fmt: skip
            pos = end
        text = f"{count:,}"
        tx = min(round(pos) + 6, bar_x + bar_w - text_width(text, 0.55))
        put_text(img, text, (tx, y + ROW_H - 11), 0.55, INK if tx > pos else (255, 255, 255))
        length = _length(d.get("duration_s"))
        put_text(img, length, (width - MARGIN - text_width(length, TEXT), y + ROW_H - 10), TEXT, DIM)
    return img
