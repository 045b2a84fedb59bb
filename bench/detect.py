"""Detection: our `object_labels` path vs a bare ONNX Runtime session on the same ONNX file and frames.

No pretrained ``.pt`` is available offline, so the ONNX model is yolo11n built from its architecture yaml with
random weights: valid for a SPEED comparison only. Both sides decode JPEGs, letterbox to 640, run the same
file on CPU and apply confidence filtering + NMS.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def export_onnx(work: Path) -> Path:
    """yolo11n (random weights) saved as ``.pt``, exported by the job's own `export_onnx` into the weights cache
    the job uses, so the bare session, ours on the ``.onnx`` and ours on the ``.pt`` all run the same file."""
    pt = work / "yolo11n_random.pt"
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    from rosbag_assets.steps.runtime import configure_runtime

    configure_runtime()
    from rosbag_assets.vision import detection

    if not pt.exists():
        from ultralytics import YOLO

        YOLO("yolo11n.yaml").save(str(pt))
    return detection.export_onnx(pt, _cache(work) / "onnx", 640)


def _cache(work: Path) -> Path:
    return work / "weights-cache"


def write_frames(work: Path, n: int) -> tuple[Any, Any, Any]:
    """A committed `extracted_frames` version of `n` real bdd100k JPEGs, read back like the job does."""
    import io
    import shutil

    import pandas as pd

    from rosbag_assets.io import frames, publish
    from rosbag_assets.io.storage import LocalStorage

    root = work / "detect-store"
    shutil.rmtree(root, ignore_errors=True)
    storage = LocalStorage(root)
    staging = publish.begin(storage, "d/extracted_frames")
    files = sorted(
        (Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "bdd100k").glob("*.jpg")
    )
    rows = []
    for i in range(n):
        key = f"frames/f{i:05d}.jpg"
        data = files[i % len(files)].read_bytes()
        staging.write_bytes(key, data)
        rows.append(
            dict(
                drive="d",
                bag="b",
                topic="/cam",
                stamp_ns=i,
                log_time_ns=i,
                width=1280,
                height=720,
                encoding="jpeg",
                format="jpg",
                frame_key=key,
                path="",
                bytes=len(data),
            )
        )
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf, index=False)
    staging.write_bytes("index.parquet", buf.getvalue())
    staging.commit({"drive": "d"})
    version, index = frames.committed_frames(storage, "d")
    return storage, version, index


def letterbox(img: np.ndarray, size: int = 640, stride: int = 32) -> np.ndarray:
    """Resize the long side to `size`, pad to the smallest stride multiple (rect inference, as Ultralytics)."""
    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    ph, pw = -(-nh // stride) * stride, -(-nw // stride) * stride
    out = np.full((ph, pw, 3), 114, np.uint8)
    top, left = (ph - nh) // 2, (pw - nw) // 2
    out[top : top + nh, left : left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out


def bare_ort(model: Path, storage: Any, version: Any, index: Any, batch: int, conf: float = 0.25) -> float:
    """Frames/s of decode + letterbox + ORT + NMS with a plain onnxruntime session (the fastest plain setup:
    rect letterbox, all intra-op threads, same decode prefetch)."""
    import onnxruntime as ort

    from rosbag_assets.io import frames

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    t0 = time.perf_counter()
    n = 0
    for chunk in frames.iter_batches(storage, version, index, batch):
        x = np.stack([letterbox(img)[:, :, ::-1] for _, img in chunk]).transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x, dtype=np.float32) / 255.0
        (pred,) = sess.run(None, {name: x})
        for p in pred:  # (84, 8400)
            scores = p[4:].max(0)
            keep = scores > conf
            boxes = p[:4, keep].T
            xywh = np.column_stack(
                [boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 2:]]
            )
            cv2.dnn.NMSBoxes(xywh.tolist(), scores[keep].tolist(), conf, 0.7)
            n += 1
    return n / (time.perf_counter() - t0)


def ours(model: Path, work: Path, storage: Any, version: Any, index: Any, batch: int) -> float:
    """Frames/s of the `object_labels` loop: load_detector + iter_batches + detect_batch.

    Given the ``.pt``, this is the default CPU path: exported to ONNX once (cached next to the bench) and run
    by ONNX Runtime through Ultralytics.
    """
    from rosbag_assets.io import frames
    from rosbag_assets.vision.detection import DetectorConfig, load_detector

    cache = str(_cache(work))
    det = load_detector(DetectorConfig(weights=str(model), device="cpu", batch_size=batch, cache_dir=cache))
    det.detect_batch([np.zeros((720, 1280, 3), np.uint8)])  # warm-up, like the bare session's first run
    t0 = time.perf_counter()
    n = 0
    for chunk in frames.iter_batches(storage, version, index, batch):
        n += len(det.detect_batch([img for _, img in chunk]))
    return n / (time.perf_counter() - t0)


def bench_detect(work: Path, n_frames: int, batch: int = 16) -> dict[str, Any]:
    model = export_onnx(work)
    storage, version, index = write_frames(work, n_frames)
    bare_ort(model, storage, version, index.head(batch), batch)  # warm-up
    bares, ourss, pts = [], [], []
    for _ in range(2):  # interleaved: the shared machine drifts
        bares.append(bare_ort(model, storage, version, index, batch))
        ourss.append(ours(model, work, storage, version, index, batch))
        pts.append(ours(work / "yolo11n_random.pt", work, storage, version, index, batch))
    bare, our, pt = sum(bares) / len(bares), sum(ourss) / len(ourss), sum(pts) / len(pts)
    return {
        "model": "yolo11n random weights (speed only)",
        "frames": n_frames,
        "bare_ort_fps": bare,
        "ours_fps": our,
        "ours_vs_bare": our / bare,
        "ours_from_pt_fps": pt,
        "ours_from_pt_vs_bare": pt / bare,
        "runs_bare": " ".join(f"{v:.3g}" for v in bares),
        "runs_ours": " ".join(f"{v:.3g}" for v in ourss),
        "runs_ours_from_pt": " ".join(f"{v:.3g}" for v in pts),
    }
