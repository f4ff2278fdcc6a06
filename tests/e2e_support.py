"""Helpers for the end-to-end tests: a server per module, accounts, uploads, client processes.

Every helper talks to a real `packyard serve` over HTTP or looks at its server dir from the
outside, the way an operator would.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import JSON, ServerProcess, basic_auth, clean_env, free_port

SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PASSWORD = "pw"


@contextmanager
def running_server(
    directory: Path, settings: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A started server whose server dir is `directory/server` (with `settings`, as
    PACKYARD_* variables); stopped on exit."""
    server = ServerProcess(directory / "server", free_port(), directory / "server.log")
    server.settings = dict(settings or {})
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


def print_log_if_failed(request: pytest.FixtureRequest, server: ServerProcess) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- server log ---\n{server.log()}")


def create_user(client: httpx.Client, user: str) -> None:
    response = client.put(f"/{user}", json={"password": PASSWORD}, headers=JSON)
    assert response.status_code == 201, response.text


def create_index(client: httpx.Client, user: str, index: str, **config: object) -> None:
    headers = JSON | basic_auth(user, PASSWORD)
    response = client.put(f"/{user}/{index}", json=config, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "indexconfig"


def upload(
    client: httpx.Client,
    index_path: str,
    filename: str,
    content: bytes,
    headers: dict[str, str],
    fields: dict[str, str],
) -> httpx.Response:
    """A legacy-API upload as twine sends it: `fields` are the form's text fields."""
    form = {":action": "file_upload", **fields}
    return client.post(
        f"{index_path}/", data=form, files={"content": (filename, content)}, headers=headers
    )


@dataclass(frozen=True)
class ListedFile:
    """A file some page advertises: where to get it and the sha256 it promises."""

    url: str
    sha256: str


def simple_files(client: httpx.Client, index_path: str, project: str) -> list[ListedFile]:
    response = client.get(f"{index_path}/+simple/{project}/", headers=SIMPLE_JSON)
    assert response.status_code == 200, response.text
    page_url = str(response.url)
    return [
        ListedFile(str(httpx.URL(page_url).join(entry["url"])), entry["hashes"]["sha256"])
        for entry in response.json()["files"]
    ]


def project_json_files(client: httpx.Client, index_path: str, project: str) -> list[ListedFile]:
    response = client.get(f"{index_path}/{project}", headers=JSON)
    assert response.status_code == 200, response.text
    return [
        ListedFile(link["href"], link["hashes"]["sha256"])
        for version in response.json()["result"].values()
        for link in version["+links"]
    ]


def index_projects(client: httpx.Client, index_path: str) -> list[str]:
    response = client.get(index_path, headers=JSON)
    assert response.status_code == 200, response.text
    projects: list[str] = response.json()["result"]["projects"]
    return projects


def assert_downloads_match(client: httpx.Client, files: Sequence[ListedFile]) -> None:
    """Every advertised file downloads, and its bytes hash to what was advertised."""
    for listed in files:
        response = client.get(listed.url)
        assert response.status_code == 200, f"{listed.url}: {response.status_code}"
        assert hashlib.sha256(response.content).hexdigest() == listed.sha256, listed.url


def blob_files(server: ServerProcess) -> set[Path]:
    """Stored blobs (temp dir excluded)."""
    root = server.serverdir / "blobs"
    return {
        path
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).parts[0] != "tmp"
    }


def temp_files(server: ServerProcess) -> list[Path]:
    return sorted((server.serverdir / "blobs" / "tmp").iterdir())


def run_tool(
    command: Sequence[str | Path], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a client tool with the machine's pip/uv configuration kept out."""
    return subprocess.run(
        [str(part) for part in command],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_succeeded(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
