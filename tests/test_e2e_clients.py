"""End to end with real clients: twine and uv publish upload, pip and uv install, bases inherit.

One server and one set of distributions per module; the tests build on each other's uploads
only through module fixtures, so each can also run alone.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth, tool
from tests.e2e_support import (
    PASSWORD,
    assert_downloads_match,
    assert_succeeded,
    blob_files,
    create_index,
    create_user,
    print_log_if_failed,
    project_json_files,
    run_tool,
    running_server,
    simple_files,
    upload,
)

pytestmark = pytest.mark.e2e

PROJECT = "e2e-demo"
MODULE = "e2e_demo"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("clients")) as started:
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield
    print_log_if_failed(request, server)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def alice_dev(client: httpx.Client) -> str:
    """User alice and her index alice/dev, both created over HTTP as the devpi client does."""
    create_user(client, "alice")
    create_index(client, "alice", "dev")
    return "/alice/dev"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A wheel and an sdist for each of versions 1.0 and 2.0."""
    directory = tmp_path_factory.mktemp("dists")
    return [
        built
        for version in ("1.0", "2.0")
        for built in (
            build_wheel(directory, PROJECT, version),
            build_sdist(directory, PROJECT, version),
        )
    ]


@pytest.fixture(scope="module")
def twine_uploaded(server: ServerProcess, alice_dev: str, dists: list[Path]) -> list[Path]:
    result = run_tool(
        [
            tool("twine"),
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            f"{server.url}{alice_dev}/",
            "--username",
            "alice",
            "--password",
            PASSWORD,
            *dists,
        ]
    )
    assert_succeeded(result)
    return dists


