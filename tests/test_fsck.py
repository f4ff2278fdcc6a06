"""Blob lifetimes and `packyard fsck`, on server dirs filled by a real server.

Deleting an index or a user removes every blob no other row uses, in the same transaction;
`packyard fsck` finds what is damaged, missing or orphaned in a server dir damaged on
purpose, and `--repair` removes orphans and rebuilds PEP 658 files.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import BIN, JSON, ServerProcess, basic_auth, free_port
from tests.e2e_support import PASSWORD, blob_files, create_index, create_user, upload

pytestmark = pytest.mark.e2e

AUTH = basic_auth("fay", PASSWORD)


def fsck(serverdir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    return subprocess.run(
        [str(BIN / "packyard"), "fsck", "--serverdir", str(serverdir), *flags],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "server", free_port(), tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


def upload_wheels(
    client: httpx.Client, index: str, directory: Path, names: list[str]
) -> list[bytes]:
    contents = []
    for name in names:
        wheel = build_wheel(directory, name, "1.0", payload=f"N = {name!r}\n")
        content = wheel.read_bytes()
        response = upload(client, f"/{index}", wheel.name, content, AUTH, {"name": name})
        assert response.status_code == 200, response.text
        contents.append(content)
    return contents


def blob_of(serverdir: Path, content: bytes) -> Path:
    sha = hashlib.sha256(content).hexdigest()
    return serverdir / "blobs" / sha[:2] / sha[2:4] / sha


def test_deleting_an_index_with_50_files_leaves_only_blobs_others_use(
    server: ServerProcess, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        create_user(client, "fay")
        create_index(client, "fay", "scratch", volatile=True)
        create_index(client, "fay", "keep", volatile=True)
        names = [f"scratch-{n:02d}" for n in range(50)]
        shared = upload_wheels(client, "fay/scratch", tmp_path / "wheels", names)[7]
        filename = "scratch_07-1.0-py3-none-any.whl"
        response = upload(client, "/fay/keep", filename, shared, AUTH, {"name": "scratch-07"})
        assert response.status_code == 200, response.text
        assert len(blob_files(server)) == 100  # 50 wheels and their PEP 658 files

        response = client.delete("/fay/scratch", headers=JSON | AUTH)
        assert response.status_code in (200, 201), response.text

        # The shared wheel and its PEP 658 file remain, nothing else.
        assert len(blob_files(server)) == 2
        assert blob_of(server.serverdir, shared) in blob_files(server)
        page = client.get("/fay/keep/+simple/scratch-07/", headers={"Accept": SIMPLE_JSON})
        [entry] = page.json()["files"]
        download = client.get(httpx.URL(str(page.url)).join(entry["url"]))
        assert download.status_code == 200 and download.content == shared

    result = fsck(server.serverdir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 orphaned blobs" in result.stdout


def test_deleting_a_user_removes_the_blobs_of_their_indexes(
    server: ServerProcess, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        create_user(client, "fay")
        create_index(client, "fay", "dev", volatile=True)
        upload_wheels(client, "fay/dev", tmp_path / "wheels", ["leaving", "going"])
        assert len(blob_files(server)) == 4

        response = client.delete("/fay", headers=JSON | AUTH)
        assert response.status_code == 200, response.text

    assert blob_files(server) == set()
    assert fsck(server.serverdir).returncode == 0


def damaged_server_dir(server: ServerProcess, tmp_path: Path) -> dict[str, Path]:
    """A stopped server dir with one of each problem; the paths involved."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        create_user(client, "fay")
        create_index(client, "fay", "dev", volatile=True)
        names = ["intact", "nosidecar", "badsidecar", "flipped", "gone"]
        contents = dict(zip(names, upload_wheels(client, "fay/dev", tmp_path, names), strict=True))
        sidecars = {}
        for name in ("nosidecar", "badsidecar"):
            page = client.get(f"/fay/dev/+simple/{name}/", headers={"Accept": SIMPLE_JSON})
            [entry] = page.json()["files"]
            sha = entry["core-metadata"]["sha256"]
            sidecars[name] = server.serverdir / "blobs" / sha[:2] / sha[2:4] / sha
    server.stop()
    sidecars["nosidecar"].unlink()
    sidecars["badsidecar"].write_bytes(b"Name: evil\n")
    flipped = blob_of(server.serverdir, contents["flipped"])
    flipped.write_bytes(contents["flipped"][::-1])
    blob_of(server.serverdir, contents["gone"]).unlink()
    orphan = server.serverdir / "blobs" / "00" / "00" / ("0" * 64)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"nobody points at me")
    old = time.time() - 86400
    os.utime(orphan, (old, old))
    young = server.serverdir / "blobs" / "11" / "11" / ("1" * 64)
    young.parent.mkdir(parents=True)
    young.write_bytes(b"a server may be about to store my row")
    return {"orphan": orphan, "young": young, "flipped": flipped, **sidecars}


SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def test_fsck_names_every_problem_and_repair_fixes_what_can_be_fixed(
    server: ServerProcess, tmp_path: Path
) -> None:
    paths = damaged_server_dir(server, tmp_path)

    found = fsck(server.serverdir)

    report = found.stdout + found.stderr
    assert found.returncode != 0, report
    assert "Traceback" not in report
    for name in ("flipped", "gone"):
        assert f"{name}-1.0-py3-none-any.whl" in report
    assert "nosidecar-1.0-py3-none-any.whl.metadata" in report and "is missing" in report
    assert "badsidecar-1.0-py3-none-any.whl.metadata" in report
    assert str(paths["orphan"]) in report and str(paths["young"]) in report
    assert "intact-1.0" not in report
    assert paths["orphan"].exists(), "fsck without --repair changed the server dir"

    repaired = fsck(server.serverdir, "--repair")

    report = repaired.stdout + repaired.stderr
    assert repaired.returncode != 0, "uploaded files that are damaged cannot be repaired"
    assert not paths["orphan"].exists() and paths["young"].exists()
    for name in ("nosidecar", "badsidecar"):
        assert "rebuilt fay/dev/+f/" in report
        assert paths[name].exists()
        assert hashlib.sha256(paths[name].read_bytes()).hexdigest() == paths[name].name
    assert paths["flipped"].exists(), "a damaged upload is reported, never deleted"

    again = fsck(server.serverdir)
    report = again.stdout + again.stderr
    assert ".metadata" not in report and str(paths["orphan"]) not in report
    assert "2 damaged or missing" in report
