"""Export and import in devpi's dump format (devpi-protocol.md §13), end to end.

The real devpi export in /work/shared/fixtures imported into packyard; packyard → export →
import → export; packyard's export imported by the real `devpi-import` and served by the real
`devpi-server`; an import killed midway or fed a tampered file; and the import options.
Every server and every tool is a real process.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from argon2 import PasswordHasher

from tests.builders import build_sdist, build_wheel
from tests.conftest import BIN, JSON, ROOT_PASSWORD, ServerProcess, basic_auth, free_port
from tests.e2e_support import assert_succeeded, print_log_if_failed, run_tool, upload

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[2] / "shared" / "fixtures"
SAMPLE = FIXTURES / "devpi-export-sample"
SAMPLE_PASSWORDS = {"root": "rootpw", "alice": "alicepw", "bob": "bobpw"}
# What says which program wrote an export, not what the export holds.
WRITER_FIELDS = ("devpi_server", "pythonversion")
DEV, PROD = "alice/dev", "alice/prod"

# rel, URL path, sha256, URL path of the release file (toxresults only)
Link = tuple[str, str, str, str | None]


# --- processes ------------------------------------------------------------------------------


def packyard(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The `packyard` command, without PACKYARD_* settings from this machine's environment."""
    return subprocess.run(
        [str(BIN / "packyard"), *(str(arg) for arg in args)],
        env=packyard_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def packyard_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def import_ok(serverdir: Path, export: Path, *flags: str) -> str:
    result = packyard("import", "--serverdir", serverdir, *flags, export)
    assert_succeeded(result)
    return output(result)


def import_refused(serverdir: Path, export: Path, *flags: str) -> str:
    """An import that must fail with a message (not a traceback); the message."""
    result = packyard("import", "--serverdir", serverdir, *flags, export)
    text = output(result)
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    return text


def export_ok(serverdir: Path, export: Path) -> dict[str, Any]:
    assert_succeeded(packyard("export", "--serverdir", serverdir, export))
    return read_dataindex(export)


@contextmanager
def serving(serverdir: Path) -> Iterator[ServerProcess]:
    """`packyard serve` on `serverdir` (root password ROOT_PASSWORD if it initializes it)."""
    server = ServerProcess(serverdir, free_port(), serverdir.with_name(serverdir.name + ".log"))
    server.start()
    try:
        yield server
    except BaseException:
        print(f"--- server log ---\n{server.log()}")
        raise
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


def client_for(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60)


def login(client: httpx.Client, user: str, password: str) -> int:
    response = client.post("/+login", json={"user": user, "password": password}, headers=JSON)
    return response.status_code


# --- exports and what servers show ---------------------------------------------------------


def read_dataindex(export: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((export / "dataindex.json").read_text())
    return data


def comparable(dataindex: dict[str, Any]) -> dict[str, Any]:
    """The data of an export: writer fields aside, file lists in a stable order."""
    data = {k: v for k, v in dataindex.items() if k not in WRITER_FIELDS}
    data["indexes"] = {
        name: {**index, "files": sorted(index.get("files", []), key=lambda f: f["relpath"])}
        for name, index in data["indexes"].items()
    }
    return data


# The export's metadata, not its files: the audit trail grows with every import and change.
METADATA_FILES = ("dataindex.json", "packyard-audit.jsonl")


def file_contents(export: Path) -> dict[str, bytes]:
    """Every file of an export except its metadata, by relative path."""
    return {
        path.relative_to(export).as_posix(): path.read_bytes()
        for path in sorted(export.rglob("*"))
        if path.is_file() and path.name not in METADATA_FILES
    }


def hash_dir(sha256: str) -> str:
    return f"+f/{sha256[:3]}/{sha256[3:16]}"


def links_in_export(
    dataindex: dict[str, Any], index: str, project: str | None = None
) -> dict[Link, str]:
    """The links a server must show for `index` after importing it: link → relpath in the export.

    Release files and doc zips live in the hash directory of their own sha256; a toxresult in
    the one of its release file, which the export names in the toxresult's directory
    (`.../sha256=<hex>/...`) and in `for_entrypath`.
    """
    links = {}
    for entry in dataindex["indexes"][index]["files"]:
        if project is not None and entry["projectname"] != project:
            continue
        sha = entry["entrymapping"]["hashes"]["sha256"]
        relpath = entry["relpath"]
        name = relpath.rsplit("/", 1)[-1]
        release = None
        directory = sha
        if entry["type"] == "toxresult":
            directory = relpath.split("/")[-2].removeprefix("sha256=")
            release_name = entry["for_entrypath"].rsplit("/", 1)[-1]
            release = f"/{index}/{hash_dir(directory)}/{release_name}"
            assert entry["for_entrypath"] == release[1:]
        links[(entry["type"], f"/{index}/{hash_dir(directory)}/{name}", sha, release)] = relpath
    return links


def served_links(
    client: httpx.Client, index: str, project: str, ignore_bases: bool = False
) -> set[Link]:
    """Every link of every version on `GET /{index}/{project}` (JSON)."""
    query = "?ignore_bases" if ignore_bases else ""
    response = client.get(f"/{index}/{project}{query}", headers=JSON)
    assert response.status_code == 200, f"{index}/{project}: {response.text}"
    found = set()
    for version in response.json()["result"].values():
        for link in version["+links"]:
            release = urlsplit(link["for_href"]).path if "for_href" in link else None
            sha = link["hash_spec"].removeprefix("sha256=")
            found.add((link["rel"], urlsplit(link["href"]).path, sha, release))
    return found


def assert_links_download(client: httpx.Client, links: set[Link]) -> None:
    for _rel, path, sha, _release in links:
        response = client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        assert hashlib.sha256(response.content).hexdigest() == sha, path


def blob_files(serverdir: Path) -> list[Path]:
    """Stored blobs and leftover temp files: everything under blobs/."""
    return sorted(path for path in (serverdir / "blobs").rglob("*") if path.is_file())


# --- the real devpi export, imported ------------------------------------------------------


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The fixture export imported into a new server dir, served."""
    base = tmp_path_factory.mktemp("sample")
    shutil.copytree(SAMPLE, base / "export")
    import_ok(base / "server", base / "export")
    with serving(base / "server") as server:
        yield server


@pytest.fixture
def sample(sample_server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    yield sample_server
    print_log_if_failed(request, sample_server)


def test_the_fixture_is_where_the_tests_look() -> None:
    assert (SAMPLE / "dataindex.json").is_file(), f"{SAMPLE} is missing"


def test_sample_users_log_in_with_their_exported_passwords(sample: ServerProcess) -> None:
    exported = read_dataindex(SAMPLE)["users"]
    with client_for(sample.url) as client:
        for user, password in SAMPLE_PASSWORDS.items():
            assert login(client, user, password) == 200, user
            assert login(client, user, password + "-wrong") == 401, user
        # E-mail is shown to the user themself (and root) only.
        alice = basic_auth("alice", SAMPLE_PASSWORDS["alice"])
        shown = client.get("/alice", headers=JSON | alice).json()["result"]
        bob = client.get("/bob", headers=JSON)
    assert bob.status_code == 200
    for key in ("email", "title", "created", "modified"):
        assert shown[key] == exported["alice"][key], key


def test_sample_indexes_keep_their_exact_configs(sample: ServerProcess) -> None:
    exported = read_dataindex(SAMPLE)["indexes"]
    with client_for(sample.url) as client:
        for name, data in exported.items():
            response = client.get(f"/{name}", headers=JSON)
            assert response.status_code == 200, name
            shown = response.json()["result"]
            shown.pop("projects")
            # devpi's export has no acl_read: shown as what it means (everyone may read).
            assert shown == {"acl_read": [":ANONYMOUS:"], **data["indexconfig"]}, name


def test_sample_files_keep_their_urls_and_bytes(sample: ServerProcess) -> None:
    dataindex = read_dataindex(SAMPLE)
    with client_for(sample.url) as client:
        # alice/dev as a client sees it (its base is a mirror whose upstream is gone);
        # alice/prod without what it inherits from alice/dev.
        for index, ignore_bases in ((DEV, False), (PROD, True)):
            expected = links_in_export(dataindex, index)
            projects = dataindex["indexes"][index]["projects"]
            served = set().union(*(served_links(client, index, p, ignore_bases) for p in projects))
            assert served == set(expected), index
            assert len(served) == {DEV: 8, PROD: 5}[index]
            for link, relpath in expected.items():
                response = client.get(link[1])
                assert response.status_code == 200, link[1]
                assert response.content == (SAMPLE / relpath).read_bytes(), link[1]


def test_sample_toxresults_point_at_their_release_file(sample: ServerProcess) -> None:
    with client_for(sample.url) as client:
        links = served_links(client, DEV, "hello-packyard")
        wheels = {path for rel, path, _, _ in links if rel == "releasefile" and ".whl" in path}
        results = [(path, release) for rel, path, _, release in links if rel == "toxresult"]
        assert len(results) == 2
        for path, release in results:
            wheel = f"/{DEV}/+f/4d6/a33f692be0fd9/hello_packyard-0.2.0-py3-none-any.whl"
            assert release == wheel and wheel in wheels
            assert path.startswith(f"/{DEV}/+f/4d6/a33f692be0fd9/")
            report = client.get(path).json()
            assert report["installpkg"]["basename"] == "hello_packyard-0.2.0-py3-none-any.whl"


def test_sample_docs_are_served(sample: ServerProcess) -> None:
    with zipfile.ZipFile(SAMPLE / DEV / "hello-packyard-0.2.0.doc.zip") as archive:
        page = archive.read("index.html")
    with client_for(sample.url) as client:
        for index in (DEV, PROD):
            response = client.get(f"/{index}/hello-packyard/0.2.0/+doc/index.html")
            assert response.status_code == 200, index
            assert response.content == page
            assert response.headers["content-type"].startswith("text/html")


def test_sample_installs_with_pip_from_prod(sample: ServerProcess, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert_succeeded(run_tool([sys.executable, "-m", "venv", venv]))
    python = venv / "bin" / "python"
    index_url = f"{sample.url}/{PROD}/+simple/"
    install = [python, "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url]
    assert_succeeded(run_tool([*install, "hello-packyard==0.2.0"], timeout=240))
    check = run_tool([python, "-c", "import hello_packyard; print(hello_packyard.__version__)"])
    assert check.stdout.strip() == "0.2.0", check.stderr


def test_sample_exports_again_as_the_same_data(sample: ServerProcess, tmp_path: Path) -> None:
    """Exported while the server runs: the same users, configs, metadata, logs and bytes."""
    again = export_ok(sample.serverdir, tmp_path / "again")
    assert comparable(again) == comparable(read_dataindex(SAMPLE))
    assert file_contents(tmp_path / "again") == file_contents(SAMPLE)


# --- a state built on packyard ------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A packyard server dir filled through the API, its export, and the links it showed."""

    serverdir: Path
    export: Path
    links: dict[tuple[str, str], set[Link]]  # (index, project) → links, bases ignored


BUILT_PROJECTS = {DEV: ("dumpling",), PROD: ("dumpling", "packed-lunch")}
DOC_PAGE = b"<html><body><h1>dumpling docs</h1></body></html>"


def doc_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", DOC_PAGE)
    return buffer.getvalue()


def tox_report(wheel: Path) -> bytes:
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return json.dumps(
        {
            "reportversion": "1",
            "toxversion": "4.0",
            "platform": "linux",
            "host": "testhost",
            "installpkg": {"basename": wheel.name, "sha256": sha},
            "testenvs": {"py3": {"test": [{"command": ["pytest"], "retcode": "0"}]}},
        }
    ).encode()


def build_state(client: httpx.Client, dists: Path) -> None:
    """Users alice and bob; alice/dev and alice/prod (bases alice/dev); a mirror;
    wheels and an sdist, doc zips and a toxresult."""
    for user, body in (
        ("alice", {"password": "alicepw", "email": "alice@example.invalid", "title": "A"}),
        ("bob", {"password": "bobpw"}),
    ):
        response = client.put(f"/{user}", json=body, headers=JSON)
        assert response.status_code == 201, response.text
    alice = basic_auth("alice", "alicepw")
    for index, config, auth in (
        (DEV, {"bases": [], "volatile": True}, alice),
        (PROD, {"bases": [DEV], "volatile": False, "title": "Production"}, alice),
        (
            "root/upstream",
            {"type": "mirror", "mirror_url": "http://upstream.invalid/simple/", "title": "Gone"},
            basic_auth("root", ROOT_PASSWORD),
        ),
    ):
        response = client.put(f"/{index}", json=config, headers=JSON | auth)
        assert response.status_code == 200, response.text
    wheel = build_wheel(dists / "dev", "dumpling", "1.0")
    uploads = {
        DEV: [
            (wheel, "1.0"),
            (build_sdist(dists / "dev", "dumpling", "1.0"), "1.0"),
            (build_wheel(dists / "dev", "dumpling", "1.1"), "1.1"),
        ],
        PROD: [(wheel, "1.0"), (build_wheel(dists / "prod", "packed-lunch", "2.0"), "2.0")],
    }
    for index, files in uploads.items():
        for dist, version in files:
            name = "packed-lunch" if dist.name.startswith("packed") else "dumpling"
            fields = {"name": name, "version": version}
            response = upload(client, f"/{index}", dist.name, dist.read_bytes(), alice, fields)
            assert response.status_code == 200, response.text
        form = {":action": "doc_upload", "name": "dumpling", "version": "1.0"}
        content = {"content": ("dumpling-1.0.doc.zip", doc_zip(), "application/zip")}
        response = client.post(f"/{index}/", data=form, files=content, headers=alice)
        assert response.status_code == 200, response.text
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    response = client.post(
        f"/{DEV}/{hash_dir(sha)}/{wheel.name}", content=tox_report(wheel), headers=JSON | alice
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("built")
    with serving(base / "server") as server, client_for(server.url) as client:
        build_state(client, base / "dists")
        links = {
            (index, project): served_links(client, index, project, ignore_bases=True)
            for index, projects in BUILT_PROJECTS.items()
            for project in projects
        }
        export_ok(server.serverdir, base / "export")  # while it runs
    return Built(base / "server", base / "export", links)


def test_built_export_holds_everything(built: Built) -> None:
    kinds = [
        entry["type"]
        for index in read_dataindex(built.export)["indexes"].values()
        for entry in index.get("files", [])
    ]
    assert sorted(kinds) == sorted(["releasefile"] * 5 + ["doczip"] * 2 + ["toxresult"])
    assert sum(len(links) for links in built.links.values()) == len(kinds)
    assert len(file_contents(built.export)) == len(kinds)


def test_export_import_export_holds_the_same_data(built: Built, tmp_path: Path) -> None:
    import_ok(tmp_path / "server", built.export, "--no-root-pypi")  # the source had none
    again = export_ok(tmp_path / "server", tmp_path / "again")
    assert comparable(again) == comparable(read_dataindex(built.export))
    assert file_contents(tmp_path / "again") == file_contents(built.export)
    with serving(tmp_path / "server") as server, client_for(server.url) as client:
        for (index, project), links in built.links.items():
            assert served_links(client, index, project, ignore_bases=True) == links
        assert login(client, "alice", "alicepw") == 200
        assert login(client, "bob", "bobpw") == 200
        docs = client.get(f"/{PROD}/dumpling/1.0/+doc/index.html")
        assert docs.content == DOC_PAGE


# --- packyard's export into the real devpi-server -----------------------------------------


@pytest.fixture(scope="session")
def devpi_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """devpi-server 6 in a venv of its own, installed once per session (through the
    machine's pip configuration, unlike the client tools aimed at packyard)."""
    venv = tmp_path_factory.mktemp("devpi") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "devpi-server<7"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


@contextmanager
def devpi_serving(venv: Path, serverdir: Path) -> Iterator[str]:
    secret = serverdir.with_name("devpi.secret")
    assert_succeeded(run_tool([venv / "bin" / "devpi-gen-secret", "--secretfile", secret]))
    port = free_port()
    log = serverdir.with_name("devpi.log")
    command = [
        *(str(venv / "bin" / "devpi-server"), "--serverdir", str(serverdir)),
        *("--host", "127.0.0.1", "--port", str(port), "--secretfile", str(secret)),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"devpi-server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"devpi-server not up:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/+api", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    except BaseException:
        print(f"--- devpi-server log ---\n{log.read_text(errors='replace')}")
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_devpi_import_serves_the_packyard_export_alike(
    built: Built, devpi_venv: Path, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    shutil.copytree(built.export, export)  # devpi-import only reads it; a copy to be sure
    serverdir = tmp_path / "devpi-server"
    command = [devpi_venv / "bin" / "devpi-import", "--serverdir", serverdir, "--no-root-pypi"]
    imported = run_tool([*command, export], timeout=180)
    assert_succeeded(imported)
    with devpi_serving(devpi_venv, serverdir) as url, client_for(url) as client:
        for (index, project), links in built.links.items():
            assert served_links(client, index, project, ignore_bases=True) == links
            assert_links_download(client, links)
        assert login(client, "alice", "alicepw") == 200
        assert login(client, "alice", "bobpw") == 401
        assert login(client, "bob", "bobpw") == 200
        for index in (DEV, PROD):
            config = client.get(f"/{index}", headers=JSON).json()["result"]
            exported = read_dataindex(built.export)["indexes"][index]["indexconfig"]
            assert {k: config[k] for k in ("bases", "volatile", "type")} == {
                k: exported[k] for k in ("bases", "volatile", "type")
            }


# --- interrupted and damaged imports --------------------------------------------------------


def bulk_export(directory: Path, count: int, payload_bytes: int) -> Path:
    """An export of `count` wheels with incompressible payloads, for user carol on carol/bulk."""
    export = directory / "export"
    files, projects = [], {}
    for number in range(count):
        project, version = f"bulk-{number % 20:02d}", f"1.{number // 20}"
        target = export / "carol" / "bulk" / project / version
        payload = f"DATA = {base64.b64encode(os.urandom(payload_bytes)).decode()!r}\n"
        wheel = build_wheel(target, project, version, payload=payload)
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        projects.setdefault(project, {})[version] = {"name": project, "version": version}
        files.append(
            {
                "type": "releasefile",
                "projectname": project,
                "version": version,
                "relpath": wheel.relative_to(export).as_posix(),
                "entrymapping": {
                    "last_modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                    "hash_spec": f"sha256={sha}",
                    "hashes": {"sha256": sha},
                    "project": project,
                    "version": version,
                },
                "log": [],
            }
        )
    dataindex = {
        "dumpversion": "2",
        "users": {"carol": {"username": "carol", "pwhash": PasswordHasher().hash("carolpw")}},
        "indexes": {
            "carol/bulk": {
                "indexconfig": {"type": "stage", "bases": [], "volatile": True},
                "projects": projects,
                "files": files,
            }
        },
    }
    (export / "dataindex.json").write_text(json.dumps(dataindex))
    return export


def test_import_killed_midway_leaves_the_target_usable_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    count = 200
    export = bulk_export(tmp_path, count, payload_bytes=40_000)
    target = tmp_path / "server"
    log = tmp_path / "import.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "packyard"), "import", "--serverdir", str(target), str(export)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=packyard_env(),
        )
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if (target / "blobs").is_dir() and len(blob_files(target)) >= count // 10:
            break
        time.sleep(0.01)
    assert process.poll() is None, f"the import ended before the kill:\n{log.read_text()}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    copied = len(blob_files(target))
    assert copied < 2 * count, "everything was copied before the kill; nothing tested"

    with serving(target) as server, client_for(server.url) as client:
        users = set(client.get("/", headers=JSON).json()["result"])
        assert users == {"root"}, "a killed import left part of its data behind"
        assert client.get("/carol/bulk", headers=JSON).status_code == 404
        assert login(client, "root", ROOT_PASSWORD) == 200

    rerun = import_ok(target, export)
    assert f"{count} files" in rerun
    with serving(target) as server, client_for(server.url) as client:
        assert login(client, "carol", "carolpw") == 200
        page = client.get("/carol/bulk/+simple/bulk-07/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.text.count("<a ") == count // 20
        projects = [f"bulk-{n:02d}" for n in range(20)]
        links = set().union(*(served_links(client, "carol/bulk", p) for p in projects))
        assert len(links) == count
        assert_links_download(client, links)
    # Each wheel once, and its core metadata once: nothing left over from the killed run.
    assert len(blob_files(target)) == 2 * count


def test_tampered_file_is_refused_by_name_and_nothing_is_imported(tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(SAMPLE, export)
    # The last file of the last index: every other file is copied in before it is checked.
    victim = export / PROD / "hello-packyard-0.2.0.doc.zip"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    target = tmp_path / "server"

    message = import_refused(target, export)

    assert "hello-packyard-0.2.0.doc.zip" in message
    assert blob_files(target) == [], "a refused import left blobs behind"
    left = export_ok(target, tmp_path / "left")
    assert left["users"] == {} and left["indexes"] == {}


# --- options --------------------------------------------------------------------------------


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    export = tmp_path / "export"
    shutil.copytree(SAMPLE, export)
    return export


def test_import_refuses_a_target_with_data_unless_forced(sample_copy: Path, tmp_path: Path) -> None:
    target = tmp_path / "server"
    with serving(target) as server, client_for(server.url) as client:
        response = client.put("/dave", json={"password": "davepw"}, headers=JSON)
        assert response.status_code == 201

    message = import_refused(target, sample_copy)
    assert "already" in message and "--force" in message

    import_ok(target, sample_copy, "--force")
    with serving(target) as server, client_for(server.url) as client:
        assert login(client, "dave", "davepw") == 200
        assert login(client, "alice", "alicepw") == 200
        assert served_links(client, PROD, "hello-packyard", ignore_bases=True)

    # Forced again: the export's users are there already; refused, naming one of them.
    before = export_ok(target, tmp_path / "before")
    message = import_refused(target, sample_copy, "--force")
    assert any(f"user {user} already exists" in message for user in ("alice", "bob"))
    assert comparable(export_ok(target, tmp_path / "after")) == comparable(before)


def test_import_into_a_freshly_initialized_target_needs_no_force(
    sample_copy: Path, tmp_path: Path
) -> None:
    """devpi's rule: the default root user with at most root/pypi is an empty server."""
    target = tmp_path / "server"
    assert_succeeded(packyard("init", "--serverdir", target, "--root-passwd", "initpw"))
    import_ok(target, sample_copy)
    exported = read_dataindex(sample_copy)
    with serving(target) as server, client_for(server.url) as client:
        assert login(client, "root", "rootpw") == 200, "the export's root replaces the default"
        assert login(client, "root", "initpw") == 401
        shown = client.get("/root/pypi", headers=JSON).json()["result"]
        shown.pop("projects")
        expected = exported["indexes"]["root/pypi"]["indexconfig"]
        assert shown == {"acl_read": [":ANONYMOUS:"], **expected}  # devpi's has no acl_read


def test_root_passwd_overrides_the_exported_root_password(
    sample_copy: Path, tmp_path: Path
) -> None:
    target = tmp_path / "server"
    import_ok(target, sample_copy, "--root-passwd", "n3w-root")
    with serving(target) as server, client_for(server.url) as client:
        assert login(client, "root", "n3w-root") == 200
        assert login(client, "root", "rootpw") == 401
        assert login(client, "alice", "alicepw") == 200


def test_skip_import_type_mirror_leaves_mirrors_out(sample_copy: Path, tmp_path: Path) -> None:
    target = tmp_path / "server"
    import_ok(target, sample_copy, "--skip-import-type", "mirror")
    exported = read_dataindex(sample_copy)["indexes"]["root/pypi"]["indexconfig"]
    with serving(target) as server, client_for(server.url) as client:
        # The default root/pypi the import creates, not the export's mirror.
        shown = client.get("/root/pypi", headers=JSON).json()["result"]
        assert shown["type"] == "mirror"
        assert shown["mirror_url"] != exported["mirror_url"]
        assert shown.get("title") != exported["title"]
        links = served_links(client, DEV, "hello-packyard")
        assert links == set(links_in_export(read_dataindex(sample_copy), DEV, "hello-packyard"))


def test_no_root_pypi_skips_the_exported_root_pypi(sample_copy: Path, tmp_path: Path) -> None:
    """As devpi-import's --no-root-pypi: the export's root/pypi is left out; the bases that
    name it are kept as written."""
    target = tmp_path / "server"
    import_ok(target, sample_copy, "--no-root-pypi")
    with serving(target) as server, client_for(server.url) as client:
        assert client.get("/root/pypi", headers=JSON).status_code == 404
        config = client.get(f"/{DEV}", headers=JSON).json()["result"]
        assert config["bases"] == ["root/pypi"]
        links = served_links(client, DEV, "hello-packyard")
        assert links == set(links_in_export(read_dataindex(sample_copy), DEV, "hello-packyard"))


def test_toxresults_as_older_devpi_versions_exported_them(
    sample_copy: Path, tmp_path: Path
) -> None:
    """devpi-import finds a toxresult's release file by basename (older exports name other
    hash directories), and ignores a toxresult's hashes when they are its release file's
    (devpi 6.5 to 6.8 exported those)."""
    dataindex = read_dataindex(sample_copy)
    results = [f for f in dataindex["indexes"][DEV]["files"] if f["type"] == "toxresult"]
    wheel = results[0]["for_entrypath"].rsplit("/", 1)[-1]
    results[0]["for_entrypath"] = f"{DEV}/+f/0cc/175b9c0f1b6a8/{wheel}"
    release_sha = results[1]["relpath"].split("/")[-2].removeprefix("sha256=")
    results[1]["entrymapping"]["hashes"] = {"sha256": release_sha}
    results[1]["entrymapping"]["hash_spec"] = f"sha256={release_sha}"
    (sample_copy / "dataindex.json").write_text(json.dumps(dataindex))
    target = tmp_path / "server"
    import_ok(target, sample_copy)
    with serving(target) as server, client_for(server.url) as client:
        links = served_links(client, DEV, "hello-packyard")
        assert links == set(links_in_export(read_dataindex(SAMPLE), DEV, "hello-packyard"))
        assert_links_download(client, links)


def test_index_configs_of_old_devpi_versions_are_migrated(
    sample_copy: Path, tmp_path: Path
) -> None:
    """As devpi-import: `pypi_whitelist` (before devpi 3.0) becomes `mirror_whitelist`, and an
    empty `uploadtrigger_jenkins` goes."""
    dataindex = read_dataindex(sample_copy)
    config = dataindex["indexes"][DEV]["indexconfig"]
    del config["mirror_whitelist"]
    config["pypi_whitelist"] = ["hello-packyard"]
    config["uploadtrigger_jenkins"] = None
    (sample_copy / "dataindex.json").write_text(json.dumps(dataindex))
    import_ok(tmp_path / "server", sample_copy)
    with serving(tmp_path / "server") as server, client_for(server.url) as client:
        shown = client.get(f"/{DEV}", headers=JSON).json()["result"]
    assert shown["mirror_whitelist"] == ["hello-packyard"]
    assert "pypi_whitelist" not in shown and "uploadtrigger_jenkins" not in shown


def test_no_events_is_accepted_with_a_note(sample_copy: Path, tmp_path: Path) -> None:
    text = import_ok(tmp_path / "server", sample_copy, "--no-events")
    assert "--no-events" in text
    again = export_ok(tmp_path / "server", tmp_path / "again")
    assert comparable(again) == comparable(read_dataindex(sample_copy))


def hand_made_export(directory: Path, user: dict[str, Any], with_file: bool) -> Path:
    """An export written by hand: user carol, index carol/main, maybe one wheel whose
    entrymapping has only `last_modified` (devpi-protocol.md §13.4's minimal export)."""
    export = directory / "export"
    export.mkdir()
    index: dict[str, Any] = {
        "indexconfig": {"type": "stage", "bases": [], "volatile": False},
        "projects": {},
        "files": [],
    }
    if with_file:
        wheel = build_wheel(export / "carol" / "main" / "plain" / "1.0", "plain", "1.0")
        index["projects"] = {"plain": {"1.0": {"name": "plain", "version": "1.0"}}}
        index["files"] = [
            {
                "type": "releasefile",
                "projectname": "plain",
                "version": "1.0",
                "relpath": wheel.relative_to(export).as_posix(),
                "entrymapping": {"last_modified": "Mon, 01 Jan 2024 00:00:00 GMT"},
            }
        ]
    dataindex = {"dumpversion": "2", "users": {"carol": user}, "indexes": {"carol/main": index}}
    (export / "dataindex.json").write_text(json.dumps(dataindex))
    return export


def test_minimal_export_without_root_or_hashes_imports(tmp_path: Path) -> None:
    user = {"pwhash": PasswordHasher().hash("carolpw")}
    export = hand_made_export(tmp_path, user, with_file=True)
    target = tmp_path / "server"
    import_ok(target, export, "--root-passwd", "n3w-root")
    wheel = next(export.rglob("*.whl"))
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with serving(target) as server, client_for(server.url) as client:
        assert login(client, "carol", "carolpw") == 200
        assert login(client, "root", "n3w-root") == 200, "root was not created by the import"
        assert client.get("/root/pypi", headers=JSON).status_code == 200
        links = served_links(client, "carol/main", "plain")
        assert links == {("releasefile", f"/carol/main/{hash_dir(sha)}/{wheel.name}", sha, None)}
        assert_links_download(client, links)


def test_legacy_salted_sha256_user_logs_in_and_is_upgraded(tmp_path: Path) -> None:
    """devpi before 4.2 stored hex sha256(salt + password) with the salt in `pwsalt`."""
    salt = "Qm9sZFNhbHQ0Mg=="
    pwhash = hashlib.sha256((salt + "carolpw").encode()).hexdigest()
    user = {"username": "carol", "pwsalt": salt, "pwhash": pwhash, "email": "c@example.invalid"}
    export = hand_made_export(tmp_path, user, with_file=False)
    target = tmp_path / "server"
    import_ok(target, export, "--no-root-pypi")
    with serving(target) as server, client_for(server.url) as client:
        assert login(client, "carol", "wrong") == 401
        assert login(client, "carol", "carolpw") == 200
        upgraded = export_ok(target, tmp_path / "after")["users"]["carol"]
        assert login(client, "carol", "carolpw") == 200
    assert upgraded["pwhash"].startswith("$argon2")
    assert "pwsalt" not in upgraded
    assert upgraded["email"] == "c@example.invalid"


# --- state users set survives a round trip ----------------------------------------------------


def test_yanks_survive_export_import_byte_for_byte_and_pip_skips_the_yanked_release(
    tmp_path: Path,
) -> None:
    """Yank with a reason -> export -> import -> export: the same bytes; pip on the restored
    server installs the newest release that is not yanked."""
    alice = basic_auth("alice", "alicepw")
    with serving(tmp_path / "server") as server, client_for(server.url) as client:
        response = client.put("/alice", json={"password": "alicepw"}, headers=JSON)
        assert response.status_code == 201, response.text
        response = client.put(f"/{DEV}", json={"volatile": True}, headers=JSON | alice)
        assert response.status_code == 200, response.text
        for version in ("1.0", "2.0"):
            wheel = build_wheel(tmp_path / "dists", "yankee", version, requires_python=">=3.8")
            fields = {"name": "yankee", "version": version, "requires_python": ">=3.8"}
            response = upload(client, f"/{DEV}", wheel.name, wheel.read_bytes(), alice, fields)
            assert response.status_code == 200, response.text
        response = client.patch(
            f"/{DEV}/yankee/2.0", json={"yanked": "broken build"}, headers=JSON | alice
        )
        assert response.status_code == 200, response.text
        first = export_ok(server.serverdir, tmp_path / "first")
    [yanked] = [e for e in first["indexes"][DEV]["files"] if e["version"] == "2.0"]
    assert yanked["yanked"] == "broken build"

    import_ok(tmp_path / "restored", tmp_path / "first", "--no-root-pypi")
    export_ok(tmp_path / "restored", tmp_path / "second")

    dataindex = "dataindex.json"
    assert (tmp_path / "second" / dataindex).read_bytes() == (
        tmp_path / "first" / dataindex
    ).read_bytes()
    assert file_contents(tmp_path / "second") == file_contents(tmp_path / "first")

    with serving(tmp_path / "restored") as server, client_for(server.url) as client:
        page = client.get(f"/{DEV}/+simple/yankee/", headers={"Accept": SIMPLE_JSON_TYPE})
        files = {entry["filename"]: entry for entry in page.json()["files"]}
        assert files["yankee-2.0-py3-none-any.whl"]["yanked"] == "broken build"
        assert files["yankee-1.0-py3-none-any.whl"].get("yanked", False) is False
        assert {entry["requires-python"] for entry in files.values()} == {">=3.8"}
        download = run_tool(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
             "--index-url", f"{server.url}/{DEV}/+simple/", "-d", tmp_path / "got", "yankee"],
            timeout=240,
        )  # fmt: skip
        assert_succeeded(download)
    assert [path.name for path in (tmp_path / "got").iterdir()] == ["yankee-1.0-py3-none-any.whl"]


SIMPLE_JSON_TYPE = "application/vnd.pypi.simple.v1+json"
