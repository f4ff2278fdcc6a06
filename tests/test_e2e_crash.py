"""End to end: SIGKILL the server in the middle of a burst of concurrent uploads, restart it on
the same server dir, and check that everything it lists is whole and everything it
acknowledged is still there."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import JSON, ServerProcess, free_port
from tests.e2e_support import (
    PASSWORD,
    SIMPLE_JSON,
    ListedFile,
    assert_downloads_match,
    create_index,
    create_user,
    index_projects,
    print_log_if_failed,
    project_json_files,
    running_server,
    simple_files,
    temp_files,
    upload,
)

pytestmark = pytest.mark.e2e

INDEX = "/alice/dev"
UPLOADS = 50
PROJECTS = 10  # 10 projects x 5 versions: concurrent uploads also race on the same project
ACKNOWLEDGED_BEFORE_KILL = 10


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with running_server(tmp_path) as started:
        yield started
        print_log_if_failed(request, started)


@pytest.fixture
def burst_wheels(tmp_path: Path) -> list[Path]:
    """50 wheels with a few hundred KB of incompressible payload each, so uploads take time."""
    directory = tmp_path / "dists"
    return [
        build_wheel(
            directory,
            f"burst-{number % PROJECTS}",
            f"1.{number // PROJECTS}",
            payload=f"DATA = {base64.b64encode(os.urandom(300_000)).decode()!r}\n",
        )
        for number in range(UPLOADS)
    ]


def login_header(client: httpx.Client, user: str) -> dict[str, str]:
    """devpi's X-Devpi-Auth with a login token: cheap to check, unlike a password."""
    response = client.post("/+login", json={"user": user, "password": PASSWORD}, headers=JSON)
    assert response.status_code == 200, response.text
    token = response.json()["result"]["password"]
    return {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode()}


def upload_wheel(client: httpx.Client, wheel: Path, auth: dict[str, str]) -> httpx.Response:
    project, version = wheel.name.split("-")[:2]
    fields = {"name": project, "version": version}
    return upload(client, INDEX, wheel.name, wheel.read_bytes(), auth, fields)


class Burst:
    """Concurrent uploads; `enough` is set once a given number of them got their 200."""

    def __init__(self, url: str, auth: dict[str, str], wanted: int) -> None:
        self._url = url
        self._auth = auth
        self._wanted = wanted
        self._lock = threading.Lock()
        self.acknowledged: list[str] = []
        self.enough = threading.Event()

    def send(self, wheel: Path) -> None:
        try:
            with httpx.Client(base_url=self._url, timeout=60) as client:
                response = upload_wheel(client, wheel, self._auth)
        except httpx.HTTPError:
            return  # the server died under this upload
        if response.status_code == 200:
            with self._lock:
                self.acknowledged.append(wheel.name)
                if len(self.acknowledged) >= self._wanted:
                    self.enough.set()


def kill_during_burst(server: ServerProcess, wheels: list[Path], auth: dict[str, str]) -> Burst:
    burst = Burst(server.url, auth, ACKNOWLEDGED_BEFORE_KILL)
    with ThreadPoolExecutor(max_workers=len(wheels)) as pool:
        for wheel in wheels:
            pool.submit(burst.send, wheel)
        assert burst.enough.wait(timeout=60), f"no uploads succeeded:\n{server.log()}"
        server.stop(signal.SIGKILL)
    return burst


def restart(server: ServerProcess) -> int:
    """Start again on the same server dir; returns where the new run's log begins."""
    log_start = len(server.log())
    server.port = free_port()
    server.start()
    return log_start


def every_listed_file(client: httpx.Client) -> list[ListedFile]:
    """Files of every project, from the project JSON and the simple pages, which must agree."""
    listed: list[ListedFile] = []
    for project in index_projects(client, INDEX):
        from_json = project_json_files(client, INDEX, project)
        from_simple = simple_files(client, INDEX, project)
        assert sorted(f.sha256 for f in from_json) == sorted(f.sha256 for f in from_simple)
        listed += from_json + from_simple
    return listed


def metadata_files(client: httpx.Client) -> list[ListedFile]:
    """The PEP 658 `.metadata` file of every listed wheel, with its advertised hash."""
    found = []
    for project in index_projects(client, INDEX):
        page = client.get(f"{INDEX}/+simple/{project}/", headers=SIMPLE_JSON)
        for entry in page.json()["files"]:
            url = str(page.url.join(entry["url"]))
            found.append(ListedFile(f"{url}.metadata", entry["core-metadata"]["sha256"]))
    return found


def blob_path(server: ServerProcess, sha256: str) -> Path:
    return server.serverdir / "blobs" / sha256[:2] / sha256[2:4] / sha256


def test_sigkill_during_upload_burst_leaves_a_consistent_index(
    server: ServerProcess, burst_wheels: list[Path]
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as setup:
        create_user(setup, "alice")
        create_index(setup, "alice", "dev")
        auth = login_header(setup, "alice")

    burst = kill_during_burst(server, burst_wheels, auth)
    assert len(burst.acknowledged) < UPLOADS, "the burst ended before the kill; nothing tested"
    leftover = server.serverdir / "blobs" / "tmp" / "upload-left-by-the-crash"
    leftover.write_bytes(b"half a wheel")
    log_start = restart(server)

    assert temp_files(server) == []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        listed = every_listed_file(client)
        names = {file.url.rsplit("/", 1)[-1] for file in listed}
        assert set(burst.acknowledged) <= names, "an acknowledged upload was lost"
        assert all(blob_path(server, file.sha256).is_file() for file in listed)
        assert_downloads_match(client, listed + metadata_files(client))
        assert {file.sha256 for file in listed} <= {
            hashlib.sha256(wheel.read_bytes()).hexdigest() for wheel in burst_wheels
        }, "a listed file is not one of the uploaded ones"

        # Users retry what failed; every retry goes through and the index ends up complete.
        auth = login_header(client, "alice")
        for wheel in burst_wheels:
            if wheel.name not in burst.acknowledged:
                response = upload_wheel(client, wheel, auth)
                assert response.status_code == 200, response.text
        final = every_listed_file(client)
        assert {file.url.rsplit("/", 1)[-1] for file in final} == {w.name for w in burst_wheels}
        assert_downloads_match(client, final)
    assert "Traceback" not in server.log()[log_start:]
