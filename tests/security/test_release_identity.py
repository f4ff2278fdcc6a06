"""Release immutability by identity, look-alike project names, forced deletion, tox results
and the volatile replacement message, tried against a real `packyard serve` on loopback.

The module's server runs with `release_window = 0`: a released version is closed from its
first file on, so every way of slipping a file into it is refused at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.core.dists import parse_dist_filename
from packyard.core.models import FileRecord
from packyard.core.releases import Admission, Upload, admit
from packyard.errors import Conflict
from tests import inprocess
from tests.builders import build_sdist, build_wheel, core_metadata
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess, basic_auth, free_port
from tests.e2e_support import (
    PASSWORD,
    SIMPLE_JSON,
    assert_succeeded,
    blob_files,
    create_index,
    create_user,
    print_log_if_failed,
    run_tool,
    upload,
)
from tests.packyard_cli import Packyard

pytestmark = pytest.mark.e2e

PROD = "/alice/prod"
ALICE = basic_auth("alice", PASSWORD)
BOB = basic_auth("bob", PASSWORD)  # may upload to alice/prod, does not own it
CAROL = basic_auth("carol", PASSWORD)  # a user with no rights on alice/prod
ROOT = basic_auth("root", ROOT_PASSWORD)
EVIL = "EVIL = True\n"


@dataclasses.dataclass(frozen=True)
class Released:
    """foo 1.0 released on alice/prod: its sdist and wheel, as uploaded."""

    sdist: Path
    wheel: Path
    workdir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("identity")
    started = ServerProcess(directory / "server", free_port(), directory / "server.log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PACKYARD_RELEASE_WINDOW", "0")  # read by the child at start only
        started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield
    print_log_if_failed(request, server)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def released(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Released:
    """alice/prod (non-volatile, bob may upload) holds foo 1.0 (sdist and wheel); alice/dev is
    volatile. The release is uploaded while prod is volatile, then prod is made non-volatile."""
    workdir = tmp_path_factory.mktemp("dists")
    for user in ("alice", "bob", "carol"):
        create_user(client, user)
    create_index(client, "alice", "prod", volatile=True, acl_upload=["alice", "bob"])
    create_index(client, "alice", "dev", volatile=True, acl_upload=["alice", "bob"])
    sdist = build_sdist(workdir / "orig", "foo", "1.0", requires=["bar>=1"])
    wheel = build_wheel(workdir / "orig", "foo", "1.0", requires=["bar>=1"])
    for path in (sdist, wheel):
        ok(upload(client, PROD, path.name, path.read_bytes(), ALICE, {}))
    patched = client.patch(PROD, json=["volatile=False"], headers=JSON | ALICE)
    assert patched.status_code == 200 and patched.json()["result"]["volatile"] is False
    return Released(sdist, wheel, workdir)


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, (response.status_code, response.text)
    return response


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def simple_files(client: httpx.Client, index: str, project: str) -> dict[str, str]:
    """filename -> sha256 on the index's simple page."""
    response = ok(client.get(f"{index}/+simple/{project}/", headers=SIMPLE_JSON))
    return {entry["filename"]: entry["hashes"]["sha256"] for entry in response.json()["files"]}


def version_data(client: httpx.Client, index: str, project: str, version: str) -> Any:
    return ok(client.get(f"{index}/{project}/{version}", headers=JSON)).json()["result"]


def submit(client: httpx.Client, index: str, who: dict[str, str], **fields: str) -> httpx.Response:
    """`:action=submit` (register metadata) as a multipart form, as distutils sent it."""
    parts = {":action": (None, "submit")}  # no file name: a plain field, sent as multipart
    return client.post(f"{index}/", data=fields, files=parts, headers=who)


