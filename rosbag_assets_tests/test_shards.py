"""Frame shards: tar members with byte ranges, equal to the one-file-per-frame layout, nothing half-written."""

import hashlib
import io
import tarfile
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from bagwriting import make_compressed_image, make_image, write_bag
from PIL import Image

from rosbag_assets.io import frames, publish
from rosbag_assets.io.shards import TarShards, member_header
from rosbag_assets.io.storage import LocalStorage
from rosbag_assets.steps.extracted_frames import run_extracted_frames
from rosbag_assets.steps.raw_bags import run_raw_bags
from rosbag_assets.vision import images

T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    "name", ["a.jpg", "frames/cams.bag/cam_front_image_raw/1700000000000000000.jpg", "x" * 100]
)
def test_member_header_matches_tarfile(name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = 123_457, 1_700_000_000, 0o644
    assert member_header(name, 123_457, 1_700_000_000) == info.tobuf(format=tarfile.USTAR_FORMAT)


def test_long_and_unicode_names_still_make_readable_tars(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    names = ["d/" + "y" * 180 + ".jpg", "é" * 120 + ".png", "short.jpg"]
    sink = TarShards(
        lambda stream, n: (f"{stream}-{n}.tar", storage.open_write(f"{stream}-{n}.tar")), 1 << 20
    )
    spans = [sink.append("s", name, name.encode() * 3, 7) for name in names]
    sink.close()
    with tarfile.open(tmp_path / "s-0.tar") as tar:
        assert [m.name for m in tar.getmembers()] == names
        for name in names:
            assert tar.extractfile(name).read() == name.encode() * 3  # type: ignore[union-attr]
    for name, (key, offset) in zip(names, spans, strict=True):
        assert storage.read_range(key, offset, len(name.encode()) * 3) == name.encode() * 3


def _drive(tmp_path: Path) -> Path:
    """Two raw cameras and a JPEG camera, 12 ticks, with a duplicate stamp on one camera."""
    rng = np.random.default_rng(0)
    bgr = [rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(12)]
    jpeg = [cv2.imencode(".jpg", im)[1].tobytes() for im in bgr]
    msgs = {
        "/front/image_raw": [
            (
                T0 + i * 10**8,
                make_image("mcap", "bgr8", 48, 64, 192, bgr[i].tobytes(), stamp_ns=T0 + i * 10**8),
            )
            for i in range(12)
        ],
        "/side/image_raw": [
            (T0 + i * 10**8 + 1, make_image("mcap", "mono8", 8, 8, 8, bytes([i] * 64), stamp_ns=T0))
            for i in range(12)
        ],
        "/rear/compressed": [
            (T0 + i * 10**8 + 2, make_compressed_image("mcap", "jpeg", jpeg[i], stamp_ns=T0 + i * 10**8))
            for i in range(12)
        ],
    }
    drive = tmp_path / "landing" / "d1"
    drive.mkdir(parents=True)
    write_bag(drive / "cams", "mcap", msgs)
    return drive


def _extract(drive: Path, out_dir: Path, options: dict | None = None) -> tuple[LocalStorage, pd.DataFrame]:
    src, out = LocalStorage(drive), LocalStorage(out_dir)
    run_raw_bags(drive="d1", source=src, output=out)
    run_extracted_frames(drive="d1", source=src, output=out, options=options)
    _, index = frames.committed_frames(out, "d1")
    return out, index


def _shards(out: LocalStorage) -> list[Path]:
    version, _ = publish.require_current(out, "d1/extracted_frames")
    return sorted(Path(version.uri()).rglob("*.tar"))


def test_shards_hold_exactly_the_files_layout(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    files_out, files_index = _extract(drive, tmp_path / "files", {"layout": "files"})
    shard_out, shard_index = _extract(drive, tmp_path / "shards")

    same = ["bag", "topic", "stamp_ns", "width", "height", "encoding", "format", "frame_key", "bytes"]
    pd.testing.assert_frame_equal(files_index[same], shard_index[same])
    assert (files_index["data_key"] == files_index["frame_key"]).all() and (files_index["offset"] == 0).all()
    assert shard_index["data_key"].str.endswith(".tar").all()
    assert shard_index.groupby("topic")["data_key"].nunique().to_dict() == {
        "/front/image_raw": 1,
        "/rear/compressed": 1,
        "/side/image_raw": 1,
    }
    assert shard_index["frame_key"].nunique() == 36  # the duplicate stamps got distinct names

    # `tar -xf` of the shards gives back the files layout, byte for byte
    unpacked = tmp_path / "unpacked"
    for shard in _shards(shard_out):
        with tarfile.open(shard) as tar:
            tar.extractall(unpacked, filter="data")
    files_version, _ = publish.require_current(files_out, "d1/extracted_frames")
    for key in files_index["frame_key"]:
        assert (unpacked / key).read_bytes() == (Path(files_version.uri()) / key).read_bytes(), key

    # readers see the same bytes through either layout
    shard_version, _ = publish.require_current(shard_out, "d1/extracted_frames")
    for a, b in zip(files_index.to_dict("records"), shard_index.to_dict("records"), strict=True):
        assert frames.read_frame_bytes(files_out, files_version, a) == frames.read_frame_bytes(
            shard_out, shard_version, b
        )


def test_shards_roll_over_and_reruns_write_identical_bytes(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    options = {"topics": ["/front/image_raw"], "shard_mb": 0.005}  # ~5 KB: a few frames per shard
    out_a, index_a = _extract(drive, tmp_path / "a", options)
    out_b, index_b = _extract(drive, tmp_path / "b", options)
    shards_a, shards_b = _shards(out_a), _shards(out_b)
    assert len(shards_a) > 2
    assert [s.name for s in shards_a] == [f"shard-{i:05d}.tar" for i in range(len(shards_a))]
    digest = [hashlib.sha256(s.read_bytes()).hexdigest() for s in shards_a]
    assert digest == [hashlib.sha256(s.read_bytes()).hexdigest() for s in shards_b]
    pd.testing.assert_frame_equal(index_a.drop(columns="path"), index_b.drop(columns="path"))
    members = 0
    for shard in shards_a:
        with tarfile.open(shard) as tar:
            members += len(tar.getmembers())
    assert members == len(index_a) == 12
    version, _ = publish.require_current(out_a, "d1/extracted_frames")
    batches = list(frames.iter_batches(out_a, version, index_a, batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert all(img.shape == (48, 64, 3) for batch in batches for _, img in batch)


def test_a_failing_shard_write_publishes_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    class DiskFull(OSError):
        pass

    @contextmanager
    def failing(key: str):
        with storage.open_write(key) as fh:

            class Failing(io.RawIOBase):
                def fileno(self) -> int:
                    raise DiskFull("no space left on device")

                def flush(self) -> None:
                    fh.flush()

            yield Failing()

    sink = TarShards(lambda stream, n: (f"{stream}.tar", failing(f"{stream}.tar")), 1 << 20)
    sink.append("s", "a.jpg", b"x" * 1000, 0)
    with pytest.raises(RuntimeError, match="no space left on device"):
        sink.close()
    assert list(tmp_path.iterdir()) == []  # not even a temp file


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    sink = TarShards(lambda stream, n: (f"{stream}.tar", storage.open_write(f"{stream}.tar")), 1 << 20)
    for i in range(50):
        sink.append("s", f"{i}.jpg", b"x" * 100_000, 0)
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_legacy_index_without_byte_ranges_still_reads(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    version = publish.begin(storage, "d1/extracted_frames")
    data = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    version.write_bytes("frames/a.png", data)
    assert frames.read_frame_bytes(storage, version, {"frame_key": "frames/a.png"}) == data


@pytest.mark.parametrize(
    "ext,params",
    [
        (".jpg", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".png", []),
    ],
)
def test_encoded_size_reads_headers_like_pillow(ext: str, params: list[int]) -> None:
    img = np.zeros((37, 53, 3), np.uint8)
    data = cv2.imencode(ext, img, params)[1]
    assert images.encoded_size(data) == (53, 37) == Image.open(io.BytesIO(data.tobytes())).size
    exif = io.BytesIO()
    Image.fromarray(img).save(exif, "JPEG", exif=Image.Exif())  # an APP1 segment before the frame header
    assert images.encoded_size(exif.getvalue()) == (53, 37)


def test_bags_in_parallel_processes_equal_one_at_a_time(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    write_bag(drive / "second.bag", "ros1", {"/cam": [(T0, make_image("ros1", "mono8", 4, 4, 4, bytes(16)))]})
    write_bag(
        drive / "third.bag",
        "ros1",
        {"/cam": [(T0 + i, make_image("ros1", "rgb8", 6, 8, 24, bytes([i]) * 144)) for i in range(5)]},
    )
    one, index_one = _extract(drive, tmp_path / "one", {"bag_workers": 1})
    many, index_many = _extract(drive, tmp_path / "many", {"bag_workers": 3})
    pd.testing.assert_frame_equal(index_one.drop(columns="path"), index_many.drop(columns="path"))
    assert set(index_many["bag"]) == {"cams/", "second.bag", "third.bag"}
    digests = [
        [(s.relative_to(s.parents[3]), hashlib.sha256(s.read_bytes()).hexdigest()) for s in _shards(out)]
        for out in (one, many)
    ]
    assert digests[0] == digests[1] and len(digests[0]) == 5


def test_s3_storage_pickles_without_its_client() -> None:
    import pickle

    from rosbag_assets.io.s3_storage import S3Storage

    storage = S3Storage("bucket", "pre/fix", endpoint_url="http://127.0.0.1:9")
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.uri("a/b") == "s3://bucket/pre/fix/a/b"
    assert copy.client is not storage.client and copy.client.meta.endpoint_url == "http://127.0.0.1:9"


def test_load_frame_from_an_index_row_locally_and_on_s3(tmp_path: Path, moto_server) -> None:
    from rosbag_assets.io.storage import storage_from_uri

    drive = _drive(tmp_path)
    _, index = _extract(drive, tmp_path / "out", {"topics": ["/front/image_raw"], "image_format": "png"})
    row = index.iloc[3].to_dict()
    local = frames.load_frame(row)
    assert local.shape == (48, 64, 3)

    moto_server.client("s3").create_bucket(Bucket="frames")
    s3 = storage_from_uri("s3://frames/assets", endpoint_url=moto_server.url)
    run_raw_bags(drive="d1", source=LocalStorage(drive), output=s3)
    run_extracted_frames(
        drive="d1",
        source=LocalStorage(drive),
        output=s3,
        options={"topics": ["/front/image_raw"], "image_format": "png"},
    )
    _, s3_index = frames.committed_frames(s3, "d1")
    s3_row = s3_index.iloc[3].to_dict()
    assert s3_row["path"].startswith("s3://frames/assets/d1/extracted_frames/versions/")
    assert np.array_equal(frames.load_frame(s3_row, endpoint_url=moto_server.url), local)


def test_a_shard_that_fails_to_complete_fails_the_close() -> None:
    """Completing a shard (on S3: its upload) runs beside the writer; its failure still surfaces."""
    import tempfile

    @contextmanager
    def upload_fails(key: str):
        with tempfile.TemporaryFile() as fh:
            yield fh
            raise ConnectionError(f"upload of {key} failed: 503 Slow Down")

    sink = TarShards(lambda stream, n: (f"{stream}-{n}.tar", upload_fails(f"{stream}-{n}.tar")), 2000)
    for i in range(5):  # rolls over: the first shards complete (and fail) while later ones are written
        sink.append("s", f"{i}.jpg", b"x" * 1500, 0)
    with pytest.raises(RuntimeError, match="503 Slow Down"):
        sink.close()


def test_bags_run_in_parallel_only_when_asked_or_big_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    from rosbag_assets.steps import extracted_frames as extract
    from rosbag_assets.steps.extracted_frames import parallel

    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 16)
    gb = 1_000_000_000
    assert (
        extract.bag_parallelism(0, [gb // 2] * 10) == 1
    )  # small bags: a process each costs more than it saves
    assert extract.bag_parallelism(0, [3 * gb] * 3 + [gb // 2] * 10) == 3
    assert extract.bag_parallelism(0, [10 * gb] * 100) == 8  # half the cores
    assert extract.bag_parallelism(3, [gb // 2] * 10) == 3  # asked for explicitly
    assert extract.bag_parallelism(5, [gb] * 2) == 2  # never more than there are bags
