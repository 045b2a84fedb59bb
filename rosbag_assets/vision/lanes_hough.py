"""
The classical backend (``opencv-hough``): a classical OpenCV pipeline that needs no model
weights: paint mask (white top-hat on HLS lightness + yellow hue) in a road trapezoid -> probabilistic
Hough segments, slope filter, collinear clusters, RANSAC seed lines -> vanishing point -> mask pixels
grouped by direction seen from the vanishing point (dashes of one line fall together) -> trimmed
least-squares ``x = f(y)`` (1st/2nd order) -> polylines over the visible rows. It works on a fixed
internal width, so its tunables (fractions of the image size) are resolution independent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from rosbag_assets.vision import hough_geometry
from rosbag_assets.vision.lanes import Lane, as_bgr


@dataclass
class _Cluster:
    """Hough segments believed to belong to one painted line (working-resolution pixels)."""

    segments: list[np.ndarray] = field(default_factory=list)

    @property
    def length(self) -> float:
        return float(sum(np.hypot(s[2] - s[0], s[3] - s[1]) for s in self.segments))


@dataclass
class HoughLaneDetector:
    """Classical lane detector: paint mask, Hough seeds, vanishing point, robust polynomial fit.

    All geometric tunables are fractions of the image height/width, applied on an internal copy
    resized to ``work_width`` pixels, so results do not depend on the input resolution.
    """

    name = "opencv-hough-lanes-v1"

    work_width: int = 640
    roi_top: float = 0.45
    roi_bottom: float = 1.0
    roi_top_half_width: float = 0.18
    tophat_width: float = 0.04
    min_contrast: float = 25.0
    hough_min_length: float = 0.025
    min_angle_deg: float = 20.0
    max_angle_deg: float = 85.0
    min_lane_length: float = 0.10
    cluster_tol: float = 0.015
    cluster_angle_deg: float = 6.0
    ransac_tol: float = 0.006
    max_gap: float = 0.2
    bin_deg: float = 0.5
    nms_bins: int = 4
    vp_iterations: int = 2
    poly_degree: int = 2
    vp_tol: float = 0.04
    max_lanes: int = 4
    n_points: int = 20

    # -- public -----------------------------------------------------------------------------------
    def detect(self, image_bgr: np.ndarray) -> list[Lane]:
        """Detect lane markings; returns lanes sorted left to right with ego lanes labelled."""
        image = as_bgr(image_bgr)
        h0, w0 = image.shape[:2]
        scale = self.work_width / w0
        work = cv2.resize(image, (self.work_width, max(1, round(h0 * scale))), interpolation=cv2.INTER_AREA)
        mask = self.marking_mask(work)
        vp = self.vanishing_point(mask)
        fits: list[dict[str, Any]] = []
        for _ in range(self.vp_iterations if vp is not None else 0):
            fits = [f for band in self._line_bands(mask, vp) if (f := self._fit_band(band, mask.shape))]
            vp = hough_geometry.refine_vanishing_point(fits, vp, mask.shape)
        return self._to_lanes(fits, work.shape, 1.0 / scale)

    def vanishing_point(self, mask: np.ndarray) -> tuple[float, float] | None:
        """Road vanishing point (working pixels) from Hough seed lines; a lone line gets a default horizon."""
        segments = self._segments(mask)
        seeds = [f for c in self._cluster(segments, mask.shape) if (f := self._fit(c.segments, mask.shape))]
        if not seeds:
            return None
        vp = hough_geometry.vanishing_point(seeds, mask.shape, self.vp_tol)
        if vp is None:  # one line only: assume the horizon just above the region of interest
            k, x0 = max(seeds, key=lambda f: f["support"])["line"]
            y = (self.roi_top - 0.05) * mask.shape[0]
            vp = (x0 + k * y, y)
        return vp

    def marking_mask(self, work_bgr: np.ndarray) -> np.ndarray:
        """Paint mask inside the road trapezoid: 0 = none, else strength (bright-narrow white or yellow).

        Strength grows with the local contrast, so faint cracks or tyre marks weigh less than paint.
        """
        h, w = work_bgr.shape[:2]
        hls = cv2.cvtColor(work_bgr, cv2.COLOR_BGR2HLS)
        light = cv2.GaussianBlur(hls[:, :, 1], (3, 3), 0)
        kw = max(3, round(self.tophat_width * w) | 1)
        tophat = cv2.morphologyEx(light, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (kw, 1)))
        white = tophat >= self.min_contrast
        hue, sat = hls[:, :, 0], hls[:, :, 2]
        yellow = (hue >= 12) & (hue <= 35) & (sat >= 70) & (light >= 70) & (tophat >= self.min_contrast / 2)
        paint = ((white | yellow) * 255).astype(np.uint8)
        keep = cv2.morphologyEx(paint, cv2.MORPH_OPEN, np.ones((2, 1), np.uint8))
        strength = np.clip(tophat.astype(np.float32) * (255.0 / (3 * self.min_contrast)), 1, 255)
        strength[yellow] = 255
        mask = np.where(keep > 0, strength, 0).astype(np.uint8)
        return cv2.bitwise_and(mask, self._roi(h, w))

    # -- pipeline steps ---------------------------------------------------------------------------
    def _roi(self, h: int, w: int) -> np.ndarray:
        top, bottom = int(self.roi_top * h), int(self.roi_bottom * h) - 1
        half = self.roi_top_half_width * w
        poly = np.array(
            [
                [0, bottom],
                [0, int(0.75 * h)],
                [w / 2 - half, top],
                [w / 2 + half, top],
                [w - 1, int(0.75 * h)],
                [w - 1, bottom],
            ],
            dtype=np.int32,
        )
        roi = np.zeros((h, w), np.uint8)
        cv2.fillPoly(roi, [poly], 255)
        return roi

    def _segments(self, mask: np.ndarray) -> np.ndarray:
        """Probabilistic Hough segments whose angle fits a lane seen in perspective."""
        h = mask.shape[0]
        edges = cv2.Canny((mask > 0).astype(np.uint8) * 255, 50, 150)
        lines = cv2.HoughLinesP(
            edges,
            1,
            np.pi / 180,
            threshold=max(8, int(0.03 * h)),
            minLineLength=max(6, int(self.hough_min_length * h)),
            maxLineGap=max(3, int(0.02 * h)),
        )
        if lines is None:
            return np.zeros((0, 4), np.float64)
        seg = lines[:, 0, :].astype(np.float64)
        angle = np.degrees(np.arctan2(np.abs(seg[:, 3] - seg[:, 1]), np.abs(seg[:, 2] - seg[:, 0])))
        keep = (angle >= self.min_angle_deg) & (angle <= self.max_angle_deg)
        return seg[keep]

    def _cluster(self, segments: np.ndarray, shape: tuple[int, ...]) -> list[_Cluster]:
        """Greedy grouping: segments that are collinear (same angle, on one line) form one cluster."""
        h, w = shape[:2]
        lengths = np.hypot(segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1])
        free = np.ones(len(segments), bool)
        clusters: list[_Cluster] = []
        for i in np.argsort(-lengths):
            if not free[i]:
                continue
            x1, y1, x2, y2 = segments[i]
            k = (x2 - x1) / (y2 - y1)
            near = hough_geometry.near_line(
                segments, k, x1 - k * y1, self.cluster_tol * w, self.cluster_angle_deg
            )
            members = np.flatnonzero(free & near)
            free[members] = False
            clusters.append(_Cluster([segments[j] for j in members]))
        min_len = self.min_lane_length * h
        return [c for c in clusters if c.length >= min_len]

    def _fit(self, segments: list[np.ndarray], shape: tuple[int, ...]) -> dict[str, Any] | None:
        """Straight seed line (RANSAC) through one cluster of Hough segments."""
        h, w = shape[:2]
        pts = hough_geometry.sample_segments(segments, step=2.0)
        if len(pts) < 4:
            return None
        inl = hough_geometry.ransac_line(pts, tol=max(1.5, self.ransac_tol * w) * 2)
        if inl is None or np.ptp(pts[inl, 1]) < self.min_lane_length * h * 0.8:
            return None
        return {
            "line": np.polyfit(pts[inl, 1], pts[inl, 0], 1),
            "support": float(inl.sum()),
            "y_max": float(pts[inl, 1].max()),
        }

    def _line_bands(self, mask: np.ndarray, vp: tuple[float, float]) -> list[np.ndarray]:
        """Mask pixels grouped by their direction seen from the vanishing point (one group per line).

        Every pixel below the vanishing point gets its angle about it; a bin's strength is the number of
        image rows that have a pixel in it, so a dashed line counts as much as its visible extent and
        compact clutter (cars, walls) counts little. Peaks of that profile are the painted lines.
        """
        h = mask.shape[0]
        xv, yv = vp
        ys, xs = np.nonzero(mask)
        below = ys > yv + 0.02 * h
        ys, xs = ys[below], xs[below]
        weight = mask[ys, xs].astype(np.float64) / 255.0
        if len(ys) == 0:
            return []
        theta = np.degrees(np.arctan2(xs - xv, ys - yv))  # 0 = straight down
        limit = 90.0 - self.min_angle_deg
        nb = int(2 * limit / self.bin_deg) + 1
        bins = np.clip(((theta + limit) / self.bin_deg).astype(int), 0, nb - 1)
        occ = np.zeros((h, nb + 2))
        np.maximum.at(occ, (ys, bins + 1), weight)
        occ = np.maximum(np.maximum(occ[:, :-2], occ[:, 1:-1]), occ[:, 2:])  # a line may straddle two bins
        rows = occ.sum(axis=0)
        min_rows = self.min_lane_length * (h - yv)
        taken = np.zeros(len(rows), bool)
        bands = []
        for b in np.argsort(-rows):
            if rows[b] < min_rows or len(bands) >= 2 * self.max_lanes:
                break
            if taken[b]:
                continue
            lo, hi = hough_geometry.peak_extent(rows, b, self.nms_bins)
            taken[max(0, lo - self.nms_bins) : hi + self.nms_bins + 1] = True
            sel = (bins >= lo) & (bins <= hi)
            bands.append(np.stack([xs[sel], ys[sel]], axis=1).astype(np.float64))
        return bands

    def _fit_band(self, pts: np.ndarray, shape: tuple[int, ...]) -> dict[str, Any] | None:
        """Robust polynomial ``x = f(y)`` on one band's pixels, over its longest gap-free run of rows."""
        h, w = shape[:2]
        if len(pts) < 4:
            return None
        pts = hough_geometry.longest_run(pts, max_gap=self.max_gap * h)
        if np.ptp(pts[:, 1]) < self.min_lane_length * h:
            return None
        tol = max(1.5, self.ransac_tol * w)
        coef = np.polyfit(pts[:, 1], pts[:, 0], 1)
        for degree in (1, self.poly_degree):  # trimmed least squares: refit on points near the last fit
            keep = np.abs(np.polyval(coef, pts[:, 1]) - pts[:, 0]) <= 3 * tol
            if keep.sum() < 4:
                return None
            pts = pts[keep]
            coef = np.polyfit(pts[:, 1], pts[:, 0], degree if np.ptp(pts[:, 1]) > 0.15 * h else 1)
        y_min, y_max = float(pts[:, 1].min()), float(pts[:, 1].max())
        if len(coef) == 3 and not hough_geometry.plausible_curvature(coef, y_min, y_max, w):
            coef = np.polyfit(pts[:, 1], pts[:, 0], 1)
        resid = np.abs(np.polyval(coef, pts[:, 1]) - pts[:, 0])
        rows = len(np.unique(pts[:, 1]))
        coverage = rows / max(1.0, y_max - y_min + 1)  # share of rows in the visible range with paint
        return {
            "coef": coef,
            "line": np.polyfit(pts[:, 1], pts[:, 0], 1),
            "y_min": y_min,
            "y_max": y_max,
            "support": float(rows),
            "resid": float(resid.mean()),
            "fraction": coverage,
            "slope_bottom": float(np.polyval(np.polyder(coef), y_max)),
            "x_bottom": float(np.polyval(coef, h - 1)),
        }

    def _to_lanes(self, fits: list[dict[str, Any]], shape: tuple[int, ...], inv_scale: float) -> list[Lane]:
        """Deduplicate, keep the strongest lines, label ego left/right, scale back to input pixels."""
        h, w = shape[:2]
        fits = hough_geometry.dedupe(sorted(fits, key=lambda f: -f["support"]), w, h)[: self.max_lanes]
        fits.sort(key=lambda f: f["x_bottom"])
        left = [f for f in fits if f["slope_bottom"] < 0 and f["x_bottom"] < w * 0.6]
        right = [f for f in fits if f["slope_bottom"] > 0 and f["x_bottom"] > w * 0.4]
        ego_left = max(left, key=lambda f: f["x_bottom"]) if left else None
        ego_right = min(right, key=lambda f: f["x_bottom"]) if right else None
        lanes = []
        for i, f in enumerate(fits):
            side = "left" if f is ego_left else "right" if f is ego_right else "other"
            ys = np.linspace(f["y_min"], f["y_max"], self.n_points)
            xs = np.clip(np.polyval(f["coef"], ys), 0, w - 1)
            pts = [(float(x * inv_scale), float(y * inv_scale)) for x, y in zip(xs, ys, strict=True)]
            lanes.append(Lane(lane_id=i, side=side, points=pts, score=hough_geometry.score(f, h, w)))
        return lanes
