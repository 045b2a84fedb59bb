"""Geometry of lane-line masks: per-row run chains and robust ``x = f(y)`` line fits.

Kept apart from the extraction policy in :mod:`rosbag_assets.vision.lane_lines` (which lines to keep, join,
extend, call ego): these are the mechanics it is built on, in the network's working pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["Line", "chains", "compatible", "fit", "inside_span"]


@dataclass
class Line:
    """Mask points (run centres, one per row and chain) believed to be one painted line.

    ``coef`` (x = f(y), highest power first), ``ends`` (straight continuations above/below) and the row
    extent are set by :func:`fit` whenever the points change.
    """

    pts: np.ndarray  # float [N, 2] (x, y), working pixels
    coef: np.ndarray = field(default_factory=lambda: np.zeros(2))
    ends: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros(2), np.zeros(2)))
    resid: float = 0.0
    y_min: float = 0.0
    y_max: float = 0.0
    rows: int = 0

    def slope(self, y: np.ndarray | float) -> np.ndarray:
        """dx/dy of the fit inside the rows, of the straight continuation beyond them."""
        y = np.asarray(y, float)
        k = (
            _pv(np.polyder(self.coef), np.clip(y, self.y_min, self.y_max))
            if len(self.coef) > 2
            else self.coef[0]
        )
        return np.where(y < self.y_min, self.ends[0][0], np.where(y > self.y_max, self.ends[1][0], k))

    def stretch(self, y: np.ndarray | float) -> np.ndarray:
        """sqrt(1 + (dx/dy)^2): a row-wise x offset over this is the distance across the line."""
        k = self.slope(y)
        return np.sqrt(1.0 + k * k)

    def x_at(self, y: np.ndarray | float) -> np.ndarray:
        """The fit inside the supported rows; beyond them the straight line through the nearest third."""
        y = np.asarray(y, float)
        x = _pv(self.coef, np.clip(y, self.y_min, self.y_max))
        x = np.where(y < self.y_min, _pv(self.ends[0], y), x)
        return np.where(y > self.y_max, _pv(self.ends[1], y), x)


def _pv(coef: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """Horner evaluation without np.polyval's per-call overhead (called thousands of times a frame)."""
    out = np.zeros_like(np.asarray(y, float)) + coef[0]
    for c in coef[1:]:
        out = out * y + c
    return out


def inside_span(ln: Line, y_top: float, y_end: float, w: int) -> tuple[float, float] | None:
    """Rows (half-pixel steps) of the longest stretch where the line lies within the image's width."""
    ys = np.arange(y_top, y_end + 0.25, 0.5)
    inside = np.abs(ln.x_at(ys) - (w - 1) / 2) <= w / 2
    if inside.sum() < 2:
        return None
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
    starts, stops = edges[::2], edges[1::2]
    j = int(np.argmax(stops - starts))
    return float(ys[starts[j]]), float(ys[stops[j] - 1])


