"""devpi compatibility, legacy corners (issue 14, items 7-9), against real processes.

7. A devpi export holding an egg and bdist_dumb archives, built by the real devpi-server 6:
   `packyard import` keeps every file, serves it, and `packyard export` writes it again; new
   uploads of such files to packyard stay refused (PEP 715).
8. A doc zip without a version for a project without releases: devpi's exact message.
9. `/+status` names the devpi-server protocol level beside packyard; `devpi --version` says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import build_sdist, build_wheel, core_metadata
from tests.conftest import BIN, JSON, ROOT_PASSWORD, ServerProcess, basic_auth, free_port
from tests.devpi_client import Devpi, devpi_executable, signed_up  # noqa: F401 (fixture)
from tests.e2e_support import assert_succeeded, blob_files, run_tool, upload
from tests.packyard_cli import DevpiServer, ensure_devpi_server_venv
from tests.test_dump import (
    comparable,
    export_ok,
    file_contents,
    import_ok,
    read_dataindex,
    served_links,
    serving,
)

pytestmark = pytest.mark.e2e

PROJECT, VERSION, INDEX = "legacy-kit", "1.0", "alice/dev"
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
SIMPLE_HTML = {"Accept": "text/html"}


# --- legacy files, as old build tools wrote them -----------------------------------------------


def build_egg(directory: Path) -> Path:
    """A bdist_egg: a zip with EGG-INFO/PKG-INFO beside the module."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"legacy_kit-{VERSION}-py3.11.egg"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("EGG-INFO/PKG-INFO", core_metadata(PROJECT, VERSION))
        archive.writestr("EGG-INFO/top_level.txt", "legacy_kit\n")
        archive.writestr("legacy_kit/__init__.py", "EGG = True\n")
    return target


def build_dumb_tar(directory: Path) -> Path:
    """A bdist_dumb as a tarball: the installed tree of one platform."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"legacy-kit-{VERSION}.linux-x86_64.tar.gz"
    data = b"DUMB = 'tar'\n"
    with tarfile.open(target, "w:gz") as archive:
        member = tarfile.TarInfo("./usr/lib/python3.11/site-packages/legacy_kit/__init__.py")
        member.size, member.mtime = len(data), 1_700_000_000
        archive.addfile(member, io.BytesIO(data))
    return target


def build_dumb_zip(directory: Path) -> Path:
    """A bdist_dumb as a zip, as it was made on Windows."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"legacy-kit-{VERSION}.win-amd64.zip"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("Python311/Lib/site-packages/legacy_kit/__init__.py", "DUMB = 'zip'\n")
    return target


# filetype and pyversion as the devpi client and setuptools sent them with each kind of file.
LEGACY_FORMS = {"egg": ("bdist_egg", "3.11"), "tar": ("bdist_dumb", "any"), "zip": ("bdist_dumb", "any")}


def all_dists(directory: Path) -> dict[str, tuple[Path, str, str]]:
    """kind → (file, filetype, pyversion): modern dists beside the legacy ones."""
    return {
        "wheel": (build_wheel(directory, PROJECT, VERSION), "bdist_wheel", "py3"),
        "sdist": (build_sdist(directory, PROJECT, VERSION), "sdist", "source"),
        "egg": (build_egg(directory), *LEGACY_FORMS["egg"]),
        "tar": (build_dumb_tar(directory), *LEGACY_FORMS["tar"]),
        "zip": (build_dumb_zip(directory), *LEGACY_FORMS["zip"]),
    }


# --- a devpi export made by the real devpi-server ------------------------------------------------


@dataclass(frozen=True)
class LegacyExport:
    directory: Path  # devpi-export's output (read-only for the tests: copy before changing)
    dists: dict[str, Path]  # kind → the file that was uploaded


def devpi_token(client: httpx.Client, user: str, password: str) -> dict[str, str]:
    response = client.post("/+login", json={"user": user, "password": password}, headers=JSON)
    assert response.status_code == 200, response.text
    token = response.json()["result"]["password"]
    return basic_auth(user, token)


def fill_devpi_server(url: str, dists: dict[str, tuple[Path, str, str]]) -> None:
    """alice/dev on devpi-server with every file, uploaded through the form devpi's own
    client and setuptools' `upload` command use."""
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.put("/alice", json={"password": "alicepw"}, headers=JSON)
        assert response.status_code == 201, response.text
        alice = devpi_token(client, "alice", "alicepw")
        response = client.put(f"/{INDEX}", json={"bases": []}, headers=JSON | alice)
        assert response.status_code == 200, response.text
        for path, filetype, pyversion in dists.values():
            fields = {"name": PROJECT, "version": VERSION, "filetype": filetype}
            fields |= {"pyversion": pyversion, "protocol_version": "1"}
            response = upload(client, f"/{INDEX}", path.name, path.read_bytes(), alice, fields)
            assert response.status_code == 200, f"{path.name}: {response.text}"


@pytest.fixture(scope="module")
def legacy_export(tmp_path_factory: pytest.TempPathFactory) -> LegacyExport:
    base = tmp_path_factory.mktemp("legacy")
    dists = all_dists(base / "dists")
    bindir = ensure_devpi_server_venv()
    server = DevpiServer(bindir, base / "devpi")
    server.start()
    try:
        fill_devpi_server(server.url, dists)
    except BaseException:
        print(f"--- devpi-server log ---\n{server.log()}")
        raise
    finally:
        server.stop()
    export = base / "export"
    command = [bindir / "devpi-export", "--serverdir", base / "devpi" / "serverdir", export]
    assert_succeeded(run_tool(command, timeout=180))
    return LegacyExport(export, {kind: path for kind, (path, _, _) in dists.items()})


def test_the_devpi_export_holds_every_legacy_file(legacy_export: LegacyExport) -> None:
    files = read_dataindex(legacy_export.directory)["indexes"][INDEX]["files"]
    names = {entry["relpath"].rsplit("/", 1)[-1] for entry in files}
    assert names == {path.name for path in legacy_export.dists.values()}
