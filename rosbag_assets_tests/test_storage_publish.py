"""Storage (local folder and S3 on a moto server share one code path) and atomic publication."""

import json
from pathlib import Path

import pytest

from rosbag_assets.io import publish
from rosbag_assets.io.s3_storage import S3Storage
from rosbag_assets.io.storage import LocalStorage, local_files, storage_from_uri


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    endpoint = request.getfixturevalue("moto_server")
    endpoint.client("s3").create_bucket(Bucket="bucket")
    return storage_from_uri("s3://bucket/some/prefix", endpoint_url=endpoint.url)


def test_primitives_round_trip(storage) -> None:
    storage.write_bytes("a/b/c.txt", b"hello")
    storage.write_bytes("a/d.txt", b"xy")
    storage.write_bytes("e/f.bin", b"1")
    assert storage.read_bytes("a/b/c.txt") == b"hello"
    assert storage.exists("a/d.txt") and not storage.exists("a/zzz")
    files = {f.key: f.size for f in storage.list_files("a")}
    assert files == {"a/b/c.txt": 5, "a/d.txt": 2}
    assert storage.list_dirs("") == ["a", "e"]
    assert storage.list_dirs("a") == ["b"]
    storage.delete_prefix("a")
    assert not storage.exists("a/d.txt") and storage.list_dirs("") == ["e"]
    with local_files(storage, ["e/f.bin"]) as paths:
        assert paths[0].read_bytes() == b"1"


def test_keys_cannot_escape_the_root(storage) -> None:
    with pytest.raises(ValueError, match="escapes"):
        storage.write_bytes("../outside.txt", b"x")


def test_s3_uri_forms(moto_server) -> None:
    store = storage_from_uri("s3://bucket-x/p/q/", endpoint_url=moto_server.url)
    assert isinstance(store, S3Storage) and store.uri("k.txt") == "s3://bucket-x/p/q/k.txt"
    with pytest.raises(ValueError, match="unsupported storage URI"):
        storage_from_uri("gs://nope/x")


def test_commit_is_atomic_and_rerun_converges(storage) -> None:
    prefix = "drive1/extracted_frames"
    assert publish.current(storage, prefix) is None
    first = publish.begin(storage, prefix, "run-a")
    first.write_bytes("index.parquet", b"v1")
    first.commit({"frames": 1})
    committed = publish.current(storage, prefix)
    assert committed is not None and committed["version"] == first.version

    # a run killed before its commit leaves the published version untouched
    killed = publish.begin(storage, prefix, "run-b")
    killed.write_bytes("index.parquet", b"half-written")
    assert publish.current(storage, prefix)["version"] == first.version
    version, _ = publish.require_current(storage, prefix)
    assert storage.read_bytes(version.key("index.parquet")) == b"v1"

    # a rerun publishes a new version with the same content; old versions are pruned
    for run in ("run-c", "run-d", "run-e"):
        again = publish.begin(storage, prefix, run)
        again.write_bytes("index.parquet", b"v1")
        again.commit({"frames": 1})
    version, manifest = publish.require_current(storage, prefix)
    assert storage.read_bytes(version.key("index.parquet")) == b"v1" and manifest["frames"] == 1
    versions = storage.list_dirs(f"{prefix}/versions")
    committed = [v for v in versions if storage.exists(f"{prefix}/versions/{v}/manifest.json")]
    assert len(committed) == publish.KEEP_VERSIONS and version.version in committed
    assert killed.version in versions  # its lease is fresh: it may belong to a live run
    assert json.loads(storage.read_bytes(version.key("manifest.json")))["version"] == version.version
    # once its lease is stale, the killed run's draft is cleaned up by the next commit's pruning
    assert publish.prune_versions(storage, prefix, abandoned_after_s=-1) == [killed.version]


def test_failed_blocking_check_never_becomes_current(storage) -> None:
    prefix = "drive1/object_labels"
    good = publish.begin(storage, prefix, "run-a")
    good.write_bytes("labels.parquet", b"good")
    good.commit({"labels": 3})
    bad = publish.begin(storage, prefix, "run-b")
    bad.write_bytes("labels.parquet", b"bad")
    bad.commit({"labels": 0}, blocking_failures=["boxes_inside_image"])
    version, manifest = publish.require_current(storage, prefix)
    assert manifest["labels"] == 3
    assert version.version == good.version and storage.read_bytes(version.key("labels.parquet")) == b"good"
    kept = json.loads(storage.read_bytes(bad.key("manifest.json")))
    assert kept["status"] == "rejected" and kept["failed_blocking_checks"] == ["boxes_inside_image"]


def test_pruning_keeps_the_previous_committed_version_and_live_drafts(storage) -> None:
    """Killed run, then three overlapping runs of one partition: no run deletes another's work."""
    prefix = "drive1/extracted_frames"
    first = publish.begin(storage, prefix, "run-a")
    first.write_bytes("index.parquet", b"1")
    first.commit({})
    killed = publish.begin(storage, prefix, "run-killed")  # kill -9: no commit, no cleanup
    killed.write_bytes("index.parquet", b"half")
    slow, fast_1, fast_2 = (publish.begin(storage, prefix, f"run-{n}") for n in ("slow", "f1", "f2"))
    slow.write_bytes("index.parquet", b"slow part")
    for draft in (fast_1, fast_2):
        draft.write_bytes("index.parquet", b"2")
        draft.commit({})
    # the slow run is still writing: its draft survived two commits' pruning and it can still commit
    slow.write_bytes("more.bin", b"x")
    slow.commit({})
    versions = set(storage.list_dirs(f"{prefix}/versions"))
    assert publish.current(storage, prefix)["version"] == slow.version
    assert fast_2.version in versions  # the previous committed version survives
    assert first.version not in versions and fast_1.version not in versions  # older committed ones go
    assert killed.version in versions  # a draft is only removed once its lease is stale


def test_require_current_names_the_missing_upstream(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialize the upstream asset first"):
        publish.require_current(LocalStorage(tmp_path), "drive1/raw_bags")


def test_ranges_streams_and_cheap_listings(storage) -> None:
    storage.write_bytes("r/x.bin", bytes(range(100)))
    assert storage.read_range("r/x.bin", 10, 5) == bytes(range(10, 15))
    with pytest.raises(ValueError, match="ends early"):
        storage.read_range("r/x.bin", 98, 5)
    with storage.open_write("r/streamed.bin") as fh:
        fh.write(b"ab")
        fh.write(b"cd")
        assert not storage.exists("r/streamed.bin")  # appears only once complete
    assert storage.read_bytes("r/streamed.bin") == b"abcd"
    with pytest.raises(RuntimeError), storage.open_write("r/failed.bin") as fh:
        fh.write(b"half")
        raise RuntimeError("killed mid-write")
    assert not storage.exists("r/failed.bin")
    assert {f.key for f in storage.list_files("r")} == {"r/x.bin", "r/streamed.bin"}
    if isinstance(storage, S3Storage):  # listings skip boto3's timestamp parsing; other calls keep it
        page = storage.lister.list_objects_v2(Bucket=storage.bucket, Prefix="some/prefix/r/")
        assert isinstance(page["Contents"][0]["LastModified"], str)
        head = storage.client.head_object(Bucket=storage.bucket, Key="some/prefix/r/x.bin")
        assert not isinstance(head["LastModified"], str)