# -- mask -> chains ---------------------------------------------------------------------------------
def chains(mask: np.ndarray, min_area: int, min_rows: int = 3) -> list[np.ndarray]:
    """Per-row runs of each component, linked row to row while the link is one-to-one.

    Where a run touches two runs in the next row (lines merging, a branch) the chains end and new ones
    start, so every chain holds at most one run per row: its centres trace one line.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out: list[np.ndarray] = []
    for k in range(1, n):
        x0, y0, cw, ch, area = stats[k]
        if area < min_area:
            continue
        sub = labels[y0 : y0 + ch, x0 : x0 + cw] == k
        for chain in _link_runs(sub):
            if len(chain) < min_rows:
                continue
            pts = np.asarray(chain, float)
            pts[:, 0] += x0
            pts[:, 1] += y0
            out.append(pts)
    return out


def _link_runs(sub: np.ndarray) -> list[list[tuple[float, float]]]:
    edges = np.diff(np.pad(sub.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    rows_s, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # exclusive; same row order as starts
    runs_by_row: dict[int, list[tuple[int, int]]] = {}
    for r, s, e in zip(rows_s.tolist(), starts.tolist(), ends.tolist(), strict=True):
        runs_by_row.setdefault(r, []).append((s, e))
    chains: list[list[tuple[float, float]]] = []
    prev: list[tuple[int, int, int]] = []  # (start, end, chain index) of the row above
    for r in sorted(runs_by_row):
        runs = runs_by_row[r]
        touch = [[j for j, (ps, pe, _) in enumerate(prev) if s <= pe and ps <= e] for s, e in runs]
        down = [sum(j in t for t in touch) for j in range(len(prev))]
        cur = []
        for (s, e), t in zip(runs, touch, strict=True):
            if len(t) == 1 and down[t[0]] == 1 and (e - s) <= 3 * (prev[t[0]][1] - prev[t[0]][0]) + 6:
                ci = prev[t[0]][2]
            else:
                ci = len(chains)
                chains.append([])
            chains[ci].append(((s + e - 1) / 2, float(r)))
            cur.append((s, e, ci))
        prev = cur if r + 1 in runs_by_row else []
    return chains


# -- fitting ------------------------------------------------------------------------------------------
def _line_fit(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Closed-form least-squares ``x = k*y + b`` (np.polyfit's overhead dominates at these sizes)."""
    my, mx = ys.mean(), xs.mean()
    dy = ys - my
    var = float(dy @ dy)
    k = float(dy @ (xs - mx)) / var if var > 0 else 0.0
    return np.array([k, mx - k * my])


def fit(ln: Line, w: int, quick: bool = False) -> Line:
    """Trimmed least squares ``x = f(y)``: straight, or quadratic over a long span if it bows plausibly.

    ``quick`` (while chains are still being joined): one straight fit plus the end directions.
    """
    ys, xs = ln.pts[:, 1], ln.pts[:, 0]
    ln.y_min, ln.y_max = float(ys.min()), float(ys.max())
    ln.rows = len(np.unique(ys))
    if np.ptp(ys) < 2:
        ln.coef, ln.resid = np.array([0.0, float(xs.mean())]), 0.0
        ln.ends = (ln.coef, ln.coef)
        return ln
    coef = _line_fit(ys, xs)
    if not quick:
        err = np.abs(_pv(coef, ys) - xs)
        keep = err <= max(2.0, 3 * float(np.median(err)))
        if keep.sum() >= 3:
            ys, xs = ys[keep], xs[keep]
            coef = _line_fit(ys, xs)
        if np.ptp(ys) > 40 and len(np.unique(ys)) > 20:
            quad = np.polyfit(ys, xs, 2)
            grid = np.linspace(ys.min(), ys.max(), 9)
            if np.abs(_pv(quad, grid) - _pv(coef, grid)).max() <= 0.03 * w:
                coef = quad
    ln.coef = coef
    ln.resid = float(np.abs(_pv(coef, ys) - xs).mean())
    ln.ends = (_end_line(ys, xs, coef, top=True), _end_line(ys, xs, coef, top=False))
    return ln


def _end_line(ys: np.ndarray, xs: np.ndarray, coef: np.ndarray, top: bool) -> np.ndarray:
    """Straight line through the top/bottom third of the points, continuous with the fit at that end.

    Extrapolating a quadratic (or even a straight fit of a whole curved line) throws its end off;
    the local direction of the end a line is continued from is what perspective and the road keep.
    """
    lo, hi = float(ys.min()), float(ys.max())
    span = hi - lo
    if span < 30:
        return coef if len(coef) == 2 else _line_fit(ys, xs)
    sel = ys <= lo + span / 3 if top else ys >= hi - span / 3
    k = _line_fit(ys[sel], xs[sel])[0] if np.ptp(ys[sel]) > 5 else _pv(np.polyder(coef), lo if top else hi)
    y0 = lo if top else hi
    return np.array([k, float(_pv(coef, y0)) - k * y0])


def compatible(ln: Line, pts: np.ndarray) -> bool:
    """A chain long enough to have a direction must lean the same way as the line (within ~15 degrees)."""
    if np.ptp(pts[:, 1]) < 6:
        return True
    k_chain = _line_fit(pts[:, 1], pts[:, 0])[0]
    k_line = float(ln.slope(float(np.median(pts[:, 1]))))
    return abs(np.degrees(np.arctan(k_chain) - np.arctan(k_line))) <= 15.0
