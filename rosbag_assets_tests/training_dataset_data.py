"""Test drives for `training_dataset` made of real frames: the 7 BDD100K dash-cam frames and Ultralytics'
bus.jpg / zidane.jpg, with the real YOLO11n int8 boxes from `fixtures/training_dataset/labels_yolo11n_int8.csv`.

A drive is a frame index (README `extracted_frames` columns) and object label rows (README `object_labels`)
plus a dict of encoded bytes behind `read_bytes(row)`, the same call a shard or a file would answer.
A "stationary" run repeats one real picture re-encoded with a little sensor noise, as a car at a light does.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parent.parent / "shared" / "data"
BDD_DIR = SHARED_DATA / "images" / "bdd100k"
LABELS_CSV = HERE / "fixtures" / "training_dataset" / "labels_yolo11n_int8.csv"
MODEL = "yolo11n_int8.tflite"


@cache
def real_images() -> dict[str, bytes]:
    """name -> JPEG bytes of the 9 real pictures (skips the test when the shared data is absent)."""
    spec = importlib.util.find_spec("ultralytics")  # its assets, without the slow import of ultralytics
    assert spec is not None and spec.submodule_search_locations
    bdd = sorted(BDD_DIR.glob("*.jpg"))
    if len(bdd) < 7:
        pytest.skip(f"shared test data missing: {BDD_DIR}")
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return {p.name: p.read_bytes() for p in [*bdd, assets / "bus.jpg", assets / "zidane.jpg"]}


@cache
def model_labels() -> pd.DataFrame:
    return pd.read_csv(LABELS_CSV)


def noisy_copy(data: bytes, seed: int, sigma: float = 3.0, quality: int = 88) -> bytes:
    """The same picture as another frame of a standing car: sensor noise, a different JPEG encode."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    img = np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


@dataclass
class Drives:
    """Frames, labels and bytes of one or more test drives."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    data: dict[tuple[str, str], bytes] = field(default_factory=dict)
    source: dict[tuple[str, str], str] = field(default_factory=dict)  # frame -> picture name

    @property
    def frames(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    @property
    def label_rows(self) -> pd.DataFrame:
        return pd.DataFrame(self.labels)

    def read_bytes(self, row: dict[str, Any]) -> bytes:
        return self.data[(row["drive"], row["frame_key"])]

    def add(
        self,
        drive: str,
        pictures: list[str],
        *,
        repeats: int = 1,
        start_s: float = 1_700_000_000.0,
        hz: float = 10.0,
        topic: str = "/camera/front/image/compressed",
        bag: str = "drive.mcap",
        labelled: bool = True,
    ) -> None:
        """Frames at `hz`: each picture shown `repeats` times in a row (the first copy is the original bytes)."""
        images, boxes = real_images(), model_labels()
        stamp = round(start_s * 1e9)
        slug = topic.strip("/").replace("/", "_")
        for name in pictures:
            w, h = Image.open(io.BytesIO(images[name])).size
            for k in range(repeats):
                key = f"frames/{bag}/{slug}/{stamp}.jpg"
                data = images[name] if k == 0 else noisy_copy(images[name], seed=stamp)
                self.data[(drive, key)] = data
                self.source[(drive, key)] = name
                ref = {"drive": drive, "bag": bag, "topic": topic, "stamp_ns": stamp, "frame_key": key}
                self.rows.append(
                    {
                        **ref,
                        "log_time_ns": stamp,
                        "width": w,
                        "height": h,
                        "encoding": "jpeg",
                        "format": "jpg",
                        "data_key": f"frames/{bag}/{slug}/shard-00000.tar",
                        "offset": 0,
                        "bytes": len(data),
                        "path": f"/nowhere/{drive}/frames/{bag}/{slug}/shard-00000.tar",
                    }
                )
                if labelled:
                    for b in boxes[boxes["image"] == name].itertuples():
                        self.labels.append(
                            {
                                **ref,
                                "image_width": w,
                                "image_height": h,
                                "class_id": b.class_id,
                                "class_name": b.class_name,
                                "confidence": b.confidence,
                                "x1": b.x1,
                                "y1": b.y1,
                                "x2": b.x2,
                                "y2": b.y2,
                                "model": MODEL,
                            }
                        )
                stamp += round(1e9 / hz)
