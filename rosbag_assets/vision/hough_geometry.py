"""Geometry behind the ``opencv-hough`` lane backend: segment sampling, RANSAC lines, the vanishing point,
and how plausible, distinct and strong a fitted line is. Working-resolution pixels throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def sample_segments(segments: list[np.ndarray], step: float) -> np.ndarray:
    """Points every ``step`` pixels along each segment (so long segments weigh more)."""
    out = []
    for x1, y1, x2, y2 in segments:
        n = max(2, int(np.hypot(x2 - x1, y2 - y1) / step) + 1)
        t = np.linspace(0.0, 1.0, n)
        out.append(np.stack([x1 + t * (x2 - x1), y1 + t * (y2 - y1)], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2))


def ransac_line(pts: np.ndarray, tol: float, iters: int = 60) -> np.ndarray | None:
    """Inlier mask of the best line ``x = x0 + k * y`` through random point pairs (seeded, deterministic)."""
    rng = np.random.default_rng(0)
    best: np.ndarray | None = None
    for _ in range(iters):
        a, b = pts[rng.choice(len(pts), 2, replace=False)]
        if abs(b[1] - a[1]) < 1e-6:
            continue
        k = (b[0] - a[0]) / (b[1] - a[1])
        inl = np.abs(pts[:, 0] - (a[0] + k * (pts[:, 1] - a[1]))) <= tol
        if best is None or inl.sum() > best.sum():
            best = inl
    return best


def peak_extent(profile: np.ndarray, peak: int, max_half: int) -> tuple[int, int]:
    """Bins around ``peak`` (at most ``max_half`` each way) whose value stays above half the peak."""
    lo = hi = peak
    half = profile[peak] / 2
    while lo > 0 and peak - lo < max_half and profile[lo - 1] >= half:
        lo -= 1
    while hi < len(profile) - 1 and hi - peak < max_half and profile[hi + 1] >= half:
        hi += 1
    return lo, hi


def longest_run(pts: np.ndarray, max_gap: float) -> np.ndarray:
    """Points of the run of rows (split where ``y`` jumps more than ``max_gap``) with most rows."""
    order = np.argsort(pts[:, 1])
    pts = pts[order]
    cuts = np.flatnonzero(np.diff(pts[:, 1]) > max_gap) + 1
    runs = np.split(pts, cuts)
    return max(runs, key=lambda r: len(np.unique(np.round(r[:, 1]))))


def near_line(segments: np.ndarray, k: float, x0: float, tol: float, angle_deg: float) -> np.ndarray:
    """Mask of segments with both ends within ``tol`` px of ``x = x0 + k*y`` and a similar direction."""
    d1 = np.abs(segments[:, 0] - (x0 + k * segments[:, 1]))
    d2 = np.abs(segments[:, 2] - (x0 + k * segments[:, 3]))
    k_seg = (segments[:, 2] - segments[:, 0]) / (segments[:, 3] - segments[:, 1])
    turn = np.degrees(np.abs(np.arctan(k_seg) - np.arctan(k)))
    return (np.maximum(d1, d2) <= tol) & (turn <= angle_deg)


def vanishing_point(
    fits: list[dict[str, Any]], shape: tuple[int, ...], tol: float
) -> tuple[float, float] | None:
    """Intersection of line pairs that most painted length passes near; None with fewer than two lines."""
    h, w = shape[:2]
    weight = {id(f): f["support"] * (f["y_max"] / h) ** 2 for f in fits}
    best, best_support = None, 0.0
    for i, a in enumerate(fits):
        for b in fits[i + 1 :]:
            (ka, xa), (kb, xb) = a["line"], b["line"]
            if ka * kb >= 0:  # the two sides of a road lean in opposite directions
                continue
            y = (xb - xa) / (ka - kb)
            vp = (xa + ka * y, y)
            if not (0.15 * h <= y <= 0.75 * h and 0.1 * w <= vp[0] <= 0.9 * w):
                continue
            support = sum(weight[id(f)] for f in fits if dist_to_vp(f, vp) <= tol * w)
            if support > best_support:
                best, best_support = vp, support
    return best


def refine_vanishing_point(
    fits: list[dict[str, Any]], vp: tuple[float, float], shape: tuple[int, ...]
) -> tuple[float, float]:
    """Weighted least-squares meeting point of the fitted lines; keeps ``vp`` unless both sides are seen."""
    h, w = shape[:2]
    strong = sorted(fits, key=lambda f: -f["support"])[:4]
    if not (any(f["line"][0] < 0 for f in strong) and any(f["line"][0] > 0 for f in strong)):
        return vp
    # x0 + k*yv - xv = 0 for every line  ->  [k, -1] @ [yv, xv] = -x0
    a = np.array([[f["line"][0], -1.0] for f in strong])
    b = np.array([-f["line"][1] for f in strong])
    wt = np.sqrt([f["support"] for f in strong])
    (yv, xv), *_ = np.linalg.lstsq(a * wt[:, None], b * wt, rcond=None)
    if not (0.1 * h <= yv <= 0.8 * h and 0 <= xv <= w):
        return vp
    return float(xv), float(yv)


def dist_to_vp(fit: dict[str, Any], vp: tuple[float, float]) -> float:
    """Horizontal distance between a fit's straight line and the vanishing point at its height."""
    k, x0 = fit["line"]
    return abs(x0 + k * vp[1] - vp[0])


def plausible_curvature(coef: np.ndarray, y_min: float, y_max: float, w: int) -> bool:
    """Reject quadratics whose bow away from their chord exceeds a few percent of the width."""
    ys = np.linspace(y_min, y_max, 9)
    quad = np.polyval(coef, ys)
    chord = np.interp(ys, [y_min, y_max], [quad[0], quad[-1]])
    return float(np.abs(quad - chord).max()) <= 0.03 * w


def dedupe(fits: list[dict[str, Any]], w: int, h: int) -> list[dict[str, Any]]:
    """Drop fits lying on top of a stronger one (the two edges of one painted stripe)."""
    kept: list[dict[str, Any]] = []
    for f in fits:
        lo = max(f["y_min"], min(k["y_min"] for k in kept)) if kept else 0
        if not any(mean_gap(f, k) < 0.03 * w for k in kept if min(f["y_max"], k["y_max"]) > lo):
            kept.append(f)
    return kept


def mean_gap(a: dict[str, Any], b: dict[str, Any]) -> float:
    y0, y1 = max(a["y_min"], b["y_min"]), min(a["y_max"], b["y_max"])
    if y1 <= y0:  # no shared rows: compare the extrapolation at the nearer end
        y0 = y1 = (a["y_max"] + b["y_max"]) / 2
    ys = np.linspace(y0, y1, 5)
    return float(np.abs(np.polyval(a["coef"], ys) - np.polyval(b["coef"], ys)).mean())


def score(fit: dict[str, Any], h: int, w: int) -> float:
    """Confidence in [0, 1] from painted length, fit residual and RANSAC inlier fraction."""
    length = min(1.0, fit["support"] / (0.5 * h))
    tight = 1.0 / (1.0 + fit["resid"] / (0.005 * w))
    return float(np.clip(0.5 * length + 0.3 * tight + 0.2 * fit["fraction"], 0.0, 1.0))
