"""What every chart in the asset metadata draws with: one font, one palette, text fitted rather than cut,
round axis steps. OpenCV only (no plotting library): the pictures are drawn inside steps that already
import it, and a chart costs milliseconds.

Scales are explicit at each call: the same chart is drawn at 960 px with small print and at the Dagster UI's
320 px inline width, where print must stay at least ~7 px high to be read.
"""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
BG, GRID, INK, DIM = (255, 255, 255), (225, 225, 225), (40, 40, 40), (120, 120, 120)
PALETTE = [
    (180, 119, 31),
    (14, 127, 255),
    (44, 160, 44),
    (40, 39, 214),
    (189, 103, 148),
    (75, 86, 140),
    (194, 119, 227),
    (127, 127, 127),
    (34, 189, 188),
    (207, 190, 23),
]  # fmt: skip  (BGR)


def _thickness(scale: float) -> int:
    return 2 if scale >= 0.6 else 1  # thin strokes of large print vanish when the picture is halved


def put_text(
    img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, ...] = INK
) -> int:
    """Draw `text` with its baseline at `org`; returns its width in pixels."""
    cv2.putText(img, text, org, FONT, scale, colour, _thickness(scale), cv2.LINE_AA)
    return text_width(text, scale)


def text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, FONT, scale, _thickness(scale))[0][0]


def fit_text(text: str, width: int, scale: float, keep_end: bool = True) -> str:
    """`text` shortened to fit `width` pixels: from the left by default (topic names differ at their end),
    from the right with `keep_end=False` (names that differ at their start, such as scene rules)."""
    if text_width(text, scale) <= width:
        return text
    while len(text) > 1 and text_width(text + "..", scale) > width:
        text = text[1:] if keep_end else text[:-1]
    return ".." + text if keep_end else text + ".."


def tick_step(span: float, ticks: int = 8) -> float:
    """A round step (1, 2 or 5 x 10^k) giving at most about `ticks` ticks over `span`."""
    raw = max(span / ticks, 1e-3)
    magnitude = 10 ** np.floor(np.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude))


def pale(colour: tuple[int, ...], keep: float = 0.45) -> tuple[int, ...]:
    """`colour` mixed with white: a fill that dark text stays readable on."""
    return tuple(round(c * keep + 255 * (1 - keep)) for c in colour)
