"""Integrity on disk, attacked through a real `packyard serve` on loopback.

A blob changed in place (same size, bytes flipped), truncated or removed is never served as a
200 with immutable caching: the download is a 500 naming the file, the log names the file and
the blob path, and the server keeps serving everything else. A full disk is a 507 with a
message, leaving no half-written file. Exports of a damaged store fail naming the file;
`import --skip-damaged` reports it and imports the rest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import BIN, ServerProcess, basic_auth, free_port
from tests.e2e_support import (
    PASSWORD,
    blob_files,
    create_index,
    create_user,
    temp_files,
    upload,
)

pytestmark = pytest.mark.e2e

USER, INDEX = "ivy", "ivy/dev"
AUTH = basic_auth(USER, PASSWORD)
# Generous: a request that has to hash a small file takes milliseconds.
QUICK = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("integrity")
    server = ServerProcess(base / "server", free_port(), base / "server.log")
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        create_user(client, USER)
        create_index(client, USER, "dev", volatile=True)
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


@pytest.fixture
def client(server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- server log ---\n{server.log()}")


def upload_wheel(client: httpx.Client, directory: Path, project: str) -> tuple[str, Path, bytes]:
    """Upload a fresh wheel of `project`; its URL path, blob path and bytes."""
    payload = f"DATA = {os.urandom(4000).hex()!r}\n"
    wheel = build_wheel(directory, project, "1.0", payload=payload)
    content = wheel.read_bytes()
    response = upload(client, f"/{INDEX}", wheel.name, content, AUTH, {"name": project})
    assert response.status_code == 200, response.text
    page = client.get(f"/{INDEX}/+simple/{project}/", headers={"Accept": SIMPLE_JSON})
    [entry] = page.json()["files"]
    url = httpx.URL(str(page.url)).join(entry["url"]).path
    return url, blob_path(content), content


SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def blob_path(content: bytes) -> Path:
    """Where a server dir keeps `content`, relative to the server dir."""
    sha = hashlib.sha256(content).hexdigest()
    return Path("blobs", sha[:2], sha[2:4], sha)


def timed_get(client: httpx.Client, url: str) -> httpx.Response:
    started = time.monotonic()
    response = client.get(url)
    assert time.monotonic() - started < QUICK
    return response


def assert_refused_naming(response: httpx.Response, filename: str, state: str) -> None:
    """What the attacker sees: an error naming the file, no cacheable bytes."""
    assert response.status_code == 500, response.text
    assert filename in response.text and state in response.text
    assert "immutable" not in response.headers.get("cache-control", "")
    assert "etag" not in response.headers


def test_a_blob_changed_in_place_is_refused_even_with_its_mtime_put_back(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    url, relative, content = upload_wheel(client, tmp_path, "flipped")
    good = timed_get(client, url)
    assert good.content == content  # served once: its hash is remembered
    # An uploader's bytes are never sniffed into a type a browser would run as a page.
    assert good.headers["x-content-type-options"] == "nosniff"
    assert good.headers["content-security-policy"].startswith("sandbox")
    blob = server.serverdir / relative
    before = blob.stat()
    damaged = bytearray(content)
    damaged[len(damaged) // 2] ^= 0xFF
    blob.write_bytes(bytes(damaged))
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))  # only ctime tells now
    assert blob.stat().st_size == before.st_size

    response = timed_get(client, url)

    assert_refused_naming(response, url.rsplit("/", 1)[-1], "damaged")
    assert bytes(damaged) not in response.content
    assert str(blob) in server.log() and url in server.log()


def test_a_truncated_blob_is_refused(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    url, relative, content = upload_wheel(client, tmp_path, "truncated")
    (server.serverdir / relative).write_bytes(content[: len(content) // 2])

    assert_refused_naming(timed_get(client, url), url.rsplit("/", 1)[-1], "damaged")


def test_a_missing_blob_is_refused_by_name_and_the_server_keeps_serving(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    url, relative, _content = upload_wheel(client, tmp_path / "gone", "vanished")
    other_url, _, other = upload_wheel(client, tmp_path / "kept", "kept")
    (server.serverdir / relative).unlink()

    for _attempt in range(3):
        response = timed_get(client, url)
        assert_refused_naming(response, url.rsplit("/", 1)[-1], "missing")
    assert str(server.serverdir / relative) in server.log()
    assert server.process is not None and server.process.poll() is None
    assert timed_get(client, other_url).content == other
    assert client.get("/+api").status_code == 200


def test_a_damaged_core_metadata_file_is_refused(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    url, _relative, _content = upload_wheel(client, tmp_path, "sidecar")
    metadata = timed_get(client, url + ".metadata")
    assert metadata.status_code == 200
    sha = hashlib.sha256(metadata.content).hexdigest()
    (server.serverdir / "blobs" / sha[:2] / sha[2:4] / sha).write_bytes(b"Name: evil\n")

    response = timed_get(client, url + ".metadata")

    assert_refused_naming(response, url.rsplit("/", 1)[-1] + ".metadata", "damaged")
    assert b"evil" not in response.content


# --- a full disk ----------------------------------------------------------------------------


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A real file system of `size` (tmpfs), mounted at `path` for the block."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"this test mounts a small tmpfs (needs root): {mounted}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system holding `directory` is full; the file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_a_full_disk_is_507_with_a_message_and_leaves_nothing_half_written(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with small_filesystem(tmp_path / "disk", "8m") as disk:
        full = ServerProcess(disk / "server", free_port(), tmp_path / "full.log")
        full.start()
        try:
            with httpx.Client(base_url=full.url, timeout=30) as client:
                create_user(client, USER)
                create_index(client, USER, "dev", volatile=True)
                noise = base64.b64encode(os.urandom(10_000_000)).decode()
                big = build_wheel(tmp_path, "huge", "1.0", payload=f"D = {noise!r}\n")
                started = time.monotonic()
                response = upload(
                    client, f"/{INDEX}", big.name, big.read_bytes(), AUTH, {"name": "huge"}
                )
                assert time.monotonic() - started < 30
                assert response.status_code == 507, response.text
                assert "no disk space" in response.text
                assert temp_files(full) == [] and blob_files(full) == set()
                assert client.get(f"/{INDEX}/+simple/huge/").status_code == 404

                # Space again: the same server stores the next upload.
                small = build_wheel(tmp_path / "small", "tiny", "1.0")
                response = upload(
                    client, f"/{INDEX}", small.name, small.read_bytes(), AUTH, {"name": "tiny"}
                )
                assert response.status_code == 200, response.text
                assert len(blob_files(full)) == 2  # the wheel and its core metadata

                # Full to the last byte: the database cannot grow either.
                fill(disk)
                response = client.patch(
                    f"/{INDEX}",
                    json={"description": "x" * 300_000},
                    headers={"Accept": "application/json"} | AUTH,
                )
                assert response.status_code == 507, response.text
                assert "no disk space" in response.json()["message"]
                assert full.process is not None and full.process.poll() is None
                assert client.get("/+api").status_code == 200
        finally:
            if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
                print(full.log())
            full.stop()


# --- export and import of a damaged store -----------------------------------------------------


def packyard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    return subprocess.run(
        [str(BIN / "packyard"), *(str(arg) for arg in args)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_export_of_a_damaged_store_fails_naming_the_file(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", free_port(), tmp_path / "server.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            create_user(client, USER)
            create_index(client, USER, "dev", volatile=True)
            _url, relative, content = upload_wheel(client, tmp_path / "a", "damaged-one")
            upload_wheel(client, tmp_path / "b", "intact-one")
    finally:
        server.stop()
    blob = server.serverdir / relative
    blob.write_bytes(content[:-10] + b"0123456789")

    result = packyard("export", "--serverdir", server.serverdir, tmp_path / "export")

    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert "damaged_one-1.0-py3-none-any.whl" in text and "Traceback" not in text
    assert "intact_one" not in text
    assert not (tmp_path / "export" / "dataindex.json").exists()

    skipped = packyard(
        "export", "--serverdir", server.serverdir, "--skip-damaged", tmp_path / "partial"
    )
    text = skipped.stdout + skipped.stderr
    assert skipped.returncode == 0, text
    assert "damaged_one-1.0-py3-none-any.whl" in text
    files = json.loads((tmp_path / "partial" / "dataindex.json").read_text())["indexes"][INDEX]
    assert [entry["projectname"] for entry in files["files"]] == ["intact-one"]


def test_import_skip_damaged_reports_and_imports_the_rest(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", free_port(), tmp_path / "server.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            create_user(client, USER)
            create_index(client, USER, "dev", volatile=True)
            upload_wheel(client, tmp_path / "a", "spoiled")
            upload_wheel(client, tmp_path / "b", "fine")
    finally:
        server.stop()
    export = tmp_path / "export"
    assert packyard("export", "--serverdir", server.serverdir, export).returncode == 0
    [spoiled] = export.rglob("spoiled-*.whl")
    spoiled.write_bytes(spoiled.read_bytes()[::-1])

    refused = packyard("import", "--serverdir", tmp_path / "target", export)
    assert refused.returncode != 0 and spoiled.name in refused.stdout + refused.stderr

    result = packyard("import", "--serverdir", tmp_path / "target", "--skip-damaged", export)

    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert spoiled.name in text and "skipped" in text
    target = ServerProcess(tmp_path / "target", free_port(), tmp_path / "target.log")
    target.start()
    try:
        with httpx.Client(base_url=target.url, timeout=30) as client:
            accept = {"Accept": SIMPLE_JSON}
            fine = client.get(f"/{INDEX}/+simple/fine/", headers=accept).json()["files"]
            assert len(fine) == 1
            page = client.get(f"/{INDEX}/+simple/spoiled/", headers=accept)
            assert page.status_code == 404 or page.json()["files"] == []
    finally:
        target.stop()
