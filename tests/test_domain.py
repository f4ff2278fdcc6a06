"""The typed domain, the one unit of work and the one error map (issue 15, domain slice).

Pure rules (ACL, index configs, the status of every error class) are table tests; what a
client sees (error bodies, released blobs) is asked of a real `packyard serve` on loopback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard import errors
from packyard.client import api, bundles, installers, state, uploads
from packyard.client import errors as client_errors
from packyard.core import acl, indexconfig
from packyard.core.dists import check_upload_filename
from packyard.core.indexconfig import InheritanceMode, MirrorConfig, StageConfig
from packyard.core.models import FileKind, IndexRecord, PageStatus
from packyard.core.uploads import SentDigests, declared_digests
from packyard.web.responses import STATUS, status_for
from tests.builders import build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth
from tests.e2e_support import PASSWORD, blob_files, create_index, create_user, running_server

A, B, ROOT = "alice", "bob", acl.ROOT
ANON, AUTH = acl.ANONYMOUS, acl.AUTHENTICATED


# --- ACL rules (core/acl.py) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "acl_upload", "allowed"),
    [
        (None, [A], False),
        (None, [ANON], True),
        (A, [A], True),
        (B, [A], False),
        (B, [AUTH], True),
        (None, [AUTH], False),
        (ROOT, [A], False),  # root is not an uploader by rank
        (A, [], False),
    ],
)
def test_may_upload(user: str | None, acl_upload: list[str], allowed: bool) -> None:
    assert acl.may_upload(user, acl_upload) is allowed


@pytest.mark.parametrize(
    ("user", "target", "restrict", "password_only", "allowed"),
    [
        (None, A, [], False, False),
        (A, A, [], False, True),
        (B, A, [], False, False),
        (ROOT, A, [], False, True),
        (A, A, [ROOT], False, False),  # restricted: only the listed principals
        (A, A, [ROOT], True, True),  # ... but everybody may change their own password
        (ROOT, A, [ROOT], False, True),
        (B, A, [AUTH], False, True),
    ],
)
def test_may_modify_user(
    user: str | None, target: str, restrict: list[str], password_only: bool, allowed: bool
) -> None:
    assert acl.may_modify_user(user, target, restrict, password_only) is allowed


@pytest.mark.parametrize(
    ("user", "target", "allowed"), [(ROOT, ROOT, False), (ROOT, A, True), (A, A, True)]
)
def test_may_delete_user_never_root(user: str, target: str, allowed: bool) -> None:
    assert acl.may_delete_user(user, target, []) is allowed


@pytest.mark.parametrize(
    ("user", "restrict", "allowed"),
    [(None, [], True), (None, [ROOT], False), (A, [AUTH], True), (A, [ROOT], False)],
)
def test_may_create_user(user: str | None, restrict: list[str], allowed: bool) -> None:
    assert acl.may_create_user(user, restrict) is allowed


@pytest.mark.parametrize(
    ("user", "owner", "restrict", "allowed"),
    [
        (None, A, [], False),
        (A, A, [], True),
        (B, A, [], False),
        (ROOT, A, [], True),
        (A, A, [ROOT], False),
        (B, A, [B], True),
    ],
)
def test_may_manage_index(user: str | None, owner: str, restrict: list[str], allowed: bool) -> None:
    assert acl.may_manage_index(user, owner, restrict) is allowed


@pytest.mark.parametrize(
    ("user", "acl_upload", "delete", "force"),
    [
        (None, [ANON], False, False),  # deleting needs a login, whatever the acl says
        (A, [A], True, True),  # the owner
        (B, [A, B], True, False),  # an uploader deletes, but may not force
        (B, [A], False, False),
        (ROOT, [A], True, True),
    ],
)
def test_delete_and_force_delete(
    user: str | None, acl_upload: list[str], delete: bool, force: bool
) -> None:
    assert acl.may_delete_entries(user, A, acl_upload) is delete
    assert acl.may_force_delete(user, A) is force


@pytest.mark.parametrize(
    ("user", "toxresult_acl", "acl_upload", "allowed"),
    [
        (None, [ANON], [ANON], False),  # never anonymously
        (A, [ANON], [A], True),  # :ANONYMOUS: stands for the index's uploaders
        (B, [ANON], [A], False),
        (B, [AUTH], [A], True),
        (B, [B], [A], True),
        (A, [], [A], False),
    ],
)
def test_may_upload_toxresult(
    user: str | None, toxresult_acl: list[str], acl_upload: list[str], allowed: bool
) -> None:
    assert acl.may_upload_toxresult(user, toxresult_acl, acl_upload) is allowed


@pytest.mark.parametrize(
    ("given", "stored"),
    [(":anonymous:", ANON), (" :Authenticated: ", AUTH), ("Alice", "Alice")],
)
def test_principals_are_normalised(given: str, stored: str) -> None:
    assert acl.normalize_principal(given) == stored


# --- typed index configs ----------------------------------------------------------------------


def test_a_new_stage_parses_into_its_typed_config() -> None:
    config = indexconfig.parse(indexconfig.new_config(A, {"bases": "root/pypi", "title": "T"}))
    assert config == StageConfig(
        bases=("root/pypi",),
        title="T",
        acl_upload=(A,),
        mirror_whitelist_inheritance=InheritanceMode.INTERSECTION,
    )
    assert not config.is_mirror and config.type == "stage"


def test_a_mirror_parses_into_its_typed_config_and_nobody_uploads_to_it() -> None:
    wire = indexconfig.new_config(
        ROOT, {"type": "mirror", "mirror_url": "https://up.invalid/simple/"}, 60
    )
    config = indexconfig.parse(wire)
    assert config == MirrorConfig(mirror_url="https://up.invalid/simple/", mirror_cache_expiry=60)
    assert config.is_mirror and config.bases == () and config.acl_upload == ()
    assert not acl.may_upload(ROOT, config.acl_upload)


@pytest.mark.parametrize(
    ("stored", "field", "expected"),
    [
        ({"type": "stage"}, "mirror_whitelist_inheritance", InheritanceMode.UNION),
        ({"type": "stage"}, "acl_toxresult_upload", (ANON,)),
        ({"type": "stage", "acl_toxresult_upload": []}, "acl_toxresult_upload", ()),
        ({"type": "stage", "volatile": False}, "volatile", False),
        ({"type": "mirror", "mirror_url": "https://u.invalid/"}, "mirror_cache_expiry", None),
    ],
    ids=["old-inheritance-is-union", "tox-default", "tox-empty", "non-volatile", "no-expiry"],
)
def test_stored_configs_without_every_key_parse_to_devpi_defaults(
    stored: dict[str, Any], field: str, expected: object
) -> None:
    assert getattr(indexconfig.parse(stored), field) == expected


def test_typed_configs_are_frozen_and_parsed_once_per_record() -> None:
    record = IndexRecord(1, A, "dev", {"type": "stage", "acl_upload": [A]})
    assert record.index_config is record.index_config
    assert record.index_config.acl_upload == (A,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.index_config.volatile = False  # type: ignore[misc]


def test_kinds_and_statuses_are_the_wire_strings() -> None:
    assert [kind.value for kind in FileKind] == ["releasefile", "doczip", "toxresult"]
    assert [status.value for status in PageStatus] == ["ok", "missing"]
    assert FileKind.RELEASE == "releasefile"  # JSON and database columns keep devpi's words


# --- errors: one map, one root ----------------------------------------------------------------


def _classes(module: object, root: type[BaseException]) -> list[type[BaseException]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, root)
        and value.__module__.startswith("packyard")
    ]


def test_every_domain_error_class_has_its_own_status() -> None:
    classes = _classes(errors, errors.PackyardError)
    assert len(classes) >= 17
    assert set(classes) == set(STATUS), "map each class of packyard.errors in web/responses.py"
    assert status_for(errors.NotAcceptable("x")) == 406
    assert status_for(errors.LoginExpired("x")) == 401
    assert status_for(errors.TryLater("x", 1)) == 503


def test_the_client_has_one_error_root() -> None:
    found = {
        cls
        for module in (api, bundles, client_errors, installers, state, uploads)
        for cls in _classes(module, Exception)
    }
    assert found >= {client_errors.StateError, bundles.ClosureError, installers.InstallerError}
    assert all(issubclass(cls, client_errors.ClientError) for cls in found), found


# --- against a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("domain")) as started:
        yield started


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        create_user(client, A)
        create_index(client, A, "dev")
        yield client


HTML = {"Accept": "text/html"}
PIP = {"Accept": "application/vnd.pypi.simple.v1+json", "User-Agent": "pip/24.0"}


def test_the_three_error_body_shapes(http: httpx.Client) -> None:
    """JSON for the API and JSON clients, a page for browsers, plain text for installers."""
    api_error = http.get("/nobody/dev", headers=JSON)
    assert api_error.status_code == 404
    assert api_error.headers["content-type"] == "application/json"
    assert api_error.json() == {"message": "The stage nobody/dev could not be found."}

    page = http.get("/nobody/dev", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "The stage nobody/dev could not be found." in page.text
    assert "<html" in page.text.lower()

    plain = http.get("/nobody/dev/+simple/demo/", headers=PIP)
    assert plain.status_code == 404
    assert plain.headers["content-type"].startswith("text/plain")
    assert plain.text == "The stage nobody/dev could not be found.\n"


@pytest.mark.parametrize(
    ("accept", "query", "shape"),
    [
        ("application/xml", "", "text/plain"),
        ("", "?format=application/xml", "text/plain"),
        ("application/json", "", "application/json"),
    ],
)
def test_406_comes_from_the_error_map_in_the_shape_the_client_reads(
    http: httpx.Client, accept: str, query: str, shape: str
) -> None:
    response = http.get(f"/{A}/dev/+simple/{query}", headers={"Accept": accept} if accept else {})
    assert response.status_code == 406
    assert response.headers["content-type"].startswith(shape)
    offered = ", ".join(
        ("application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+html", "text/html")
    )
    message = f"Not Acceptable: this page is offered as {offered}"
    body = response.json()["message"] if shape == "application/json" else response.text
    assert body.strip() == message
    assert response.headers["vary"] == "Accept"


def _upload(http: httpx.Client, path: Path) -> None:
    response = http.post(
        f"/{A}/dev/",
        data={":action": "file_upload"},
        files={"content": (path.name, path.read_bytes())},
        headers=basic_auth(A, PASSWORD),
    )
    assert response.status_code == 200, response.text


def _delete(http: httpx.Client, path: str) -> None:
    response = http.delete(path, headers=JSON | basic_auth(A, PASSWORD))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("what", ["file", "version", "project"])
def test_every_delete_removes_the_blobs_it_released(
    server: ServerProcess, http: httpx.Client, tmp_path: Path, what: str
) -> None:
    """Deletes go through the one unit of work: no caller looks up files to release, and
    nothing the deleted rows pointed at stays on disk (a wheel and its PEP 658 file)."""
    project = f"gone-{what}"
    before = blob_files(server)
    wheel = build_wheel(tmp_path, project, "1.0", payload=f"# {what} {time.time()}")
    _upload(http, wheel)
    added = blob_files(server) - before
    assert len(added) == 2  # the wheel and its core metadata
    link = http.get(f"/{A}/dev/{project}/1.0", headers=JSON).json()["result"]["+links"][0]
    target = {
        "file": httpx.URL(link["href"]).path,
        "version": f"/{A}/dev/{project}/1.0",
        "project": f"/{A}/dev/{project}",
    }[what]
    _delete(http, target)
    assert blob_files(server) == before
    assert http.get(f"/{A}/dev/{project}/1.0", headers=JSON).status_code == 404


# --- upload validation (pure steps) -------------------------------------------------------------

WHEEL = "demo-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("filename", "name", "version", "filetype", "project"),
    [
        (WHEEL, "", "", "", "demo"),
        ("demo-1.0.tar.gz", "demo", "1.0", "sdist", "demo"),
        ("Demo_Pkg-1.0.tar.gz", "demo.pkg", "1.0.0", "", "demo-pkg"),  # compared normalised
    ],
)
def test_upload_filename_accepted(
    filename: str, name: str, version: str, filetype: str, project: str
) -> None:
    assert check_upload_filename(filename, name, version, filetype).project == project


@pytest.mark.parametrize(
    ("filename", "name", "version", "filetype", "message"),
    [
        (None, "", "", "", "content file field not found"),
        (WHEEL, "other", "", "", "does not match project name 'other'"),
        (WHEEL, "", "2.0", "", "does not contain version '2.0'"),
        (WHEEL, "bad name!", "", "", "invalid project name 'bad name!'"),
        (WHEEL, "", "one", "", "invalid version 'one'"),
        ("demo-1.0.egg", "", "", "bdist_egg", "uploads of bdist_egg files are refused"),
        ("demo-1.0.exe", "", "", "", "uploads of bdist_wininst files are refused"),
        ("démo-1.0.tar.gz", "", "", "", "is not ASCII"),
        ("../demo-1.0.tar.gz", "", "", "", "is not an acceptable file name"),
    ],
)
def test_upload_filename_refused(
    filename: str | None, name: str, version: str, filetype: str, message: str
) -> None:
    with pytest.raises(errors.InvalidInput, match=re.escape(message)):
        check_upload_filename(filename, name, version, filetype)


@pytest.mark.parametrize(
    ("field", "digest", "ok"),
    [
        ("sha256_digest", hashlib.sha256(b"data").hexdigest(), True),
        ("sha256_digest", hashlib.sha256(b"data").hexdigest().upper(), True),
        ("md5_digest", hashlib.md5(b"data").hexdigest(), True),
        ("blake2_256_digest", hashlib.blake2b(b"data", digest_size=32).hexdigest(), True),
        ("sha256_digest", hashlib.sha256(b"other").hexdigest(), False),
        ("md5_digest", "0" * 32, False),
    ],
)
def test_sent_digests_are_checked_over_the_received_bytes(
    field: str, digest: str, ok: bool
) -> None:
    digests = SentDigests(declared_digests({field: [digest]}))
    digests.update(b"da")
    digests.update(b"ta")
    if ok:
        digests.check()
    else:
        with pytest.raises(errors.InvalidInput, match=f"does not match .*\\({field}\\)"):
            digests.check()