def zip_sdist(name: str, version: str, payload: str) -> bytes:
    """An sdist in .zip form (PEP 625 allows only .tar.gz now, but uploads still take .zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        top = f"{name}-{version}"
        archive.writestr(f"{top}/PKG-INFO", core_metadata(name, version, ["bar>=1"]))
        archive.writestr(f"{top}/{name}/__init__.py", payload)
    return buffer.getvalue()


# --- release files: identity, not filename ---------------------------------------------------


def evil_sdist(workdir: Path) -> bytes:
    return build_sdist(workdir / "evil-sdist", "foo", "1.0", requires=["evil"]).read_bytes()


def evil_wheel(workdir: Path) -> bytes:
    return build_wheel(workdir / "evil-wheel", "foo", "1.0", payload=EVIL).read_bytes()


def local_wheel(workdir: Path) -> bytes:
    return build_wheel(workdir / "local", "foo", "1.0+evil", payload=EVIL).read_bytes()


# filename -> (how to make its content, why it is the same release)
LOOK_ALIKES = {
    "Foo-1.0.tar.gz": (evil_sdist, "the same release file as foo-1.0.tar.gz"),
    "FOO-1.0.tar.gz": (evil_sdist, "the same release file as foo-1.0.tar.gz"),
    "foo-1.0.0.tar.gz": (evil_sdist, "the same release file as foo-1.0.tar.gz"),
    "foo-1.0.zip": (
        lambda _workdir: zip_sdist("foo", "1.0", EVIL),
        "the same release file as foo-1.0.tar.gz",
    ),
    "Foo-1.0-py3-none-any.whl": (evil_wheel, "the same release file as foo-1.0-py3-none-any"),
    # New wheels: pip would prefer the build-tagged one, and a wider tag set is a new file.
    "foo-1.0-1-py3-none-any.whl": (evil_wheel, "is released on this non-volatile index"),
    "foo-1.0-py2.py3-none-any.whl": (evil_wheel, "is released on this non-volatile index"),
    "foo-1.0.0-py3-none-any.whl": (evil_wheel, "the same release file as foo-1.0-py3-none-any"),
    # A local version: pip's ==1.0 takes it, and prefers it to 1.0.
    "foo-1.0+evil-py3-none-any.whl": (local_wheel, "is released on this non-volatile index"),
}


@pytest.mark.parametrize("filename", LOOK_ALIKES)
def test_a_look_alike_or_new_file_for_a_released_version_is_409(
    server: ServerProcess, client: httpx.Client, released: Released, filename: str
) -> None:
    make, why = LOOK_ALIKES[filename]
    before = (simple_files(client, PROD, "foo"), blob_files(server))
    for who in (ALICE, BOB):  # neither the owner nor another uploader may add it
        started = time.monotonic()
        response = upload(client, PROD, filename, make(released.workdir), who, {})
        assert response.status_code == 409, (response.status_code, response.text)
        assert why in response.text and why in response.reason_phrase
        assert time.monotonic() - started < 5
    assert (simple_files(client, PROD, "foo"), blob_files(server)) == before


def test_pip_still_installs_the_original_release(
    client: httpx.Client, released: Released, server: ServerProcess, tmp_path: Path
) -> None:
    for filename, (make, _why) in LOOK_ALIKES.items():
        assert upload(client, PROD, filename, make(released.workdir), BOB, {}).status_code == 409
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps",
        "--index-url", f"{server.url}{PROD}/+simple/", "--target", tmp_path / "target",
        "--report", report, "foo==1.0",
    ]  # fmt: skip
    assert_succeeded(run_tool(command))
    [installed] = json.loads(report.read_text())["install"]
    assert installed["download_info"]["url"].endswith("/foo-1.0-py3-none-any.whl")
    hashes = installed["download_info"]["archive_info"]["hashes"]
    assert hashes["sha256"] == sha256_of(released.wheel.read_bytes())
    assert "EVIL" not in (tmp_path / "target" / "foo" / "__init__.py").read_text()


def test_push_cannot_add_files_to_a_released_version(
    client: httpx.Client, released: Released
) -> None:
    wheel = build_wheel(
        released.workdir / "push", "foo", "1.0", requires=["bar>=1"], tag="py2.py3-none-any"
    )
    ok(upload(client, "/alice/dev", wheel.name, wheel.read_bytes(), ALICE, {}))
    before = simple_files(client, PROD, "foo")
    body = {"name": "foo", "version": "1.0", "targetindex": "alice/prod"}
    pushed = client.post("/alice/dev", json=body, headers=JSON | ALICE)
    assert pushed.status_code == 409, pushed.text
    assert "is released on this non-volatile index" in pushed.json()["message"]
    assert simple_files(client, PROD, "foo") == before


def test_registering_other_metadata_for_a_released_version_is_409(
    client: httpx.Client, released: Released
) -> None:
    before = version_data(client, PROD, "foo", "1.0")
    assert before["requires_dist"] == ["bar>=1"]
    for who in (ALICE, BOB):
        response = submit(client, PROD, who, name="foo", version="1.0", requires_dist="evil")
        assert response.status_code == 409, response.text
        assert "metadata of foo 1.0 cannot change" in response.reason_phrase
    after = version_data(client, PROD, "foo", "1.0")
    assert after == before
    # A version nobody released yet may still be registered (and registered again).
    for requires in ("bar", "baz"):
        ok(submit(client, PROD, ALICE, name="foo", version="7.0", requires_dist=requires))
    assert version_data(client, PROD, "foo", "7.0")["requires_dist"] == ["baz"]


def test_the_release_window_lets_the_first_uploader_finish_the_release(tmp_path: Path) -> None:
    """Default settings (in-process): within `release_window` of the first file, its uploader
    may add the release's other files (`twine upload dist/*` sends them one at a time);
    nobody else may, and a look-alike never."""
    with inprocess.running_client(tmp_path / "server", "") as http:
        alice = inprocess.create_user(http, "alice")
        bob = inprocess.create_user(http, "bob")
        config = {"volatile": False, "acl_upload": ["alice", "bob"]}
        inprocess.create_index(http, "alice", "prod", alice, **config)
        sdist = build_sdist(tmp_path, "foo", "1.0")
        wheel = build_wheel(tmp_path, "foo", "1.0")
        inprocess.upload_ok(http, "alice/prod", sdist, alice)
        assert inprocess.upload(http, "alice/prod", wheel, bob).status_code == 409
        inprocess.upload_ok(http, "alice/prod", wheel, alice)
        twin = tmp_path / "twin" / "FOO-1.0.tar.gz"
        twin.parent.mkdir()
        twin.write_bytes(evil_sdist(tmp_path))
        assert inprocess.upload(http, "alice/prod", twin, alice).status_code == 409
        files = inprocess.simple_json(http, "alice/prod", "foo")["files"]
        assert sorted(entry["filename"] for entry in files) == sorted([sdist.name, wheel.name])


def stored(filename: str, uploaded_at: float, who: str) -> FileRecord:
    return FileRecord(
        id=1, index_id=1, project="foo", version="1.0", filename=filename, kind="releasefile",
        sha256="a" * 64, size=1, uploaded_at=uploaded_at, yanked=None, metadata_sha256=None,
        requires_python=None, for_file=None, log=[{"what": "upload", "who": who}],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("actor", "seconds_later", "admitted"),
    [("alice", 599, True), ("alice", 601, False), ("bob", 1, False), (None, 1, False)],
)
def test_a_release_closes_when_its_window_ends(
    actor: str | None, seconds_later: float, admitted: bool
) -> None:
    released = [stored("foo-1.0.tar.gz", 1000.0, "alice")]
    dist = parse_dist_filename("foo-1.0-py3-none-any.whl")
    new = Upload(dist, "b" * 64, actor, 1000.0 + seconds_later)
    if admitted:
        assert admit(new, released, volatile=False, window=600) == Admission()
    else:
        with pytest.raises(Conflict, match="is released on this non-volatile index"):
            admit(new, released, volatile=False, window=600)


# --- project names ---------------------------------------------------------------------------

LOOK_ALIKE_NAMES = {
    "greek omicrons": "f\u03bf\u03bf",
    "kelvin sign": "\u212aoo",  # lowercases to ASCII 'k'
    "dotless i": "f\u0131o",
    "cyrillic a": "b\u0430r",
}


@pytest.mark.parametrize("name", LOOK_ALIKE_NAMES.values(), ids=LOOK_ALIKE_NAMES.keys())
def test_a_non_ascii_project_name_is_400(
    server: ServerProcess, client: httpx.Client, released: Released, tmp_path: Path, name: str
) -> None:
    before = (ok(client.get(PROD, headers=JSON)).json()["result"]["projects"], blob_files(server))
    sdist = build_sdist(tmp_path, name, "1.0")
    wheel = build_wheel(tmp_path, name, "1.0")
    for path in (sdist, wheel):
        response = upload(client, PROD, path.name, path.read_bytes(), ALICE, {})
        assert response.status_code == 400, response.text
        assert "invalid project name" in response.text
        assert "is not ASCII" in response.text
    # The metadata's name counts too, even under an ASCII file name.
    fake = build_wheel(tmp_path / "fake", name, "2.0").read_bytes()
    response = upload(client, PROD, "foo-2.0-py3-none-any.whl", fake, ALICE, {})
    assert response.status_code == 400, response.text
    registered = submit(client, PROD, ALICE, name=name, version="1.0")
    assert registered.status_code == 400 and "invalid project name" in registered.text
    after = (ok(client.get(PROD, headers=JSON)).json()["result"]["projects"], blob_files(server))
    assert after == before


# --- forced deletion -------------------------------------------------------------------------


def test_only_the_owner_or_root_may_force_a_deletion(
    client: httpx.Client, released: Released, tmp_path: Path
) -> None:
    for version in ("1.0", "2.0"):
        wheel = build_wheel(tmp_path, "gone", version)
        ok(upload(client, PROD, wheel.name, wheel.read_bytes(), ALICE, {}))
    files = simple_files(client, PROD, "gone")
    [file_url] = [
        entry["url"]
        for entry in ok(client.get(f"{PROD}/+simple/gone/", headers=SIMPLE_JSON)).json()["files"]
        if entry["filename"].startswith("gone-1.0")
    ]
    file_path = str(httpx.URL(f"{client.base_url}{PROD}/+simple/gone/").join(file_url).path)
    for path in (file_path, f"{PROD}/gone/1.0", f"{PROD}/gone"):
        refused = client.delete(f"{path}?force=", headers=JSON | BOB)
        assert refused.status_code == 403, refused.text
        assert "or root may force a deletion" in refused.json()["message"]
        unforced = client.delete(path, headers=JSON | ALICE)
        assert unforced.status_code == 403, "without ?force even the owner may not"
    assert simple_files(client, PROD, "gone") == files
    assert ok(client.get(file_path)).content
    ok(client.delete(f"{PROD}/gone/1.0?force=", headers=JSON | ALICE))
    assert sorted(simple_files(client, PROD, "gone")) == ["gone-2.0-py3-none-any.whl"]
    ok(client.delete(f"{PROD}/gone?force=", headers=JSON | ROOT))
    assert client.get(f"{PROD}/+simple/gone/", headers=SIMPLE_JSON).status_code == 404


# --- tox results -------------------------------------------------------------------------------


def wheel_path(client: httpx.Client) -> str:
    links = version_data(client, PROD, "foo", "1.0")["+links"]
    [href] = [link["href"] for link in links if link["href"].endswith(".whl")]
    return str(httpx.URL(href).path)


def toxresults(client: httpx.Client) -> list[Any]:
    links = version_data(client, PROD, "foo", "1.0")["+links"]
    return [link for link in links if link["rel"] == "toxresult"]


def test_tox_results_need_upload_rights_and_a_small_body(
    server: ServerProcess, client: httpx.Client, released: Released
) -> None:
    path = wheel_path(client)
    result = {"host": "ci", "platform": "linux", "testenvs": {}}
    before = (toxresults(client), blob_files(server))
    anonymous = client.post(path, json=result, headers=JSON)
    assert anonymous.status_code == 401, anonymous.text
    assert "authentication required" in anonymous.json()["message"]
    stranger = client.post(path, json=result, headers=JSON | CAROL)
    assert stranger.status_code == 403, stranger.text
    huge = json.dumps({"output": "x" * (2 * 1024 * 1024)}).encode()
    started = time.monotonic()
    oversized = client.post(path, content=huge, headers=JSON | BOB)
    assert oversized.status_code == 413, oversized.text
    assert "the limit is 1048576 bytes" in oversized.json()["message"]
    assert time.monotonic() - started < 5
    assert (toxresults(client), blob_files(server)) == before
    stored = ok(client.post(path, json=result, headers=JSON | BOB))
    assert stored.json()["type"] == "toxresultpath"
    assert len(toxresults(client)) == 1


# --- volatile indexes say what they replaced ---------------------------------------------------


def test_a_volatile_replacement_is_named_in_the_answer_and_by_the_client(
    server: ServerProcess, client: httpx.Client, released: Released, tmp_path: Path
) -> None:
    first = build_wheel(tmp_path / "first", "again", "1.0")
    ok(upload(client, "/alice/dev", first.name, first.read_bytes(), ALICE, {}))
    rebuilt = build_wheel(tmp_path / "rebuilt", "again", "1.0", payload="# rebuilt\n")
    answer = ok(upload(client, "/alice/dev", rebuilt.name, rebuilt.read_bytes(), ALICE, {}))
    old_sha = sha256_of(first.read_bytes())
    assert answer.reason_phrase == (
        f"replaced {first.name} (sha256 {old_sha[:16]}) on volatile index alice/dev"
    )
    # By identity: an sdist under another spelling takes the place of the first one.
    sdist = build_sdist(tmp_path, "again", "1.0")
    ok(upload(client, "/alice/dev", sdist.name, sdist.read_bytes(), ALICE, {}))
    other = ok(upload(client, "/alice/dev", "Again-1.0.tar.gz", sdist.read_bytes(), ALICE, {}))
    assert other.reason_phrase.startswith(f"replaced {sdist.name} ")
    assert sorted(simple_files(client, "/alice/dev", "again")) == [
        "Again-1.0.tar.gz", rebuilt.name,
    ]  # fmt: skip

    packyard = Packyard(tmp_path / "home")
    packyard.ok("use", f"{server.url}/alice/dev")
    packyard.ok("login", "alice", "--password", PASSWORD)
    third = build_wheel(tmp_path / "third", "again", "1.0", payload="# third\n")
    printed = packyard.ok("upload", third)
    replaced = sha256_of(rebuilt.read_bytes())[:16]
    assert f"uploaded {third.name}: replaced {rebuilt.name} (sha256 {replaced})" in printed
    assert simple_files(client, "/alice/dev", "again")[third.name] == sha256_of(third.read_bytes())
