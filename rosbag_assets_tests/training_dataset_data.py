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


CVAT_BOX_ATTRIBUTES = {"label", "source", "occluded", "xtl", "ytl", "xbr", "ybr", "z_order"}


def read_cvat_export(xml_path: Path, images_dir: Path, class_names: list[str]) -> dict[str, list[tuple]]:
    """A CVAT for images 1.1 file checked strictly against the documented layout, then read back by a
    third-party CVAT reader (labelformat); returns image name -> [(label, xtl, ytl, xbr, ybr)] as that
    reader saw them. Every element and attribute is checked, image sizes against the decoded images."""
    import datetime as dt
    import re
    import tempfile
    import xml.etree.ElementTree as ET

    from labelformat.formats.cvat import CVATObjectDetectionInput
    from labelformat.model.bounding_box import BoundingBoxFormat

    root = ET.parse(xml_path).getroot()
    assert root.tag == "annotations" and not root.attrib
    assert [el.tag for el in root][:2] == ["version", "meta"] and root.findtext("version") == "1.1"
    assert {el.tag for el in root[2:]} <= {"image"}
    task = root.find("meta/task")
    assert task is not None and [el.tag for el in task] == ["name", "size", "mode", "labels"]
    assert task.findtext("name") and task.findtext("mode") == "annotation"
    dt.datetime.fromisoformat(root.findtext("meta/dumped") or "")
    labels = task.findall("labels/label")
    assert [el.findtext("name") for el in labels] == class_names
    for el in labels:
        assert [c.tag for c in el] == ["name", "color", "type", "attributes"] and el.findtext(
            "type"
        ) == "rectangle"
        assert re.fullmatch(r"#[0-9a-f]{6}", el.findtext("color") or "") and not list(el.find("attributes"))
    images = root.findall("image")
    assert int(task.findtext("size") or -1) == len(images)
    assert [int(el.get("id")) for el in images] == list(range(len(images)))
    ours: dict[str, list[tuple]] = {}
    for el in images:
        assert set(el.attrib) == {"id", "name", "width", "height"}
        decoded = cv2.imread(str(images_dir / el.get("name")), cv2.IMREAD_UNCHANGED)
        assert decoded is not None, el.get("name")
        w, h = int(el.get("width")), int(el.get("height"))
        assert (w, h) == (decoded.shape[1], decoded.shape[0])
        boxes = []
        for box in el:
            assert box.tag == "box" and set(box.attrib) == CVAT_BOX_ATTRIBUTES and not list(box)
            assert box.get("label") in class_names and box.get("source") == "auto"
            assert box.get("occluded") in ("0", "1") and int(box.get("z_order")) == 0
            xtl, ytl, xbr, ybr = (float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            assert 0 <= xtl < xbr <= w and 0 <= ytl < ybr <= h, box.attrib
            boxes.append((box.get("label"), xtl, ytl, xbr, ybr))
        ours[el.get("name")] = boxes

    # labelformat hands text to lxml, which refuses a str with an encoding declaration (CVAT writes one)
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / xml_path.name
        bare.write_text(re.sub(r"^<\?xml[^>]*\?>\s*", "", xml_path.read_text(encoding="utf-8")))
        reader = CVATObjectDetectionInput(input_file=bare)
    assert [c.name for c in reader.get_categories()] == class_names
    theirs: dict[str, list[tuple]] = {}
    for label in reader.get_labels():
        assert (label.image.width, label.image.height) == tuple(
            int(e.get(k))
            for e in images
            if e.get("name") == label.image.filename
            for k in ("width", "height")
        )
        theirs[label.image.filename] = [
            (obj.category.name, *obj.box.to_format(BoundingBoxFormat.XYXY)) for obj in label.objects
        ]
    assert theirs == ours
    return theirs
