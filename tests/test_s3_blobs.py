"""The object-store blob store against a real S3 API server on loopback (moto server mode).

The contract tests run against both stores (files in a directory, and a bucket); the rest is
what only a bucket has: hosts sharing it, its bytes checked, a bounded local cache, and an
outage answered promptly instead of a hang.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import obstore
import pytest

from packyard.errors import StorageUnavailable
from packyard.storage import s3blobs, store
from packyard.storage.blobs import BlobProblem, BlobStore
from packyard.storage.db import Database
from packyard.storage.s3blobs import S3BlobStore, s3_store
from tests.conftest import ServerProcess, basic_auth, clean_env, free_port, tool
from tests.s3 import S3Server, in_environment
from tests.test_storage_contract import _file, _index


class Boom(Exception):
    pass


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    in_environment(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


def bucket_store(root: Path, bucket: str, cache_bytes: int = 1 << 30) -> S3BlobStore:
    return S3BlobStore(root, s3_store(f"s3://{bucket}/blobs"), cache_bytes)


@pytest.fixture(params=["files", "bucket"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "files":
        return BlobStore(tmp_path / "blobs")
    return bucket_store(tmp_path / "cache", request.getfixturevalue("bucket"))


def layout(sha: str) -> str:
    """A blob's key under the prefix: the file store's layout."""
    return f"{sha[:2]}/{sha[2:4]}/{sha}"


def _keys(s3_server: S3Server, bucket: str) -> list[str]:
    return sorted(e["path"] for batch in obstore.list(s3_server.client(bucket)) for e in batch)


# --- the contract, for both stores -----------------------------------------------------------


def test_put_read_exists(blobs: BlobStore) -> None:
    sha = blobs.put_bytes(b"hello blob")
    assert sha == hashlib.sha256(b"hello blob").hexdigest()
    assert blobs.exists(sha) and blobs.read_bytes(sha) == b"hello blob"
    assert not blobs.exists("0" * 64)
    assert not blobs.path("0" * 64).exists()
    assert blobs.put_bytes(b"hello blob") == sha
    assert list(blobs.temp_dir.iterdir()) == []


def test_an_aborted_writer_leaves_nothing(blobs: BlobStore) -> None:
    with pytest.raises(Boom), blobs.writer() as writer:
        writer.write(b"half a file")
        raise Boom
    assert not blobs.exists(hashlib.sha256(b"half a file").hexdigest())
    assert list(blobs.stored()) == [] and list(blobs.temp_dir.iterdir()) == []


@pytest.mark.parametrize("outcome", ["finish", "undo"])
def test_removal_is_undoable_until_finished(blobs: BlobStore, outcome: str) -> None:
    sha = blobs.put_bytes(b"doomed")
    removal = blobs.removal()
    removal.remove(sha)
    removal.remove("0" * 64)  # not stored: nothing to do
    getattr(removal, outcome)()
    assert blobs.exists(sha) is (outcome == "undo")
    assert [b.name for b in blobs.stored()] == ([sha] if outcome == "undo" else [])


def test_a_write_removes_the_blobs_its_rows_let_go_of(blobs: BlobStore, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'meta.sqlite3'}", tmp_path / "serial", blobs)
    kept, doomed = blobs.put_bytes(b"kept"), blobs.put_bytes(b"doomed")
    index_id = _index(db)
    with db.write("upload") as conn:
        store.insert_file(conn, _file(index_id, "a-1.0.tar.gz", kept))
        store.insert_file(conn, _file(index_id, "b-1.0.tar.gz", doomed))
    with db.write("delete") as conn:
        gone = [f.id for f in store.index_files(conn, index_id) if f.sha256 == doomed]
        store.delete_files(conn, gone)
    with pytest.raises(Boom), db.write("delete everything") as conn:
        store.delete_index(conn, index_id)
        raise Boom  # rolled back: its blobs stay
    assert sorted(b.name for b in blobs.stored()) == [kept]
    db.close()


# --- what only a bucket has ------------------------------------------------------------------


def test_hosts_sharing_a_bucket_read_each_others_blobs(tmp_path: Path, bucket: str) -> None:
    host_a, host_b = bucket_store(tmp_path / "a", bucket), bucket_store(tmp_path / "b", bucket)
    data = os.urandom(300_000)
    sha = host_a.put_bytes(data)
    assert not host_b.local_path(sha).exists()  # nothing shared but the bucket
    assert host_b.exists(sha)
    assert host_b.read_bytes(sha) == data
    assert host_b.local_path(sha).read_bytes() == data  # cached on B from now on


def test_bytes_changed_in_the_bucket_are_never_served(
    tmp_path: Path, bucket: str, s3_server: S3Server
) -> None:
    sha = bucket_store(tmp_path / "a", bucket).put_bytes(b"the real release")
    key = f"blobs/{layout(sha)}"
    obstore.put(s3_server.client(bucket), key, b"a swapped release")
    other_host = bucket_store(tmp_path / "b", bucket)
    with pytest.raises(BlobProblem, match="other bytes"):
        other_host.path(sha)
    assert not other_host.local_path(sha).exists()
    assert list(other_host.temp_dir.iterdir()) == []


def test_the_local_cache_stays_within_its_budget(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3blobs, "GRACE_SECONDS", -1.0)  # no download in flight here
    writer = bucket_store(tmp_path / "writer", bucket)
    blobs = [os.urandom(1000) for _ in range(5)]
    shas = [writer.put_bytes(data) for data in blobs]
    reader = bucket_store(tmp_path / "reader", bucket, cache_bytes=2500)
    for sha, data in zip(shas, blobs, strict=True):
        assert reader.read_bytes(sha) == data
    cached = [sha for sha in shas if reader.local_path(sha).exists()]
    assert cached == shas[-2:]  # the least recently used went first
    assert reader.read_bytes(shas[0]) == blobs[0]  # evicted, not lost
    restarted = bucket_store(tmp_path / "reader", bucket, cache_bytes=1500)
    assert sum(restarted.local_path(sha).exists() for sha in shas) == 1


def test_a_blob_just_checked_for_a_download_is_not_evicted(tmp_path: Path, bucket: str) -> None:
    """Checked, then opened by the response a moment later: evicting it in between (for
    another reader's fetch) would send a 200 whose body breaks off."""
    writer = bucket_store(tmp_path / "writer", bucket)
    shas = [writer.put_bytes(os.urandom(1000)) for _ in range(3)]
    reader = bucket_store(tmp_path / "reader", bucket, cache_bytes=1500)
    served = [reader.path(sha) for sha in shas]  # three downloads at once, over budget
    assert all(path.is_file() for path in served)


def test_concurrent_readers_of_a_cold_blob_make_one_download(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = bucket_store(tmp_path / "writer", bucket).put_bytes(os.urandom(200_000))
    reader = bucket_store(tmp_path / "reader", bucket)
    fetches: list[str] = []
    fetch = reader._fetch

    def counted(name: str) -> None:
        fetches.append(name)
        time.sleep(0.2)  # long enough for every reader to arrive
        fetch(name)

    monkeypatch.setattr(reader, "_fetch", counted)
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(reader.path, [sha] * 8))
    assert fetches == [sha]
    assert {path.read_bytes() for path in paths} == {reader.read_bytes(sha)}


def test_keys_are_only_made_of_blob_names(tmp_path: Path, bucket: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        bucket_store(tmp_path / "cache", bucket).key("../../etc/passwd")


def test_a_stopped_object_store_is_a_prompt_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = S3Server(tmp_path / "moto.log")
    stopped.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", stopped.endpoint)
        blobs = bucket_store(tmp_path / "cache", stopped.new_bucket())
        cached = blobs.put_bytes(b"cached here")
    finally:
        stopped.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="cannot be reached"):
        blobs.put_bytes(b"new upload")
    with pytest.raises(StorageUnavailable):
        blobs.exists("1" * 64)
    assert time.monotonic() - started < 20  # retries are bounded; no hang
    assert blobs.read_bytes(cached) == b"cached here"  # this host's cache still serves
    assert list(blobs.temp_dir.iterdir()) == []


# --- the server on a bucket ------------------------------------------------------------------


def _upload_wheel(server: ServerProcess, project: str) -> tuple[str, bytes]:
    from tests.builders import build_wheel  # local: builds a real wheel

    auth = basic_auth("root", "rootpw")
    httpx.put(f"{server.url}/root/dev", json={"volatile": False}, headers=auth).raise_for_status()
    path = build_wheel(server.serverdir.parent / "dist", project, "1.0")
    data = path.read_bytes()
    response = httpx.post(
        f"{server.url}/root/dev/",
        data={":action": "file_upload", "name": project, "version": "1.0"},
        files={"content": (path.name, data)},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    return path.name, data


def test_a_server_on_a_bucket_keeps_files_there(
    tmp_path: Path, bucket: str, s3_server: S3Server
) -> None:
    server = ServerProcess(tmp_path / "server", free_port(), tmp_path / "server.log")
    server.settings = {"blobs": f"s3://{bucket}/files"}
    server.start()
    try:
        filename, data = _upload_wheel(server, "bucketed")
        sha = hashlib.sha256(data).hexdigest()
        assert f"files/{layout(sha)}" in _keys(s3_server, bucket)
        assert not (server.serverdir / "blobs" / sha[:2]).exists()
        shutil.rmtree(server.serverdir / "blob-cache" / sha[:2])  # so served from the bucket
        into = tmp_path / "downloaded"
        pip = [tool("pip"), "download", "--no-deps", "-d", str(into)]
        index = ["--index-url", f"{server.url}/root/dev/+simple/", "bucketed"]
        ran = subprocess.run(pip + index, env=clean_env(), capture_output=True, text=True)
        assert ran.returncode == 0, ran.stdout + ran.stderr + server.log()
        assert (into / filename).read_bytes() == data
    finally:
        server.stop()


def test_settings_refuse_a_blobs_url_that_is_not_s3() -> None:
    from packyard.errors import ConfigError

    with pytest.raises(ConfigError, match="s3://BUCKET/PREFIX"):
        s3_store("/var/lib/blobs")


def test_fsck_finds_and_removes_orphans_in_the_bucket(
    tmp_path: Path, bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packyard.config import Settings
    from packyard.services import fsck, open_services

    services = open_services(Settings(serverdir=tmp_path / "server", blobs=f"s3://{bucket}/blobs"))
    db, blobs = services.db, services.blobs
    used, index_id = blobs.put_bytes(b"in a row"), _index(db)
    with db.write("upload") as conn:
        store.insert_file(conn, _file(index_id, "a-1.0.tar.gz", used))
    orphan = blobs.put_bytes(b"nobody points at me")
    obstore.put(s3_server.client(bucket), "blobs/stray-file", b"left by another tool")
    lines: list[str] = []

    def check(repair: bool) -> fsck.FsckResult:
        return fsck.Fsck(db, blobs, services.sources, lines.append).run(repair=repair)

    assert [b.name for b in check(repair=False).orphans] == [orphan]  # not another tool's
    monkeypatch.setattr(fsck, "ORPHAN_GRACE_SECONDS", -60)  # moto's objects are all new
    assert check(repair=True).removed_orphans == 1
    assert _keys(s3_server, bucket) == sorted(["blobs/stray-file", f"blobs/{layout(used)}"])
    assert blobs.read_bytes(used) == b"in a row"
    services.close()
