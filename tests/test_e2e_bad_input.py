"""End to end: uploads that must be refused get the right 4xx, a readable message in the body
and the reason phrase, and leave nothing behind (no rows, no blobs, no temp files, no
traceback in the server log)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth, tool
from tests.e2e_support import (
    PASSWORD,
    SIMPLE_JSON,
    assert_succeeded,
    blob_files,
    create_index,
    create_user,
    print_log_if_failed,
    run_tool,
    running_server,
    temp_files,
    upload,
)

pytestmark = pytest.mark.e2e

INDEX = "/alice/prod"
ALICE = basic_auth("alice", PASSWORD)


@dataclasses.dataclass(frozen=True)
class Dists:
    """The distributions the cases upload: what is stored, and look-alikes of it."""

    wheel: Path  # demo 1.0, stored before any case runs
    sdist: Path  # demo 1.0, not stored up front
    same_name_other_content: Path  # demo 1.0 wheel with other metadata
    other_project: Path  # other 1.0 wheel


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("bad-input")) as started:
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
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    directory = tmp_path_factory.mktemp("dists")
    return Dists(
        wheel=build_wheel(directory, "demo", "1.0"),
        sdist=build_sdist(directory, "demo", "1.0"),
        same_name_other_content=build_wheel(
            directory / "other-content", "demo", "1.0", summary="other metadata", payload="x = 1"
        ),
        other_project=build_wheel(directory, "other", "1.0"),
    )


@pytest.fixture(scope="module")
def prod(server: ServerProcess, client: httpx.Client, dists: Dists) -> str:
    """alice's non-volatile index holding demo 1.0's wheel; bob is another user."""
    create_user(client, "alice")
    create_user(client, "bob")
    create_index(client, "alice", "prod", volatile=False)
    fields = {"name": "demo", "version": "1.0"}
    response = upload(client, INDEX, dists.wheel.name, dists.wheel.read_bytes(), ALICE, fields)
    assert response.status_code == 200, response.text
    assert len(blob_files(server)) == 2, "the wheel and its .metadata are stored as blobs"
    return INDEX


@dataclasses.dataclass(frozen=True)
class StoredState:
    """What a refused upload must not change, as seen over HTTP and on disk."""

    index_json: object
    simple_list: object
    simple_demo: object
    blobs: set[Path]
    log_size: int


def stored_state(client: httpx.Client, server: ServerProcess) -> StoredState:
    def body(path: str, headers: dict[str, str]) -> object:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    return StoredState(
        index_json=body(INDEX, JSON),
        simple_list=body(f"{INDEX}/+simple/", SIMPLE_JSON),
        simple_demo=body(f"{INDEX}/+simple/demo/", SIMPLE_JSON),
        blobs=blob_files(server),
        log_size=len(server.log()),
    )


def assert_nothing_changed(
    client: httpx.Client, server: ServerProcess, before: StoredState
) -> None:
    after = stored_state(client, server)
    assert after.index_json == before.index_json
    assert after.simple_list == before.simple_list
    assert after.simple_demo == before.simple_demo
    assert after.blobs - before.blobs == set(), "a refused upload left a blob"
    assert temp_files(server) == []
    new_log = server.log()[before.log_size :]
    assert "Traceback" not in new_log, new_log


def assert_refused(response: httpx.Response, status: int, message: str) -> None:
    """The status, and the message both in the body and in the HTTP reason phrase."""
    assert response.status_code == status, (response.reason_phrase, response.text)
    assert message in response.text
    assert message in response.reason_phrase


@dataclasses.dataclass(frozen=True)
class BadUpload:
    """One refused upload: what is sent, and what the user must be told."""

    filename: str
    content: str  # a Dists field name, or a key of MADE_UP_CONTENT
    fields: dict[str, str]
    status: int
    message: str
    index: str = INDEX
    auth: dict[str, str] = dataclasses.field(default_factory=lambda: ALICE)

    def body(self, dists: Dists) -> bytes:
        if self.content in MADE_UP_CONTENT:
            return MADE_UP_CONTENT[self.content]
        path: Path = getattr(dists, self.content)
        return path.read_bytes()


MADE_UP_CONTENT = {
    "garbage": b"this is not an archive\n" * 10,
    "nothing": b"",
    "empty zip": b"PK\x05\x06" + b"\0" * 18,
}
WHEEL = "demo-1.0-py3-none-any.whl"
DEMO_1_0 = {"name": "demo", "version": "1.0"}
DEMO_1_1 = {"name": "demo", "version": "1.1"}
EVIL = {"name": "evil", "version": "1.0"}

BAD_UPLOADS = {
    "corrupt wheel": BadUpload(
        "demo-1.1-py3-none-any.whl", "garbage", DEMO_1_1, 400, "is not a readable archive"
    ),
    "corrupt sdist": BadUpload(
        "demo-1.1.tar.gz", "garbage", DEMO_1_1, 400, "is not a readable archive"
    ),
    "empty file": BadUpload(
        "demo-1.1-py3-none-any.whl", "nothing", DEMO_1_1, 400, "is not a readable archive"
    ),
    "zip sdist without PKG-INFO": BadUpload(
        "demo-1.1.zip", "empty zip", DEMO_1_1, 400, "has no PKG-INFO"
    ),
    "not a distribution extension": BadUpload(
        "demo-1.1.rar", "garbage", DEMO_1_1, 400, "is not a valid archive name"
    ),
    "a legacy format (PEP 527)": BadUpload(
        "demo-1.1.win32.exe", "garbage", DEMO_1_1, 400, "uploads of bdist_wininst files are refused"
    ),
    "unsupported action": BadUpload(
        "demo-1.1.tar.gz", "sdist", {**DEMO_1_1, ":action": "remove_pkg"}, 400, "not supported"
    ),
    "form name differs from filename": BadUpload(
        WHEEL, "wheel", {"name": "other", "version": "1.0"}, 400, "does not match project name"
    ),
    "metadata name differs from filename": BadUpload(
        "demo-1.1-py3-none-any.whl", "other_project", DEMO_1_1, 400, "does not match"
    ),
    "metadata version differs from filename": BadUpload(
        "demo-1.1-py3-none-any.whl", "wheel", DEMO_1_1, 400, "does not contain version"
    ),
    "invalid version in form": BadUpload(
        WHEEL, "wheel", {"name": "demo", "version": "1.0 final!"}, 400, "invalid version"
    ),
    "invalid version in filename": BadUpload(
        "demo-final.tar.gz",
        "sdist",
        {"name": "demo", "version": "final"},
        400,
        "is not a valid distribution filename",
    ),
    "wrong sha256_digest": BadUpload(
        "demo-1.0.tar.gz",
        "sdist",
        {**DEMO_1_0, "sha256_digest": "0" * 64},
        400,
        "digest supplied does not match",
    ),
    "path traversal with slashes": BadUpload(
        "../../evil-1.0.tar.gz", "sdist", EVIL, 400, "is not an acceptable file name"
    ),
    "path traversal percent-encoded": BadUpload(
        "..%2f..%2fevil-1.0.tar.gz", "sdist", EVIL, 400, "is not an acceptable file name"
    ),
    "path traversal with backslashes": BadUpload(
        "..\\..\\evil-1.0.tar.gz", "sdist", EVIL, 400, "is not an acceptable file name"
    ),
    "unknown index": BadUpload(WHEEL, "wheel", DEMO_1_0, 404, "alice/nope", index="/alice/nope"),
    "anonymous": BadUpload(
        "demo-1.0.tar.gz", "sdist", DEMO_1_0, 401, "authentication required", auth={}
    ),
    "wrong password": BadUpload(
        "demo-1.0.tar.gz",
        "sdist",
        DEMO_1_0,
        401,
        "could not be authenticated",
        auth=basic_auth("alice", "wrong"),
    ),
    "not the owner": BadUpload(
        "demo-1.0.tar.gz",
        "sdist",
        DEMO_1_0,
        403,
        "no permission",
        auth=basic_auth("bob", PASSWORD),
    ),
    "other content under a stored name": BadUpload(
        WHEEL, "same_name_other_content", DEMO_1_0, 409, "already exists"
    ),
}


@pytest.mark.parametrize("case", BAD_UPLOADS.values(), ids=BAD_UPLOADS.keys())
def test_refused_upload_says_why_and_stores_nothing(
    server: ServerProcess, client: httpx.Client, prod: str, dists: Dists, case: BadUpload
) -> None:
    before = stored_state(client, server)
    response = upload(client, case.index, case.filename, case.body(dists), case.auth, case.fields)
    assert_refused(response, case.status, case.message)
    if case.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert_nothing_changed(client, server, before)
    outside = server.serverdir.parent
    assert not list(outside.rglob("evil*")), "a traversing filename was written"


def test_identical_reupload_to_a_non_volatile_index_is_ok(
    server: ServerProcess, client: httpx.Client, prod: str, dists: Dists
) -> None:
    before = stored_state(client, server)
    response = upload(client, INDEX, WHEEL, dists.wheel.read_bytes(), ALICE, DEMO_1_0)
    assert response.status_code == 200, response.text
    assert response.reason_phrase == "Upload of identical file to non volatile index."
    assert_nothing_changed(client, server, before)


def test_twine_uploading_the_same_file_twice_succeeds(
    server: ServerProcess, client: httpx.Client, prod: str, tmp_path: Path
) -> None:
    sdist = build_sdist(tmp_path, "twice", "1.0")
    command = [
        tool("twine"),
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
        "--repository-url",
        f"{server.url}{INDEX}/",
        "--username",
        "alice",
        "--password",
        PASSWORD,
        sdist,
    ]
    assert_succeeded(run_tool(command))
    before = stored_state(client, server)
    assert_succeeded(run_tool(command))
    assert_nothing_changed(client, server, before)


def test_file_path_traversal_on_download_is_not_found(
    client: httpx.Client, prod: str, server: ServerProcess
) -> None:
    secret = (server.serverdir / "secret").read_bytes()
    database = (server.serverdir / "packyard.sqlite3").read_bytes()[:16]
    for path in (
        "+f/..%2f..%2fpackyard.sqlite3",
        "+f/%2e%2e/%2e%2e/%2e%2e/packyard.sqlite3",
        "+f/abc/def/..%2f..%2f..%2fsecret",
        "+f/..%2f..%2f..%2fsecret",
    ):
        response = client.get(f"{INDEX}/{path}")
        assert response.status_code == 404, (path, response.status_code)
        assert secret not in response.content
        assert database not in response.content
