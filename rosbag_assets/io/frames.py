"""Reading extracted frames back: the committed index and prefetched, decoded batches."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import pandas as pd

from rosbag_assets.io import publish
from rosbag_assets.io.storage import Storage, join_key

# Frames a colour detector can look at; depth and 16-bit frames are left out.
LABELLABLE_FORMATS = {"jpg", "png"}
DEPTH_ENCODINGS = {"16UC1", "32FC1", "mono16", "16SC1"}
# Columns every label table starts with: which frame a row describes, and that frame's size.
FRAME_REF_COLUMNS = ["drive", "bag", "topic", "stamp_ns", "frame_key", "image_width", "image_height"]


def committed_frames(storage: Storage, drive: str) -> tuple[publish.Version, pd.DataFrame]:
    """The committed `extracted_frames` version of `drive` and its index."""
    version, _ = publish.require_current(storage, join_key(drive, "extracted_frames"))
    return version, version.read_parquet("index.parquet")


def frame_ref(drive: str, row: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    """The FRAME_REF_COLUMNS of a label row: which indexed frame it describes, and that frame's decoded size."""
    return {
        "drive": drive,
        "bag": row["bag"],
        "topic": row["topic"],
        "stamp_ns": int(row["stamp_ns"]),
        "frame_key": row["frame_key"],
        "image_width": width,
        "image_height": height,
    }


def select_frames(
    index: pd.DataFrame, topics: list[str] | None = None, max_frames: int | None = None
) -> pd.DataFrame:
    """Colour frames of the chosen topics (all by default), optionally thinned evenly to `max_frames`."""
    chosen = index[index["format"].isin(LABELLABLE_FORMATS) & ~index["encoding"].isin(DEPTH_ENCODINGS)]
    if topics:
        chosen = chosen[chosen["topic"].isin(topics)]
    if max_frames is not None and len(chosen) > max_frames:
        picks = np.linspace(0, len(chosen) - 1, max_frames).round().astype(int)
        chosen = chosen.iloc[np.unique(picks)]
    return chosen.reset_index(drop=True)


def read_frame_bytes(storage: Storage, version: publish.Version, row: dict[str, Any]) -> bytes:
    """The stored bytes of one indexed frame: its byte range inside a shard, or its own file."""
    data_key = row.get("data_key")
    if not isinstance(data_key, str) or not data_key:  # an index written before shards existed
        return storage.read_bytes(version.key(row["frame_key"]))
    return storage.read_range(version.key(data_key), int(row["offset"]), int(row["bytes"]))


def read_indexed_bytes(row: dict[str, Any], *, endpoint_url: str | None = None) -> bytes:
    """The stored bytes of one frame, straight from a row of ``index.parquet`` (`path`, `offset`, `bytes`).

    For notebooks and scripts: a local path or an ``s3://`` URI, no Dagster and no storage set-up.
    """
    from rosbag_assets.io.storage import storage_from_uri

    folder, _, name = str(row["path"]).rpartition("/")
    storage = storage_from_uri(folder, endpoint_url=endpoint_url)
    return storage.read_range(name, int(row.get("offset") or 0), int(row["bytes"]))


def load_frame(row: dict[str, Any], *, endpoint_url: str | None = None) -> np.ndarray:
    """Decode one frame straight from a row of ``index.parquet``::

    index = pd.read_parquet(".../extracted_frames/versions/<id>/index.parquet")
    image = load_frame(index.iloc[0].to_dict())
    """
    return decode_frame(read_indexed_bytes(row, endpoint_url=endpoint_url))


def decode_frame(data: bytes) -> np.ndarray:
    """Encoded frame bytes -> BGR uint8 (mono is expanded, alpha dropped)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("undecodable image data")
    return img


def iter_batches(
    storage: Storage, version: publish.Version, frames: pd.DataFrame, batch_size: int, workers: int = 0
) -> Iterator[list[tuple[dict[str, Any], np.ndarray]]]:
    """Yield batches of (index row, BGR image), reading and decoding ahead on a thread pool.

    At most two batches are in flight beyond the one being consumed, so memory stays bounded.
    """
    workers = workers or os.cpu_count() or 1
    records = frames.to_dict("records")

    def load(row: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
        try:
            return row, decode_frame(read_frame_bytes(storage, version, row))
        except Exception as exc:
            where = version.uri(row.get("data_key") or row["frame_key"])
            raise RuntimeError(f"frame {row['frame_key']} in {where} (topic {row['topic']}): {exc}") from exc

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        queue: deque[list[Future]] = deque()
        starts = iter(range(0, len(records), batch_size))
        for _ in range(3):
            start = next(starts, None)
            if start is not None:
                queue.append([pool.submit(load, row) for row in records[start : start + batch_size]])
        while queue:
            batch = [f.result() for f in queue.popleft()]
            start = next(starts, None)
            if start is not None:
                queue.append([pool.submit(load, row) for row in records[start : start + batch_size]])
            yield batch
