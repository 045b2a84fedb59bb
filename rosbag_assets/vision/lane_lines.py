"""Lane-line mask -> one polyline per painted line, and the learned lane backend built on it.

A segmentation network paints lane-line pixels; consumers want lines. Steps, all at the network's working
resolution: connected components -> split each into chains of per-row runs (so lines that touch, e.g.
near the vanishing point, come apart) -> join chains that continue one another (dashes of one line) ->
robust ``x = f(y)`` fit -> drop near-duplicates (the two strokes of a double line), transverse marks and
lines off the road or not converging to the vanishing point -> continue each line along its end
directions over the drivable area (down to where the road ends, a little way up towards the vanishing
point: the network's thin far paint often stops short) -> order left to right, mark the ego pair (nearest
line on each side of the centre at the bottom row), keep one neighbour each side (the lines TuSimple-style
labels cover). Tunables are fractions of the working width/height.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from rosbag_assets.vision.lane_geometry import Line, chains, compatible, fit, inside_span
from rosbag_assets.vision.lanes import Lane
from rosbag_assets.vision.twinlitenet import RoadMasks, TwinLiteNet

__all__ = ["LaneLineExtractor", "LaneResult", "TwinLiteLaneBackend", "extract_lanes"]


@dataclass(frozen=True)
class LaneResult:
    """Lanes of one frame plus the drivable area they were extended over.

    ``drivable`` is at the network's working resolution; ``scale`` (sx, sy) maps its pixels to the frame's.
    """

    lanes: list[Lane]
    drivable: np.ndarray  # bool [360, 640]
    drivable_fraction: float  # share of the frame's pixels that are drivable
    image_size: tuple[int, int]  # (width, height) of the frame
    scale: tuple[float, float]


@dataclass
class LaneLineExtractor:
    """Turns a lane-line mask (+ drivable mask) into lanes; see the module docstring for the steps."""

    min_area: int = 12  # px: smaller blobs are noise
    join_tol: float = 0.012  # distance across a line (fraction of width) to join a chain to it
    join_slope: float = 0.04  # extra tolerance per row of extrapolation (perspective bends)
    dup_tol: float = 0.03  # lines closer than this in x (fraction of width) over shared rows are one
    min_rows: float = 0.03  # fraction of the height a line must cover with paint
    max_slope: float = 10.0  # |dx/dy| above this is a transverse mark (stop line, crossing)
    on_road: float = 0.5  # share of a line's paint that must lie on (dilated) drivable area
    road_margin: float = 0.015  # dilation of the drivable area (fraction of width)
    vp_tol: float = 0.05  # lines must pass this close (fraction of width) to the vanishing point
    min_vp_rows: float = 0.08  # lines at least this tall (fraction of height) locate it
    extend_up: bool = True  # continue lines up to the vanishing point over drivable area
    extend_down: bool = True  # ... and down to where the drivable area ends
    max_up: float = 0.5  # ... but up by no more than this share of the painted extent
    neighbours: int | None = 1  # lines kept beyond the ego pair on each side (None: all)
    ego_reach: float = 1.0  # an ego line meets the bottom row within this many widths of the centre
    n_points: int = 20

    def __call__(self, masks: RoadMasks) -> list[Lane]:
        return self.extract(masks.lanes, masks.drivable, masks.scale)

    def extract(
        self, lane_mask: np.ndarray, drivable: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)
    ) -> list[Lane]:
        """Lanes in frame pixels (working pixels times ``scale``), ordered left to right."""
        h, w = lane_mask.shape
        k = max(1, round(self.road_margin * w)) * 2 + 1
        road = cv2.dilate(drivable.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        lines = self._join(chains(lane_mask, self.min_area), w, final=False)
        lines = [ln for ln in lines if self._keep(ln, road, h)]
        lines = self._join([ln.pts for ln in lines], w)  # fragments of one line, now with better fits
        lines = self._dedupe(sorted(lines, key=lambda ln: -ln.rows), w)
        vp = _vanishing_point(lines, h, w, self.min_vp_rows) or _single_line_vp(lines, drivable, h)
        if vp is not None:
            lines = [ln for ln in lines if abs(float(ln.x_at(vp[1])) - vp[0]) <= self.vp_tol * w]
        return self._to_lanes(lines, road, vp, scale, w, h)

    # -- steps ------------------------------------------------------------------------------------
    def _join(self, pieces: list[np.ndarray], w: int, final: bool = True) -> list[Line]:
        """Greedy: longest chains first; a chain joins the line that predicts its points best.

        Lines carry quick straight fits while joining; ``final`` gives them the full robust fit.
        """
        lines: list[Line] = []
        for pts in sorted(pieces, key=lambda c: -len(c)):
            best, best_err = None, np.inf
            for ln in lines:
                gap = max(0.0, ln.y_min - pts[:, 1].max(), pts[:, 1].min() - ln.y_max)
                tol = self.join_tol * w + self.join_slope * gap
                err = float(np.median(np.abs(ln.x_at(pts[:, 1]) - pts[:, 0]) / ln.stretch(pts[:, 1])))
                if err <= tol and err < best_err and compatible(ln, pts):
                    best, best_err = ln, err
            if best is None:
                lines.append(fit(Line(pts), w, quick=True))
            else:
                best.pts = np.concatenate([best.pts, pts])
                fit(best, w, quick=True)
        return [fit(ln, w) for ln in lines] if final else lines

    def _keep(self, ln: Line, road: np.ndarray, h: int) -> bool:
        if ln.rows < self.min_rows * h:
            return False
        if abs(float(ln.slope((ln.y_min + ln.y_max) / 2))) > self.max_slope:
            return False
        xs = np.clip(np.round(ln.pts[:, 0]).astype(int), 0, road.shape[1] - 1)
        return float(road[ln.pts[:, 1].astype(int), xs].mean()) >= self.on_road

    def _dedupe(self, lines: list[Line], w: int) -> list[Line]:
        """Merge a line into a stronger one it runs alongside within ``dup_tol`` (a double line's strokes)."""
        kept: list[Line] = []
        for ln in lines:
            for k in kept:
                lo, hi = max(ln.y_min, k.y_min), min(ln.y_max, k.y_max)
                if hi - lo < 4:
                    continue
                ys = np.linspace(lo, hi, 9)
                if float(np.abs(ln.x_at(ys) - k.x_at(ys)).mean()) < self.dup_tol * w:
                    k.pts = np.concatenate([k.pts, ln.pts])
                    fit(k, w)
                    break
            else:
                kept.append(ln)
        return kept

    def _extent(self, ln: Line, road: np.ndarray, top_limit: float) -> tuple[float, float]:
        """Rows the line can be continued to, up (not above ``top_limit``) and down, along its end
        directions while it stays on the (dilated) drivable area and inside the image."""
        h, w = road.shape

        def last_ok(ys: np.ndarray) -> int:
            xs = np.round(ln.x_at(ys)).astype(int)
            ok = (xs >= 0) & (xs < w)
            ok[ok] = road[ys[ok], xs[ok]]
            return int(np.argmin(ok)) if not ok.all() else len(ys)

        y_top, y_bottom = ln.y_min, ln.y_max
        if self.extend_down:
            down = np.arange(int(ln.y_max) + 1, h)
            n = last_ok(down)
            y_bottom = float(down[n - 1]) if n else y_bottom
        if self.extend_up:
            top_limit = max(top_limit, ln.y_min - self.max_up * (ln.y_max - ln.y_min))
            up = np.arange(int(ln.y_min) - 1, max(-1, int(np.ceil(top_limit)) - 1), -1)
            n = last_ok(up)
            y_top = float(up[n - 1]) if n else y_top
        return y_top, y_bottom

    def _to_lanes(
        self,
        lines: list[Line],
        road: np.ndarray,
        vp: tuple[float, float] | None,
        scale: tuple[float, float],
        w: int,
        h: int,
    ) -> list[Lane]:
        if not lines:
            return []
        bottoms = np.array([float(ln.x_at(h - 1)) for ln in lines])
        order = np.argsort(bottoms)
        lines, bottoms = [lines[i] for i in order], bottoms[order]
        centre = w / 2
        left = [i for i in range(len(lines)) if bottoms[i] < centre]
        right = [i for i in range(len(lines)) if bottoms[i] >= centre]
        ego_left = left[-1] if left and centre - bottoms[left[-1]] <= self.ego_reach * w else None
        ego_right = right[0] if right and bottoms[right[0]] - centre <= self.ego_reach * w else None
        if self.neighbours is not None:
            n = self.neighbours + 1
            chosen = set(left[-n:]) | set(right[:n])
        else:
            chosen = set(range(len(lines)))
        sx, sy = scale
        lanes = []
        for i, ln in enumerate(lines):
            if i not in chosen:
                continue
            y_top, y_end = self._extent(ln, road, vp[1] if vp else 0.0)
            span = inside_span(ln, y_top, y_end, w)
            if span is None:
                continue
            ys = np.linspace(span[0], span[1], self.n_points)
            xs = np.clip(ln.x_at(ys), -0.5, w - 0.5)
            pts = [
                (float((x + 0.5) * sx - 0.5), float((y + 0.5) * sy - 0.5))
                for x, y in zip(xs, ys, strict=True)
            ]
            side = "left" if i == ego_left else "right" if i == ego_right else "other"
            coverage = ln.rows / max(1.0, y_end - y_top + 1)
            lanes.append(Lane(lane_id=len(lanes), side=side, points=pts, score=_score(ln, coverage, w, h)))
        return lanes


def _vanishing_point(lines: list[Line], h: int, w: int, min_rows: float) -> tuple[float, float] | None:
    """Least-squares meeting point of the tall lines' upper ends (one refit without the worst outlier).

    Painted lines of a road converge there; a mark that does not (parking bay paint, a stop line seen
    at an angle, a kerb of a side street) is not a lane line. None with too few or too parallel lines.
    """
    tall = [ln for ln in lines if ln.rows >= min_rows * h]
    if len(tall) < 2:
        return None
    k = np.array([ln.ends[0][0] for ln in tall])
    b = np.array([ln.ends[0][1] for ln in tall])
    wt = np.sqrt([ln.rows for ln in tall])
    if np.ptp(np.degrees(np.arctan(k))) < 10:
        return None
    vp = None
    for _ in range(2):  # x = k*y + b  ->  k*yv - xv = -b
        a = np.stack([k, -np.ones_like(k)], axis=1)
        (yv, xv), *_ = np.linalg.lstsq(a * wt[:, None], -b * wt, rcond=None)
        vp = (float(xv), float(yv))
        res = np.abs(k * yv + b - xv)
        if len(k) <= 2 or res.max() <= 0.02 * w:
            break
        keep = res < res.max()
        k, b, wt = k[keep], b[keep], wt[keep]
    if vp is None or not (0.05 * h <= vp[1] <= 0.8 * h and -0.25 * w <= vp[0] <= 1.25 * w):
        return None
    return vp


def _single_line_vp(lines: list[Line], drivable: np.ndarray, h: int) -> tuple[float, float] | None:
    """With one tall line only: it meets the horizon (the drivable area's top row) at the vanishing point."""
    if not lines or not drivable.any():
        return None
    main = max(lines, key=lambda ln: ln.rows)
    rows = np.flatnonzero(drivable.any(axis=1))
    y = float(rows[0])
    if y >= main.y_min or main.rows < 0.15 * h:
        return None
    return float(main.x_at(y)), y


def _score(ln: Line, coverage: float, w: int, h: int) -> float:
    """0..1 from painted length, share of the drawn extent backed by paint, and fit tightness."""
    length = min(1.0, ln.rows / (0.25 * h))
    tight = 1.0 / (1.0 + ln.resid / (0.005 * w))
    return float(np.clip(0.4 * length + 0.3 * min(1.0, coverage) + 0.3 * tight, 0.0, 1.0))


def extract_lanes(masks: RoadMasks, extractor: LaneLineExtractor | None = None) -> list[Lane]:
    """Lanes of one frame's network output (default extractor settings)."""
    return (extractor or LaneLineExtractor())(masks)


# -- backend --------------------------------------------------------------------------------------------
class TwinLiteLaneBackend:
    """Learned lane backend: TwinLiteNet masks -> polylines. ``detect`` for one frame, ``detect_batch`` for many."""

    name = "twinlitenet-bdd100k-v1"

    def __init__(
        self,
        model_path: str | None = None,
        providers: Sequence[str] | None = None,
        batch_size: int = 8,
        intra_op_threads: int = 0,
        **extractor_options: float | int | None,
    ) -> None:
        self.model = TwinLiteNet(
            model_path, providers, intra_op_threads=intra_op_threads, batch_size=batch_size
        )
        self.extractor = LaneLineExtractor(**extractor_options)  # type: ignore[arg-type]

    def detect(self, image_bgr: np.ndarray) -> list[Lane]:
        return self.detect_batch([image_bgr])[0].lanes

    def detect_batch(self, images_bgr: Sequence[np.ndarray]) -> list[LaneResult]:
        results = []
        for masks in self.model.run(images_bgr):
            lanes = self.extractor(masks)
            results.append(
                LaneResult(
                    lanes=lanes,
                    drivable=masks.drivable,
                    drivable_fraction=float(masks.drivable.mean()),
                    image_size=masks.image_size,
                    scale=masks.scale,
                )
            )
        return results
