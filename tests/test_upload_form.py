"""The upload form read into a typed command (web/upload_form.py): table tests of the parser,
then the same cases over HTTP against the real server (status, message, nothing stored)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.datastructures import UploadFile

from packyard import errors
from packyard.core.uploads import UploadAction, UploadCommand
from packyard.web.upload_form import FormItem, upload_command
from tests.conftest import JSON, ServerProcess, basic_auth
from tests.e2e_support import (
    PASSWORD,
    blob_files,
    create_index,
    create_user,
    print_log_if_failed,
    running_server,
    temp_files,
)

WHEEL = "demo-1.0-py3-none-any.whl"


def _file(filename: str | None = WHEEL, data: bytes = b"zip") -> UploadFile:
    return UploadFile(io.BytesIO(data), filename=filename)


def _command(*items: FormItem) -> UploadCommand:
    return upload_command(items)


# --- the parser: wire fields in, meaning out ---------------------------------------------------


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("file_upload", UploadAction.RELEASE_FILE),
        ("doc_upload", UploadAction.DOCS),
        ("submit", UploadAction.REGISTER),
        (" submit ", UploadAction.REGISTER),  # values are stripped, as before
    ],
)
def test_each_action(action: str, expected: UploadAction) -> None:
    assert _command((":action", action)).action is expected


@pytest.mark.parametrize("action", ["", "remove_pkg", "FILE_UPLOAD", "file_upload\x00"])
def test_an_unknown_or_missing_action_is_refused(action: str) -> None:
    with pytest.raises(errors.InvalidInput, match="not supported"):
        _command((":action", action))


def test_a_release_upload_in_words_with_meaning() -> None:
    content = _file()
    command = _command(
        (":action", "file_upload"),
        ("name", "demo"),
        ("version", "1.0"),
        ("filetype", "bdist_wheel"),
        ("pyversion", "py3"),
        ("sha256_digest", "AB" * 32),
        ("md5_digest", ""),  # empty: not sent
        ("summary", "a demo"),
        ("content", content),
    )
    assert command == UploadCommand(
        action=UploadAction.RELEASE_FILE,
        project="demo",
        version="1.0",
        dist_type="bdist_wheel",
        python_version="py3",
        filename=WHEEL,
        content=content.file,
        digests={"sha256": "ab" * 32},
        metadata={"name": "demo", "version": "1.0", "summary": "a demo"},
    )


@pytest.mark.parametrize(
    ("items", "project", "version"),
    [
        ([], "", ""),
        ([("name", "demo")], "demo", ""),
        ([("version", "1.0")], "", "1.0"),
        ([("name", "  "), ("version", "")], "", ""),
    ],
)
def test_a_missing_name_or_version_is_left_to_the_rules(
    items: list[FormItem], project: str, version: str
) -> None:
    """The parser says what was sent; the upload rules judge it (and derive what they can)."""
    command = _command((":action", "file_upload"), *items)
    assert (command.project, command.version) == (project, version)


def test_repeated_text_fields_first_value_counts_list_metadata_keeps_all() -> None:
    command = _command(
        (":action", "submit"),
        (":action", "file_upload"),
        ("name", "demo"),
        ("name", "other"),
        ("classifiers", "A"),
        ("classifiers", "B"),
        ("sha256_digest", "aa" * 32),
        ("sha256_digest", "bb" * 32),
    )
    assert command.action is UploadAction.REGISTER
    assert command.project == "demo"
    assert command.metadata["classifiers"] == ["A", "B"]
    assert command.digests == {"sha256": "aa" * 32}


def test_a_file_part_without_a_filename_has_no_filename() -> None:
    """Refused by the rules as 'content file field not found' (see the HTTP test below)."""
    command = _command((":action", "file_upload"), ("content", _file(None)))
    assert command.filename is None and command.content is not None


def test_only_the_content_part_is_the_file() -> None:
    command = _command((":action", "file_upload"), ("gpg_signature", _file("demo.asc")))
    assert command.filename is None and command.content is None


def test_two_content_parts_are_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="one file: the form has 2 content parts"):
        _command((":action", "file_upload"), ("content", _file()), ("content", _file()))


# --- over HTTP, against the real server --------------------------------------------------------

INDEX = "/alice/dev"
ALICE = basic_auth("alice", PASSWORD)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("upload-form")) as started:
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield
    print_log_if_failed(request, server)


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        create_user(http, "alice")
        create_index(http, "alice", "dev")
        yield http


Files = list[tuple[str, tuple[str | None, bytes]]]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fields", "files", "status", "message"),
    [
        ({":action": "remove_pkg"}, [], 400, "action 'remove_pkg' not supported"),
        ({":action": "file_upload"}, [("content", (None, b"PK"))], 400, "content file field"),
        (
            {":action": "file_upload"},
            [("content", (WHEEL, b"PK")), ("content", (WHEEL, b"PK"))],
            400,
            "one file: the form has 2 content parts",
        ),
        ({":action": "doc_upload", "name": "demo"}, [], 400, "content file field not found"),
        ({":action": "submit", "version": "1.0"}, [], 400, "invalid project name ''"),
        ({f"field{n}": "x" for n in range(2001)}, [], 400, "Too many fields"),
    ],
)
def test_a_bad_form_gets_a_clear_400_and_stores_nothing(
    server: ServerProcess,
    client: httpx.Client,
    fields: dict[str, str],
    files: Files,
    status: int,
    message: str,
) -> None:
    blobs_before = blob_files(server)
    started = time.monotonic()
    multipart = files or [("unused", ("unused.txt", b""))]  # a form as twine sends it
    response = client.post(f"{INDEX}/", data=fields, files=multipart, headers=ALICE)
    assert time.monotonic() - started < 10
    assert response.status_code == status, response.text
    assert message in response.text
    assert client.get(INDEX, headers=JSON).json()["result"]["projects"] == []
    assert blob_files(server) == blobs_before
    assert temp_files(server) == []
    assert "Traceback" not in server.log()


@pytest.mark.e2e
def test_a_register_form_stores_its_metadata(client: httpx.Client) -> None:
    fields = {
        ":action": "submit",
        "name": "registered",
        "version": "2.0",
        "summary": "only metadata",
        "classifiers": ["A", "B"],
    }
    unused = [("unused", ("unused.txt", b""))]
    response = client.post(f"{INDEX}/", data=fields, files=unused, headers=ALICE)
    assert response.status_code == 200, response.text
    stored = client.get(f"{INDEX}/registered/2.0", headers=JSON).json()["result"]
    assert (stored["summary"], stored["classifiers"]) == ("only metadata", ["A", "B"])
    client.delete(f"{INDEX}/registered", headers=ALICE)
