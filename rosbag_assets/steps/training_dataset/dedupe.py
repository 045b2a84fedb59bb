"""Near-duplicate removal: a car standing at a light sends the same picture ten times a second.

A frame is compared with the last frame KEPT on its topic (not the previous one), so slow drift still adds a
frame once it has changed enough. The distance is the mean absolute grey-level difference of two 64x36
thumbnails after removing each one's mean brightness (so auto-exposure steps do not count as change).
Measured on the 9 real test pictures (7 BDD100K frames, bus.jpg, zidane.jpg; see
rosbag_assets_tests/test_training_dataset_dedupe.py): re-encoding, sensor noise (sigma 2 and 8) and a +10
brightness step give at most 0.70; a 1 % zoom (slow forward motion) or a 4 px pan at least 0.93; two different
pictures more than 30. The default threshold, 0.8, sits between; heavy noise (sigma 16 on the night frame, 1.3)
is kept, which errs on the side of keeping frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd

THUMB_SIZE = (64, 36)
ReadBytes = Callable[[dict[str, Any]], bytes]


class FrameReadError(RuntimeError):
    """A frame whose bytes could not be read or decoded; names the frame, drive and topic."""


def thumbnail(data: bytes, size: tuple[int, int] = THUMB_SIZE) -> np.ndarray:
    """A zero-mean float32 grey thumbnail of encoded image bytes (JPEG decodes at 1/4 scale, fast)."""
    buf = np.frombuffer(data, np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_4)
    except cv2.error:  # a frame under 4 px a side cannot be decoded at 1/4 scale
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError("undecodable image data")
    thumb = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return thumb - thumb.mean()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two thumbnails (0-255 scale)."""
    return float(np.abs(a - b).mean())


@dataclass
class DedupeReport:
    threshold: float | None
    considered: int = 0
    dropped: int = 0
    dropped_per_topic: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return self.considered - self.dropped


def _read_all(
    records: list[dict[str, Any]], read_bytes: ReadBytes, workers: int, ahead: int = 64
) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(row, bytes) in order, read on a thread pool at most `ahead` frames in advance (S3 range GETs)."""

    def load(row: dict[str, Any]) -> bytes:
        try:
            return read_bytes(row)
        except Exception as exc:
            raise FrameReadError(
                f"frame {row['frame_key']} of drive {row['drive']} (topic {row['topic']}): {exc}"
            ) from exc

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataset-read") as pool:
        pending = [pool.submit(load, r) for r in records[:ahead]]
        for i, row in enumerate(records):
            data = pending[i].result()
            pending[i] = None  # type: ignore[call-overload]  # free the bytes once handed out
            if i + ahead < len(records):
                pending.append(pool.submit(load, records[i + ahead]))
            yield row, data


def dedupe_frames(
    frames: pd.DataFrame,
    read_bytes: ReadBytes,
    threshold: float | None,
    sink: Callable[[dict[str, Any], bytes], None] | None = None,
    size: tuple[int, int] = THUMB_SIZE,
    workers: int = 0,
) -> tuple[pd.DataFrame, DedupeReport]:
    """The frames to keep (with `dedupe_distance` to the last kept frame), in (drive, topic, time) order.

    Every frame is read once; `sink(row, bytes)` receives each kept frame (to write it out) so a build never
    reads a frame twice. `threshold` None or 0 keeps every frame.
    """
    ordered = frames.sort_values(["drive", "topic", "stamp_ns", "frame_key"], kind="stable")
    records = ordered.to_dict("records")
    report = DedupeReport(threshold=threshold, considered=len(records))
    last: dict[tuple[str, str], np.ndarray] = {}
    keep = np.zeros(len(records), bool)
    dist = np.full(len(records), np.nan)
    workers = workers or min(16, (os.cpu_count() or 1) * 2)
    for i, (row, data) in enumerate(_read_all(records, read_bytes, workers)):
        if threshold:
            try:
                thumb = thumbnail(data, size)
            except ValueError as exc:
                raise FrameReadError(
                    f"frame {row['frame_key']} of drive {row['drive']} (topic {row['topic']}): {exc}"
                ) from exc
            group = (row["drive"], row["topic"])
            if group in last and row.get("reviewed") is not True:  # a person's review is never dropped
                dist[i] = distance(thumb, last[group])
                if dist[i] < threshold:
                    report.dropped += 1
                    report.dropped_per_topic[row["topic"]] = report.dropped_per_topic.get(row["topic"], 0) + 1
                    continue
            last[group] = thumb
        keep[i] = True
        if sink is not None:
            sink(row, data)
    kept = ordered.assign(dedupe_distance=dist)[keep].reset_index(drop=True)
    return kept, report
