"""Labels as Foxglove ``ImageAnnotations``, in the colours the UI's pictures use (`vision.preview`), so a
class looks the same in a Dagster contact sheet and in Foxglove."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from foxglove.messages import (
    Color,
    ImageAnnotations,
    Point2,
    PointsAnnotation,
    PointsAnnotationType,
    TextAnnotation,
    Timestamp,
)

from rosbag_assets.vision.preview import class_colour

SIDE_COLORS = {"left": (0.2, 0.9, 0.2), "right": (0.2, 0.5, 1.0)}
OTHER_SIDE = (1.0, 0.85, 0.1)


def timestamp(ns: int) -> Timestamp:
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return Timestamp(sec, nsec)


def class_rgb(row: dict[str, Any]) -> tuple[float, float, float]:
    """Foxglove's 0-1 RGB of the BGR colour `vision.preview` draws this class in."""
    class_id = row.get("class_id")
    if class_id is None or class_id != class_id:  # missing or NaN: a stable colour from the class name
        class_id = zlib.crc32(str(row.get("class_name", "")).encode())
    blue, green, red = class_colour(int(class_id))
    return red / 255, green / 255, blue / 255


def box_annotations(rows: list[dict[str, Any]], stamp: int) -> ImageAnnotations:
    """A closed LINE_LOOP per label box and a "class score" text at its corner."""
    ts = timestamp(stamp)
    points, texts = [], []
    for row in rows:
        x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        r, g, b = class_rgb(row)
        corners = [Point2(x=x1, y=y1), Point2(x=x2, y=y1), Point2(x=x2, y=y2), Point2(x=x1, y=y2)]
        points.append(
            PointsAnnotation(
                timestamp=ts,
                type=PointsAnnotationType.LineLoop,
                points=corners,
                outline_color=Color(r=r, g=g, b=b, a=1.0),
                thickness=2.0,
            )
        )
        texts.append(
            TextAnnotation(
                timestamp=ts,
                position=Point2(x=x1, y=max(y1 - 2.0, 0.0)),
                text=f"{row['class_name']} {float(row['confidence']):.2f}",
                font_size=14.0,
                text_color=Color(r=1.0, g=1.0, b=1.0, a=1.0),
                background_color=Color(r=r, g=g, b=b, a=0.7),
            )
        )
    return ImageAnnotations(timestamp=ts, points=points, texts=texts)


def lane_annotations(rows: list[dict[str, Any]], stamp: int) -> ImageAnnotations:
    """A LINE_STRIP per lane polyline, coloured by side."""
    ts = timestamp(stamp)
    points = []
    for row in rows:
        xy = np.asarray([np.asarray(p, dtype=float) for p in row["points"]], dtype=float).reshape(-1, 2)
        r, g, b = SIDE_COLORS.get(str(row["side"]), OTHER_SIDE)
        points.append(
            PointsAnnotation(
                timestamp=ts,
                type=PointsAnnotationType.LineStrip,
                points=[Point2(x=float(x), y=float(y)) for x, y in xy],
                outline_color=Color(r=r, g=g, b=b, a=1.0),
                thickness=3.0,
            )
        )
    return ImageAnnotations(timestamp=ts, points=points)
