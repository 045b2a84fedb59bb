"""Detection and weight resolution: real YOLO11n int8 TFLite, HOG fallback, S3 (moto), HTTP, local files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest


def _prepare_ultralytics_env() -> None:
    """Offline Ultralytics with a local font, so nothing tries to download (must run before importing it)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    if "YOLO_CONFIG_DIR" not in os.environ:
        import matplotlib

        cfg = Path(tempfile.gettempdir()) / "rosbag_assets_tests_yolo_cfg"
        font = cfg / "Ultralytics" / "Arial.ttf"
        if not font.exists():
            font.parent.mkdir(parents=True, exist_ok=True)
            src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
            shutil.copyfile(src, font)
        os.environ["YOLO_CONFIG_DIR"] = str(cfg)


_prepare_ultralytics_env()

import cv2  # noqa: E402

from rosbag_assets.vision import weights as weights_mod  # noqa: E402
from rosbag_assets.vision.detection import (  # noqa: E402
    BUNDLED_WEIGHTS,
    HOG_MODEL_NAME,
    Detection,
    DetectorConfig,
    HogPeopleDetector,
    YoloDetector,
    as_bgr,
    load_detector,
    pick_device,
)
from rosbag_assets.vision.weights import (  # noqa: E402
    WeightsUnavailableError,
    is_offline,
    resolve_weights,
    sha256_file,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TFLITE = SHARED_DATA / "models" / "yolo11n_int8.tflite"
BDD_DIR = SHARED_DATA / "images" / "bdd100k"
BUS_CLASS, PERSON_CLASS = 5, 0


def _assets_dir() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets"


def _read(name: str) -> np.ndarray:
    image = cv2.imread(str(_assets_dir() / name))
    assert image is not None, f"cannot read Ultralytics asset {name}"
    return image


def _iou(a: Detection, b: Detection) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def _assert_inside(dets: list[Detection], image: np.ndarray) -> None:
    height, width = image.shape[:2]
    for d in dets:
        assert 0 <= d.x1 < d.x2 <= width and 0 <= d.y1 < d.y2 <= height, d
        assert 0.0 <= d.confidence <= 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tflite_config() -> DetectorConfig:
    pytest.importorskip("ai_edge_litert")
    if not TFLITE.is_file():
        pytest.skip(f"shared test model missing: {TFLITE}")
    return DetectorConfig(weights=str(TFLITE), device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def yolo(tflite_config: DetectorConfig) -> YoloDetector:
    detector = load_detector(tflite_config)
    assert isinstance(detector, YoloDetector)
    return detector


@pytest.fixture()
def offline_no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """YOLO_OFFLINE=1 and no yolo11n.pt anywhere resolve_weights looks; returns an empty cache dir."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(weights_mod, "_ultralytics_weights_dir", lambda: tmp_path / "ultralytics_weights")
    cache = tmp_path / "cache"
    cache.mkdir()
    return cache


# --- Detection dataclass and small helpers -------------------------------------------------------


def test_detection_normalized_coordinates() -> None:
    d = Detection(0, "person", 0.9, x1=10.0, y1=20.0, x2=30.0, y2=60.0)
    width, height = 100, 200
    x1n, y1n, x2n, y2n = d.xyxyn(width, height)
    assert (x1n * width, y1n * height, x2n * width, y2n * height) == pytest.approx((10, 20, 30, 60))
    cx, cy, w, h = d.xywhn(width, height)
    assert cx * width == pytest.approx((d.x1 + d.x2) / 2)
    assert cy * height == pytest.approx((d.y1 + d.y2) / 2)
    assert (w * width, h * height) == pytest.approx((d.x2 - d.x1, d.y2 - d.y1))
    assert d.as_dict()["class_name"] == "person"


def test_as_bgr_converts_mono_and_bgra() -> None:
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert as_bgr(mono).shape == (3, 4, 3)
    assert np.array_equal(as_bgr(mono)[..., 1], mono)
    assert as_bgr(mono[..., None]).shape == (3, 4, 3)
    bgra = np.dstack([mono, mono, mono, np.full_like(mono, 255)])
    assert np.array_equal(as_bgr(bgra), bgra[..., :3])
    bgr = np.zeros((2, 2, 3), np.uint8)
    assert as_bgr(bgr) is bgr
    with pytest.raises(ValueError, match="uint8"):
        as_bgr(mono.astype(np.uint16))


def test_pick_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device(None) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == "cuda:0"


def test_is_offline_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in weights_mod.OFFLINE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert not is_offline()
    monkeypatch.setenv("ROSBAG_ASSETS_OFFLINE", "true")
    assert is_offline()
    assert not is_offline(False)
    monkeypatch.setenv("ROSBAG_ASSETS_OFFLINE", "0")
    assert not is_offline()
    assert is_offline(True)


# --- real YOLO11n int8 TFLite ----------------------------------------------------------------------


@pytest.mark.slow
def test_tflite_yolo_finds_bus_and_people(yolo: YoloDetector) -> None:
    bus = _read("bus.jpg")
    (dets,) = yolo.detect_batch([bus])
    _assert_inside(dets, bus)
    buses = [d for d in dets if d.class_id == BUS_CLASS]
    people = [d for d in dets if d.class_id == PERSON_CLASS]
    assert buses and max(d.confidence for d in buses) > 0.5
    assert all(d.class_name == "bus" for d in buses)
    assert len(people) >= 3
    assert yolo.model_name == "yolo11n_int8.tflite"
    assert yolo.weights_sha256 == hashlib.sha256(TFLITE.read_bytes()).hexdigest()
    assert yolo.fallback_reason is None


@pytest.mark.slow
def test_batch_size_does_not_change_detections(yolo: YoloDetector, tflite_config: DetectorConfig) -> None:
    bus, zidane = _read("bus.jpg"), _read("zidane.jpg")
    images = [bus, zidane, cv2.flip(bus, 1), cv2.cvtColor(zidane, cv2.COLOR_BGR2GRAY)]
    one_by_one = YoloDetector(TFLITE, DetectorConfig(**{**tflite_config.__dict__, "batch_size": 1}))
    batched = yolo.detect_batch(images)
    single = one_by_one.detect_batch(images)
    assert len(batched) == len(single) == len(images)
    assert sum(map(len, batched)) > 0
    for a_dets, b_dets in zip(batched, single, strict=True):
        assert [d.class_id for d in a_dets] == [d.class_id for d in b_dets]
        for a, b in zip(a_dets, b_dets, strict=True):
            assert a.confidence == pytest.approx(b.confidence, abs=1e-3)
            assert (a.x1, a.y1, a.x2, a.y2) == pytest.approx((b.x1, b.y1, b.x2, b.y2), abs=0.5)


@pytest.mark.slow
def test_one_model_is_reused_and_batches_are_chunked(
    yolo: YoloDetector, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ultralytics

    model = yolo.model
    calls: list[int] = []
    real_predict = model.predict

    def spy(source, **kwargs):
        calls.append(len(source))
        assert kwargs["batch"] == len(source)
        return real_predict(source, **kwargs)

    monkeypatch.setattr(model, "predict", spy)
    monkeypatch.setattr(ultralytics, "YOLO", lambda *a, **k: pytest.fail("model reloaded"))
    images = [_read("zidane.jpg")] * 5 + [_read("bus.jpg")] * 4
    results = yolo.detect_batch(images[:5]) + yolo.detect_batch(images[5:])
    assert calls == [4, 1, 4]
    assert yolo.model is model
    assert len(results) == len(images)
    assert results[0] == results[4]


@pytest.mark.slow
def test_classes_filter_keeps_only_people(yolo: YoloDetector, tflite_config: DetectorConfig) -> None:
    bus = _read("bus.jpg")
    (all_dets,) = yolo.detect_batch([bus])
    people_config = DetectorConfig(**{**tflite_config.__dict__, "classes": [PERSON_CLASS]})
    people_only = YoloDetector(TFLITE, people_config)
    (dets,) = people_only.detect_batch([bus])
    assert {d.class_id for d in all_dets} - {PERSON_CLASS}, "need other classes for the filter to matter"
    assert {d.class_id for d in dets} == {PERSON_CLASS}
    assert len(dets) == sum(d.class_id == PERSON_CLASS for d in all_dets)


@pytest.mark.slow
def test_tflite_on_real_dashcam_frames(yolo: YoloDetector) -> None:
    frames = [cv2.imread(str(p)) for p in sorted(BDD_DIR.glob("*.jpg"))[:3]]
    if not frames:
        pytest.skip(f"no BDD100K frames in {BDD_DIR}")
    results = yolo.detect_batch(frames)
    for frame, dets in zip(frames, results, strict=True):
        _assert_inside(dets, frame)
    names = {d.class_name for dets in results for d in dets}
    assert names & {"car", "truck", "bus"}, names


# --- offline fallback --------------------------------------------------------------------------------


def test_missing_weights_offline_raises_without_fallback(offline_no_weights: Path) -> None:
    config = DetectorConfig(weights="yolo11n.pt", cache_dir=str(offline_no_weights), allow_fallback=False)
    with pytest.raises(WeightsUnavailableError, match=r"yolo11n\.pt") as info:
        load_detector(config)
    assert "offline" in str(info.value)
    assert str(offline_no_weights) in str(info.value)


def test_fallback_is_the_bundled_coco_detector(offline_no_weights: Path) -> None:
    """Offline with fallback allowed: a real COCO detector shipped in the package labels the bus and people."""
    logs: list[str] = []
    config = DetectorConfig(weights="yolo11n.pt", cache_dir=str(offline_no_weights), allow_fallback=True)
    detector = load_detector(config, log=logs.append)
    assert isinstance(detector, YoloDetector) and detector.model_name == BUNDLED_WEIGHTS.name
    assert detector.weights_uri == f"bundled:{BUNDLED_WEIGHTS.name}"
    assert detector.fallback_reason and "yolo11n.pt" in detector.fallback_reason
    assert "offline" in detector.fallback_reason
    assert len(logs) == 1 and logs[0].startswith("WARNING") and "yolo11n.pt" in logs[0]
    bus = _read("bus.jpg")
    (dets,) = detector.detect_batch([bus])
    names = [d.class_name for d in dets]
    assert "bus" in names and names.count("person") >= 3, names
    _assert_inside(dets, bus)


def _hog_detector() -> HogPeopleDetector:
    detector = load_detector(DetectorConfig(weights=HOG_MODEL_NAME))
    assert isinstance(detector, HogPeopleDetector)
    return detector


def test_hog_people_detector_only_when_asked_for_by_name() -> None:
    detector = _hog_detector()
    assert detector.model_name == HOG_MODEL_NAME and detector.fallback_reason is None
    bus = _read("bus.jpg")
    (dets,) = detector.detect_batch([bus])
    assert dets, "HOG found nobody on bus.jpg (four people stand in front of the bus)"
    _assert_inside(dets, bus)
    assert all(d.class_id == PERSON_CLASS and d.class_name == "person" for d in dets)
    assert all(d.confidence >= detector.config.confidence for d in dets)


@pytest.mark.slow
def test_hog_box_matches_a_yolo_person(yolo: YoloDetector) -> None:
    """The HOG box is on an actual person: it overlaps one of the real YOLO model's person boxes."""
    detector = _hog_detector()
    bus = _read("bus.jpg")
    hog_dets, yolo_dets = detector.detect_batch([bus])[0], yolo.detect_batch([bus])[0]
    yolo_people = [d for d in yolo_dets if d.class_id == PERSON_CLASS]
    best = max((_iou(h, y) for h in hog_dets for y in yolo_people), default=0.0)
    assert best >= 0.4, f"no HOG box matches a YOLO person (best IoU {best:.2f}): {hog_dets}"


def test_hog_respects_class_filter_and_handles_small_and_mono_images() -> None:
    bus = _read("bus.jpg")
    assert HogPeopleDetector(DetectorConfig(classes=[2])).detect_batch([bus]) == [[]]
    hog = HogPeopleDetector()
    tiny, mono = np.zeros((40, 60, 3), np.uint8), cv2.cvtColor(bus, cv2.COLOR_BGR2GRAY)
    results = hog.detect_batch([tiny, mono])
    assert results[0] == []
    _assert_inside(results[1], mono)
    assert hog.weights_sha256 == HogPeopleDetector().weights_sha256


# --- resolve_weights ---------------------------------------------------------------------------------


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 2_500_000, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_resolve_local_path(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    assert resolve_weights(str(path), tmp_path / "cache") == path.resolve()
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(WeightsUnavailableError, match=str(missing)):
        resolve_weights(str(missing), tmp_path / "cache")


def test_resolve_model_name_from_cache_dir(offline_no_weights: Path) -> None:
    cached = offline_no_weights / "yolo11n.pt"
    cached.write_bytes(b"cached weights")
    assert resolve_weights("yolo11n.pt", offline_no_weights) == cached.resolve()


def test_resolve_s3_downloads_once(tmp_path: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="models")
        payload = os.urandom(300_000)
        s3.put_object(Bucket="models", Key="detectors/v1/best.pt", Body=payload)
        cache = tmp_path / "cache"

        first = resolve_weights("s3://models/detectors/v1/best.pt", cache, s3_client=s3)
        assert first.read_bytes() == payload and first.name == "best.pt"
        s3.delete_object(Bucket="models", Key="detectors/v1/best.pt")
        second = resolve_weights("s3://models/detectors/v1/best.pt", cache, s3_client=s3)
        assert second == first and second.read_bytes() == payload
        assert not [p for p in cache.rglob("*") if p.name.endswith(".part")]

        with pytest.raises(WeightsUnavailableError, match=r"s3://models/detectors/v1/gone\.pt"):
            resolve_weights("s3://models/detectors/v1/gone.pt", cache, s3_client=s3)
        assert not (cache / "s3" / "models" / "detectors" / "v1" / "gone.pt").exists()
    finally:
        server.stop()


def test_resolve_http_downloads_once(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(200_000)
    (served / "lane.onnx").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/lane.onnx"
    cache = tmp_path / "cache"
    try:
        first = resolve_weights(url, cache, offline=False)
    finally:
        server.shutdown()
        server.server_close()
    assert first.read_bytes() == payload and first.name == "lane.onnx"
    assert resolve_weights(url, cache, offline=False) == first  # server is gone: served from the cache
    assert resolve_weights(url, cache, offline=True) == first


def test_resolve_http_unreachable_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/x.pt"
    with pytest.raises(WeightsUnavailableError, match=r"cannot download http://127\.0\.0\.1:\d+/x\.pt"):
        resolve_weights(url, tmp_path / "cache", offline=False)
    with pytest.raises(WeightsUnavailableError, match="offline") as info:
        resolve_weights(url, tmp_path / "cache", offline=True)
    assert url in str(info.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


# --- GPU -----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_auto_device(tmp_path: Path, tflite_config: DetectorConfig) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    assert pick_device(None) == "cuda:0"
    from ultralytics import YOLO

    # Architecture only (no pretrained download offline): exercises the .pt + CUDA + FP16 batch path.
    pt = tmp_path / "yolo11n_arch.pt"
    YOLO("yolo11n.yaml", task="detect").save(str(pt))
    gpu = YoloDetector(pt, DetectorConfig(device=None, batch_size=4, confidence=0.0))
    assert gpu.device == "cuda:0" and gpu.half
    images = [_read("bus.jpg"), _read("zidane.jpg")] * 3
    results = gpu.detect_batch(images)
    assert len(results) == len(images)
    for image, dets in zip(images, results, strict=True):
        _assert_inside(dets, image)
    assert next(gpu.model.model.parameters()).device.type == "cuda"

    # A real model with device=None on a GPU machine still detects (TFLite itself runs on the CPU).
    auto = YoloDetector(TFLITE, DetectorConfig(**{**tflite_config.__dict__, "device": None}))
    (dets,) = auto.detect_batch([_read("bus.jpg")])
    assert any(d.class_id == BUS_CLASS and d.confidence > 0.5 for d in dets)


@pytest.mark.slow
def test_pt_weights_run_on_onnx_runtime_on_cpu(tmp_path: Path) -> None:
    """`.pt` weights on CPU are exported once to ONNX (cached by hash) and match PyTorch's detections."""
    from ultralytics import YOLO

    pt = tmp_path / "tiny.pt"
    YOLO("yolo11n.yaml").save(str(pt))  # the real architecture with random weights: nothing to download
    config = DetectorConfig(weights=str(pt), device="cpu", cache_dir=str(tmp_path / "cache"), confidence=1e-9)
    onnx = load_detector(config)
    assert isinstance(onnx, YoloDetector) and onnx.runtime == "onnxruntime"
    (exported,) = (tmp_path / "cache" / "onnx").glob("tiny-*-640.onnx")
    stamp = exported.stat().st_mtime_ns
    assert onnx.model_name == "tiny.pt" and onnx.weights_sha256 == hashlib.sha256(pt.read_bytes()).hexdigest()
    again = load_detector(config)
    assert again.runtime == "onnxruntime" and exported.stat().st_mtime_ns == stamp  # reused, not re-exported

    torch_run = load_detector(DetectorConfig(**{**config.__dict__, "cpu_runtime": "torch"}))
    assert torch_run.runtime == "torch"  # says what ran: PyTorch, not its ONNX export
    bus = _read("bus.jpg")
    a, b = onnx.detect_batch([bus])[0], torch_run.detect_batch([bus])[0]
    assert len(a) > 0 and len(b) > 0
    for d in sorted(b, key=lambda d: -d.confidence)[:5]:  # PyTorch's best boxes are ONNX Runtime's too
        assert any(
            e.class_id == d.class_id
            and abs(d.confidence - e.confidence) < 1e-6
            and max(abs(d.x1 - e.x1), abs(d.y1 - e.y1), abs(d.x2 - e.x2), abs(d.y2 - e.y2)) < 1.0
            for e in a
        ), d