@pytest.fixture(scope="module")
def pip_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv made by `python -m venv`, so it has the pip users run; returns its python."""
    directory = tmp_path_factory.mktemp("pip-venv") / "venv"
    assert_succeeded(run_tool([sys.executable, "-m", "venv", directory]))
    return directory / "bin" / "python"


def pip_install(python: Path, index_url: str, *requirements: str) -> None:
    command = [python, "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url]
    assert_succeeded(run_tool([*command, *requirements]))


def installed_version(python: Path, project: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({project!r}))"
    result = run_tool([python, "-c", code])
    assert_succeeded(result)
    return result.stdout.strip()


def imported_version(python: Path, module: str) -> str:
    result = run_tool([python, "-c", f"import {module}; print({module}.__version__)"])
    assert_succeeded(result)
    return result.stdout.strip()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- accounts -------------------------------------------------------------------------------


def test_user_and_index_created_over_http_are_listed(client: httpx.Client, alice_dev: str) -> None:
    response = client.get("/alice", headers=JSON)
    assert response.status_code == 200, response.text
    user = response.json()["result"]
    assert user["username"] == "alice"
    assert user["indexes"]["dev"]["type"] == "stage"
    assert user["indexes"]["dev"]["acl_upload"] == ["alice"]


# --- uploading ------------------------------------------------------------------------------


def test_twine_upload_lists_every_file_with_its_hash(
    client: httpx.Client, alice_dev: str, twine_uploaded: list[Path]
) -> None:
    listed = simple_files(client, alice_dev, PROJECT)
    expected = {path.name: sha256_of(path) for path in twine_uploaded}
    assert {item.url.rsplit("/", 1)[-1]: item.sha256 for item in listed} == expected
    assert_downloads_match(client, listed)


def test_twine_upload_records_both_versions(
    client: httpx.Client, alice_dev: str, twine_uploaded: list[Path]
) -> None:
    response = client.get(f"{alice_dev}/{PROJECT}", headers=JSON)
    assert response.status_code == 200, response.text
    versions = response.json()["result"]
    assert sorted(versions) == ["1.0", "2.0"]
    assert all(len(data["+links"]) == 2 for data in versions.values())
    assert_downloads_match(client, project_json_files(client, alice_dev, PROJECT))


def test_uv_publish_uploads_and_the_files_are_listed(
    server: ServerProcess, client: httpx.Client, alice_dev: str, tmp_path: Path
) -> None:
    published = [
        build_wheel(tmp_path, "e2e-published", "0.3"),
        build_sdist(tmp_path, "e2e-published", "0.3"),
    ]
    result = run_tool(
        [
            tool("uv"),
            "publish",
            "--no-config",
            "--publish-url",
            f"{server.url}{alice_dev}/",
            "--username",
            "alice",
            "--password",
            PASSWORD,
            *published,
        ]
    )
    assert_succeeded(result)
    listed = simple_files(client, alice_dev, "e2e-published")
    assert {item.url.rsplit("/", 1)[-1]: item.sha256 for item in listed} == {
        path.name: sha256_of(path) for path in published
    }
    assert_downloads_match(client, listed)


def overwrite_on_volatile_index(
    server: ServerProcess, client: httpx.Client, project: str, directory: Path
) -> tuple[Path, set[Path], set[Path]]:
    """Upload `project` 1.0 to alice/dev twice with different content; returns the second
    wheel and the blob files before the first and after the second upload."""
    auth = basic_auth("alice", PASSWORD)
    fields = {"name": project, "version": "1.0"}
    before = blob_files(server)
    for summary in ("first", "second"):
        wheel = build_wheel(directory / summary, project, "1.0", summary=summary)
        response = upload(client, "/alice/dev", wheel.name, wheel.read_bytes(), auth, fields)
        assert response.status_code == 200, response.text
    return wheel, before, blob_files(server)


def test_upload_to_a_volatile_index_replaces_the_file(
    server: ServerProcess, client: httpx.Client, alice_dev: str, tmp_path: Path
) -> None:
    wheel, _before, _after = overwrite_on_volatile_index(server, client, "replaced", tmp_path)
    listed = simple_files(client, alice_dev, "replaced")
    assert [item.sha256 for item in listed] == [sha256_of(wheel)]
    assert_downloads_match(client, listed)
    versions = client.get(f"{alice_dev}/replaced", headers=JSON).json()["result"]
    assert [entry["what"] for entry in versions["1.0"]["+links"][0]["log"]] == [
        "overwrite",
        "upload",
    ]


def test_upload_to_a_volatile_index_frees_the_replaced_blobs(
    server: ServerProcess, client: httpx.Client, alice_dev: str, tmp_path: Path
) -> None:
    _wheel, before, after = overwrite_on_volatile_index(server, client, "freed", tmp_path)
    assert before <= after
    assert len(after - before) == 2, "only the new wheel and its .metadata should be added"


# --- installing -----------------------------------------------------------------------------


def test_pip_installs_the_pinned_version(
    server: ServerProcess, twine_uploaded: list[Path], pip_venv: Path
) -> None:
    pip_install(pip_venv, f"{server.url}/alice/dev/+simple/", f"{PROJECT}==1.0")
    assert installed_version(pip_venv, PROJECT) == "1.0"
    assert imported_version(pip_venv, MODULE) == "1.0"


def test_uv_pip_installs_the_pinned_version(
    server: ServerProcess, twine_uploaded: list[Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    assert_succeeded(
        run_tool([tool("uv"), "venv", "--no-config", "--python", sys.executable, venv])
    )
    python = venv / "bin" / "python"
    install = [tool("uv"), "pip", "install", "--no-config", "--no-cache", "--python", python]
    index = ["--index-url", f"{server.url}/alice/dev/+simple/"]
    assert_succeeded(run_tool([*install, *index, f"{PROJECT}==1.0"]))
    assert installed_version(python, PROJECT) == "1.0"
    assert imported_version(python, MODULE) == "1.0"
    # Without a pin uv takes the newest release.
    assert_succeeded(run_tool([*install, *index, "--upgrade", PROJECT]))
    assert installed_version(python, PROJECT) == "2.0"


def test_pip_and_uv_install_through_the_devpi_installer_shortcut(
    server: ServerProcess, twine_uploaded: list[Path], tmp_path: Path
) -> None:
    """`--index-url http://host/alice/dev/`, without `+simple/` (devpi-protocol.md 7.3)."""
    shortcut = f"{server.url}/alice/dev/"
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
    options = ["--only-binary", ":all:", "--index-url", shortcut, "-d", tmp_path / "pip"]
    assert_succeeded(run_tool([*download, *options, f"{PROJECT}==1.0"]))
    [wheel] = (tmp_path / "pip").iterdir()
    assert sha256_of(wheel) == sha256_of(twine_uploaded[0])
    install = [tool("uv"), "pip", "install", "--no-config", "--no-cache"]
    options = ["--python", sys.executable, "--index-url", shortcut, "--target", tmp_path / "uv"]
    assert_succeeded(run_tool([*install, *options, f"{PROJECT}==2.0"]))
    assert (tmp_path / "uv" / MODULE / "__init__.py").read_text().startswith("__version__ = '2.0'")
    # Everyone else still gets devpi's JSON at that URL.
    assert PROJECT in httpx.get(shortcut, headers=JSON).json()["result"]["projects"]


# --- inheritance ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_and_derived(
    client: httpx.Client, alice_dev: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """alice/base holds `only-in-base`; alice/derived (bases=alice/base) holds `only-in-derived`."""
    create_index(client, "alice", "base")
    create_index(client, "alice", "derived", bases="alice/base")
    directory = tmp_path_factory.mktemp("inherited")
    auth = basic_auth("alice", PASSWORD)
    for index, project in (("/alice/base", "only-in-base"), ("/alice/derived", "only-in-derived")):
        wheel = build_wheel(directory, project, "1.0")
        fields = {"name": project, "version": "1.0"}
        response = upload(client, index, wheel.name, wheel.read_bytes(), auth, fields)
        assert response.status_code == 200, response.text
    return "/alice/base", "/alice/derived"


def test_derived_index_serves_its_base_projects_and_its_own(
    client: httpx.Client, base_and_derived: tuple[str, str]
) -> None:
    base, derived = base_and_derived
    listing = client.get(
        f"{derived}/+simple/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert listing.status_code == 200, listing.text
    names = {project["name"] for project in listing.json()["projects"]}
    assert {"only-in-base", "only-in-derived"} <= names
    inherited = simple_files(client, derived, "only-in-base")
    assert [item.url for item in inherited] == [
        item.url for item in simple_files(client, base, "only-in-base")
    ]
    assert f"{base}/+f/" in inherited[0].url
    assert_downloads_match(client, inherited)
    # The base does not see what only the derived index holds.
    assert client.get(f"{base}/+simple/only-in-derived/").status_code == 404


def test_pip_installs_from_a_base_through_the_derived_index(
    server: ServerProcess, base_and_derived: tuple[str, str], pip_venv: Path
) -> None:
    _base, derived = base_and_derived
    pip_install(pip_venv, f"{server.url}{derived}/+simple/", "only-in-base", "only-in-derived")
    assert imported_version(pip_venv, "only_in_base") == "1.0"
    assert imported_version(pip_venv, "only_in_derived") == "1.0"
