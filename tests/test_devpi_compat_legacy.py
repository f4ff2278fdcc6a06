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
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from packyard.core.dists import legacy_dist, refuse_legacy_upload, upload_filetype
from packyard.errors import InvalidInput
from tests.builders import build_sdist, build_wheel, core_metadata
from tests.conftest import BIN, JSON, ServerProcess, basic_auth
from tests.devpi_client import Devpi, devpi_executable, signed_up  # noqa: F401 (fixture)
from tests.e2e_support import assert_succeeded, blob_files, run_tool, upload
from tests.packyard_cli import DevpiServer, ensure_devpi_server_venv
from tests.test_dump import (
    assert_links_download,
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


def all_dists(directory: Path) -> dict[str, tuple[Path, str, str]]:
    """kind → (file, filetype, pyversion): modern dists beside the legacy ones."""
    return {
        "wheel": (build_wheel(directory, PROJECT, VERSION), "bdist_wheel", "py3"),
        "sdist": (build_sdist(directory, PROJECT, VERSION), "sdist", "source"),
        # filetype and pyversion as the devpi client (and setuptools) sent them.
        "egg": (build_egg(directory), "bdist_egg", "3.11"),
        "tar": (build_dumb_tar(directory), "bdist_dumb", "any"),
        "zip": (build_dumb_zip(directory), "bdist_dumb", "any"),
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


@pytest.fixture(scope="module")
def imported(
    legacy_export: LegacyExport, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The devpi export imported by `packyard import`, served."""
    target = tmp_path_factory.mktemp("imported") / "server"
    import_ok(target, legacy_export.directory, "--no-root-pypi")
    with serving(target) as server:
        yield server


def test_import_serves_every_file_on_the_simple_page_with_its_bytes(
    legacy_export: LegacyExport, imported: ServerProcess
) -> None:
    expected = {path.name: path.read_bytes() for path in legacy_export.dists.values()}
    with httpx.Client(base_url=imported.url, timeout=60) as client:
        page = client.get(f"/{INDEX}/+simple/{PROJECT}/", headers=SIMPLE_JSON)
        assert page.status_code == 200, page.text
        listed = {entry["filename"]: entry for entry in page.json()["files"]}
        assert set(listed) == set(expected)
        html = client.get(f"/{INDEX}/+simple/{PROJECT}/", headers=SIMPLE_HTML).text
        for name, data in expected.items():
            assert f">{name}</a>" in html, name
            sha = hashlib.sha256(data).hexdigest()
            assert listed[name]["hashes"] == {"sha256": sha}
            download = client.get(str(page.url.join(listed[name]["url"])))
            assert download.status_code == 200, name
            assert download.content == data, name
        # devpi's own view of the project lists them too, as release files of 1.0.
        links = served_links(client, INDEX, PROJECT)
        assert {path.rsplit("/", 1)[-1] for _, path, _, _ in links} == set(expected)


def test_export_writes_every_file_again_and_a_reimport_round_trips(
    legacy_export: LegacyExport, imported: ServerProcess, tmp_path: Path
) -> None:
    again = export_ok(imported.serverdir, tmp_path / "again")
    assert comparable(again) == comparable(read_dataindex(legacy_export.directory))
    assert file_contents(tmp_path / "again") == file_contents(legacy_export.directory)

    import_ok(tmp_path / "second", tmp_path / "again", "--no-root-pypi")
    third = export_ok(tmp_path / "second", tmp_path / "third")
    assert comparable(third) == comparable(again)
    assert file_contents(tmp_path / "third") == file_contents(legacy_export.directory)
    with httpx.Client(base_url=imported.url, timeout=60) as client:
        first_links = served_links(client, INDEX, PROJECT)
    with serving(tmp_path / "second") as server, httpx.Client(base_url=server.url) as client:
        assert served_links(client, INDEX, PROJECT) == first_links


def test_push_carries_the_imported_legacy_files_to_another_index(
    legacy_export: LegacyExport, devpi: Devpi, tmp_path: Path
) -> None:
    """devpi's staging workflow on a migrated server: `devpi push` copies every file of the
    release, eggs and bdist_dumb archives too (they are already on the server)."""
    import_ok(tmp_path / "server", legacy_export.directory, "--no-root-pypi")
    with serving(tmp_path / "server") as server:
        devpi.ok("use", f"{server.url}/{INDEX}")
        devpi.ok("login", "alice", "--password", "alicepw")
        devpi.ok("index", "-c", "prod", "bases=", "volatile=False")
        printed = devpi.ok("push", f"{PROJECT}=={VERSION}", "alice/prod")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            pushed = served_links(client, "alice/prod", PROJECT)
            names = {path.rsplit("/", 1)[-1] for _, path, _, _ in pushed}
            assert names == {path.name for path in legacy_export.dists.values()}, printed
            for name in names:
                assert "store_releasefile alice/prod/+f/" in printed and name in printed
            assert_links_download(client, pushed)


def test_new_uploads_of_eggs_and_bdist_dumb_stay_refused(
    devpi: Devpi, live_server: ServerProcess, tmp_path: Path
) -> None:
    """PEP 527 and PEP 715: PyPI takes no eggs or bdist_dumb archives, and packyard neither;
    the uploader is told why, and nothing is stored."""
    signed_up(devpi, live_server)
    dists = all_dists(tmp_path / "dists")
    printed = devpi.fails("upload", dists["egg"][0])
    assert "400 FAIL file_upload of legacy_kit-1.0-py3.11.egg" in printed
    assert "uploads of bdist_egg files are refused, as on PyPI" in printed, printed
    alice = basic_auth("alice", "alicepw") | {"Accept": "application/json"}
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        for kind in ("egg", "tar", "zip"):
            path, filetype, pyversion = dists[kind]
            fields = {"name": PROJECT, "version": VERSION, "filetype": filetype}
            fields["pyversion"] = pyversion
            answer = upload(client, f"/{INDEX}", path.name, path.read_bytes(), alice, fields)
            assert answer.status_code == 400, path.name
            assert answer.json()["message"] == (
                f"{path.name!r}: uploads of {filetype} files are refused, as on PyPI (PEP 527,"
                " PEP 715); upload a wheel (.whl) or an sdist (.tar.gz)"
            )
        assert client.get(f"/{INDEX}/{PROJECT}", headers=JSON).status_code == 404
    assert blob_files(live_server) == set(), "a refused upload left a blob behind"


@pytest.mark.parametrize(
    ("filename", "filetype", "pyversion"),
    [
        ("legacy_kit-1.0-py3.11.egg", "bdist_egg", "3.11"),
        ("foo-1.0-py2.7-linux-x86_64.egg", "bdist_egg", "2.7"),
        ("legacy-kit-1.0.linux-x86_64.tar.gz", "bdist_dumb", "any"),
        ("legacy-kit-1.0.win-amd64.zip", "bdist_dumb", "any"),
        ("foo-1.0.win32-py2.7.exe", "bdist_wininst", "2.7"),
    ],
)
def test_a_push_to_an_upload_url_names_legacy_files_as_devpi_does(
    filename: str, filetype: str, pyversion: str
) -> None:
    """The `filetype`/`pyversion` form fields devpi-common's get_pyversion_filetype gives."""
    dist = legacy_dist(filename, "foo", "1.0")
    assert upload_filetype(dist) == (filetype, pyversion)
    assert dist.identity != legacy_dist(f"x{filename}", "foo", "1.0").identity
    # An upload names the file's type in its form; eggs, .exe and .msi say it by name too.
    declared = filetype if filetype == "bdist_dumb" else ""
    with pytest.raises(InvalidInput, match=f"uploads of {filetype} files are refused"):
        refuse_legacy_upload(filename, declared)


# --- 8: a doc zip without a version -----------------------------------------------------------


@pytest.fixture
def devpi(request: pytest.FixtureRequest, tmp_path: Path) -> Devpi:
    return Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")


def versionless_doc_zip(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.doc.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("index.html", "<html><body>docs</body></html>\n")
    return path


def test_doc_zip_without_version_for_a_project_without_releases_gets_devpis_message(
    devpi: Devpi, live_server: ServerProcess, tmp_path: Path
) -> None:
    signed_up(devpi, live_server)
    docs = versionless_doc_zip(tmp_path / "docs", "foo")
    printed = devpi.fails("upload", docs)
    message = "doczip has no version and 'foo' has no releases to derive one from"
    assert f"400 FAIL doc_upload of foo.doc.zip to {live_server.url}/{INDEX}/" in printed
    assert message in printed, printed
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        # The form devpi sends, asking for JSON: the same words in devpi's envelope.
        alice = basic_auth("alice", "alicepw")
        form = {":action": "doc_upload", "name": "foo", "protocol_version": "1"}
        content = {"content": ("foo.doc.zip", docs.read_bytes(), "application/zip")}
        accept = {"Accept": "application/json"}
        answer = client.post(f"/{INDEX}/", data=form, files=content, headers=accept | alice)
        assert (answer.status_code, answer.json()["message"]) == (400, message)
        assert client.get(f"/{INDEX}/foo", headers=JSON).status_code == 404
    assert blob_files(live_server) == set(), "a refused doc zip left a blob behind"


# --- 9: /+status and `devpi --version` ---------------------------------------------------------


def test_status_names_the_devpi_server_protocol_level_and_devpi_version_prints_it(
    devpi: Devpi, live_server: ServerProcess
) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        status = client.get("/+status", headers=JSON)
    assert status.status_code == 200
    versioninfo = status.json()["result"]["versioninfo"]
    assert versioninfo == {"devpi-server": "6.20.3", "packyard": packyard_version()}

    devpi.ok("use", live_server.url)
    printed = devpi.ok("--version")
    assert f"current devpi server: {live_server.url}/" in printed
    server_lines = printed.split("current devpi server:", 1)[1].splitlines()[1:]
    assert [line.strip() for line in server_lines if line.strip()] == [
        "devpi-server 6.20.3",
        f"packyard {packyard_version()}",
    ]


def packyard_version() -> str:
    result = run_tool([BIN / "packyard", "--version"])
    assert_succeeded(result)
    return result.stdout.split()[-1]
