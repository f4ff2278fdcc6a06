"""devpi compatibility, second pass (issue 14, items 1-4): what a third-party suite driving the
real devpi client trips on. Existence before permission; a PATCH of a user does what it is
given; 401/403 keep their standard reason phrase; devpi's API answers errors in JSON.

Everything runs against the real server process on loopback, and the devpi client where it is
involved.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.routing import Route

from packyard.web.app import routes
from packyard.web.responses import is_devpi_api_endpoint
from tests.builders import build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth
from tests.devpi_client import (
    Devpi,
    devpi_executable,  # noqa: F401 (a fixture)
)
from tests.e2e_support import PASSWORD, create_index, create_user, upload

pytestmark = pytest.mark.e2e

ALICE = basic_auth("alice", PASSWORD)
BOB = basic_auth("bob", PASSWORD)
# Sent, but not base64: refused at once (401) without a password check or the login throttle.
UNREADABLE_CREDENTIALS = {"Authorization": "Basic !!!"}
WHEEL_FIELDS = {"name": "demo", "version": "1.0", "metadata_version": "2.1"}


@pytest.fixture
def devpi(request: pytest.FixtureRequest, tmp_path: Path) -> Devpi:
    return Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")


@pytest.fixture
def http(live_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        create_user(client, "alice")
        create_user(client, "bob")
        create_index(client, "alice", "dev")
        yield client


def message_of(response: httpx.Response, status: int) -> str:
    """The JSON error's message, after checking the status and the exact content type."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    message: str = response.json()["message"]
    return message


def users_and_indexes(http: httpx.Client) -> dict[str, list[str]]:
    listed = http.get("/", headers=JSON).json()["result"]
    return {user: sorted(config["indexes"]) for user, config in listed.items()}


# --- item 1: existence before permission -------------------------------------------------------


def test_missing_things_are_404_before_permission(http: httpx.Client, tmp_path: Path) -> None:
    """Anonymous callers and strangers alike learn that a thing is missing (404), never a
    401/403 about a thing that is not there; nothing is created on the way."""
    before = users_and_indexes(http)
    wheel = build_wheel(tmp_path, "demo", "1.0")
    for who in ({}, BOB):
        created = http.put("/nosuchuser/dev", json={}, headers=JSON | who)
        assert message_of(created, 404) == "no user 'nosuchuser'"
        assert message_of(http.patch("/nosuchuser", json={"title": "x"}, headers=JSON | who), 404)
        assert message_of(http.delete("/nosuchuser", headers=JSON | who), 404)
        assert message_of(http.patch("/alice/nosuch", json=["title=x"], headers=JSON | who), 404)
        assert message_of(http.delete("/alice/nosuch", headers=JSON | who), 404)
        uploaded = upload(http, "/alice/nosuch", wheel.name, wheel.read_bytes(), who, WHEEL_FIELDS)
        assert "could not be found" in message_of(uploaded, 404)
        assert message_of(http.delete("/alice/dev/nosuch", headers=JSON | who), 404)
        assert message_of(http.delete("/alice/dev/nosuch/9.9", headers=JSON | who), 404)
        yanked = http.patch("/alice/dev/nosuch/9.9", json={"yanked": True}, headers=JSON | who)
        assert message_of(yanked, 404)
        toxresult = http.post("/alice/dev/+f/aaa/bbbbbbbbbbbbbbbb/nosuch-1.0.whl", content=b"{}")
        assert message_of(toxresult, 404)
    # What exists is still guarded, in devpi's order: 409 for an existing index, then 403.
    assert message_of(http.put("/alice/dev", json={}, headers=JSON | BOB), 409)
    assert "no permission" in message_of(http.put("/alice/new", json={}, headers=JSON | BOB), 403)
    assert "no permission" in message_of(http.put("/alice/new", json={}, headers=JSON), 403)
    assert users_and_indexes(http) == before
    assert http.get("/alice/dev", headers=JSON).json()["result"]["projects"] == []


def test_devpi_client_creating_an_index_for_a_missing_user(
    devpi: Devpi, live_server: ServerProcess, http: httpx.Client
) -> None:
    devpi.ok("use", live_server.url)
    devpi.ok("login", "alice", "--password", PASSWORD)
    printed = devpi.fails("index", "-c", "nosuchuser/dev")
    assert "404 Not Found: no user 'nosuchuser'" in printed
    assert "nosuchuser" not in users_and_indexes(http)


# --- item 2: a PATCH of a user does what it is given -----------------------------------------


def login_status(http: httpx.Client, user: str, password: str) -> int:
    return http.post("/+login", json={"user": user, "password": password}, headers=JSON).status_code


def test_empty_password_is_set(
    devpi: Devpi, live_server: ServerProcess, http: httpx.Client
) -> None:
    """devpi sets an empty password; packyard did nothing and answered "user updated"."""
    devpi.ok("use", live_server.url)
    devpi.ok("login", "alice", "--password", PASSWORD)
    assert "user modified: alice" in devpi.ok("user", "-m", "alice", "password=")
    assert login_status(http, "alice", PASSWORD) == 401
    assert login_status(http, "alice", "") == 200
    # Straight over HTTP, as the issue reports it: a new token comes back, and it works.
    response = http.patch("/bob", json={"password": ""}, headers=JSON | BOB)
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "user updated, new proxy auth"
    assert response.json()["type"] == "userpassword"
    assert login_status(http, "bob", PASSWORD) == 401
    assert login_status(http, "bob", "") == 200
    assert http.get("/+api", headers=JSON | basic_auth("bob", "")).json()["result"][
        "authstatus"
    ] == ["ok", "bob", []]


def test_patch_never_claims_a_change_it_did_not_make(http: httpx.Client) -> None:
    current = http.get("/alice", headers=JSON).json()["result"]
    refused = {
        "nothing to change": {},
        "'created' is set by the server": {"created": "2000-01-01T00:00:00Z"},
        "'username' is set by the server": {"username": "mallory"},
        "Unknown keys in user config: colour": {"colour": "red"},
        "password must be a string": {"password": 5},
    }
    for expected, body in refused.items():
        assert expected in message_of(http.patch("/alice", json=body, headers=JSON | ALICE), 400)
    assert http.get("/alice", headers=JSON).json()["result"] == current, "nothing changed"

    echoed = {k: v for k, v in current.items() if k not in ("indexes", "username")}
    changed = http.patch(
        "/alice", json=echoed | {"email": "a@example.invalid"}, headers=JSON | ALICE
    )
    assert message_of(changed, 200) == "user updated"
    after = http.get("/alice", headers=JSON | ALICE).json()["result"]
    same = http.patch("/alice", json={"email": "a@example.invalid"}, headers=JSON | ALICE)
    assert message_of(same, 200) == "user 'alice' unchanged: it has these settings already"
    assert http.get("/alice", headers=JSON | ALICE).json()["result"] == after, "not even modified"

    # A password hash is set as devpi sets it (it was dropped without a word).
    pwhash = PasswordHasher().hash("hashed-pw")
    assert message_of(http.patch("/alice", json={"pwhash": pwhash}, headers=JSON | ALICE), 200)
    assert login_status(http, "alice", "hashed-pw") == 200
    assert login_status(http, "alice", PASSWORD) == 401


# --- item 3: 401 and 403 keep their standard reason phrase ------------------------------------


def test_upload_refusals_say_unauthorized_and_forbidden(
    devpi: Devpi, live_server: ServerProcess, http: httpx.Client, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    devpi.ok("use", f"{live_server.url}/alice/dev")
    printed = devpi.fails("upload", wheel)
    assert "401 FAIL file_upload of demo-1.0-py3-none-any.whl" in printed
    assert "Unauthorized: authentication required to upload" in printed

    content = wheel.read_bytes()
    anonymous = upload(http, "/alice/dev", wheel.name, content, {}, WHEEL_FIELDS)
    assert anonymous.reason_phrase == "Unauthorized: authentication required to upload"
    assert message_of(anonymous, 401) == "authentication required to upload"
    assert anonymous.headers["www-authenticate"] == 'Basic realm="packyard"'
    stranger = upload(http, "/alice/dev", wheel.name, content, BOB, WHEEL_FIELDS)
    assert stranger.reason_phrase == "Forbidden: no permission to submit"
    assert message_of(stranger, 403) == "no permission to submit"
    # JSON clients print "<status> <reason>: <message>": the reason is the standard words.
    accept_json = {"Accept": "application/json"}
    json_anonymous = upload(http, "/alice/dev", wheel.name, content, accept_json, WHEEL_FIELDS)
    assert json_anonymous.reason_phrase == "Unauthorized"
    assert message_of(json_anonymous, 401) == "authentication required to upload"
    refused = http.put("/alice/new", json={}, headers=JSON | BOB)
    assert refused.reason_phrase == "Forbidden"
    other = http.put("/alice/new", json={}, headers=BOB)  # no JSON Accept
    assert other.reason_phrase == "Forbidden: no permission to create index alice/new"
    assert http.get("/alice/dev", headers=JSON).json()["result"]["projects"] == []


# --- item 4: errors in JSON on every devpi API endpoint ----------------------------------------

PATH_VALUES = {
    "user": "nosuchuser",
    "index": "nosuch",
    "project": "nosuch",
    "version": "9.9",
    "relpath": "aaa/bbbbbbbbbbbbbbbb/nosuch-1.0.whl",
    "token_id": "nosuch",
    "exemption_id": "1",
}
ACCEPTS: list[dict[str, str]] = [{}, {"Accept": "*/*"}, {"Accept": "text/plain"}]


def api_requests() -> list[tuple[str, str]]:
    """(method, path) of every route of devpi's API, with path parameters naming nothing."""
    found = []
    for route in routes():
        if isinstance(route, Route) and is_devpi_api_endpoint(route.endpoint):
            path = route.path_format.format(**{k: PATH_VALUES[k] for k in route.param_convertors})
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, path))
    return found


def test_every_devpi_api_endpoint_answers_errors_in_json(http: httpx.Client) -> None:
    """Each route+method of the API, provoked two ways (a missing thing or anonymous, and
    unreadable credentials), with Accept headers that do not ask for JSON."""
    walked = api_requests()
    assert len(walked) >= 25, walked  # the router really was walked
    started = time.monotonic()
    for method, path in walked:
        # devpi's discovery answers for any user name; the rest errs on missing things.
        missing_errs = "nosuch" in path and (method, path) != ("GET", "/nosuchuser/+api")
        for accept in ACCEPTS:
            provocations = [UNREADABLE_CREDENTIALS] + ([{}] if missing_errs else [])
            for extra in provocations:
                response = http.request(method, path, headers=accept | extra, content=b"")
                where = f"{method} {path} {accept} {extra}"
                assert 400 <= response.status_code < 500, (where, response.text)
                assert response.headers["content-type"] == "application/json", where
                assert response.json()["message"], where
    # Anonymous calls on things that exist (writes) are refused in JSON as well.
    for method, path, status in [
        ("POST", "/+logout", 401),
        ("DELETE", "/alice/dev", 403),
        ("PATCH", "/alice", 403),
    ]:
        assert message_of(http.request(method, path, content=b"{}"), status)
    assert time.monotonic() - started < 60
    # The web UI keeps its HTML error pages for browsers.
    page = http.get("/nosuchuser", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    # Simple pages (for installers) are not devpi's JSON API: their errors stay plain.
    simple = http.get("/alice/nosuch/+simple/demo/")
    assert simple.status_code == 404 and simple.headers["content-type"].startswith("text/plain")


def test_toxresult_refusal_is_json_without_a_json_accept(
    http: httpx.Client, tmp_path: Path
) -> None:
    """The issue's example: a 403 on a tox result upload came back text/plain."""
    wheel = build_wheel(tmp_path, "demo", "1.0")
    stored = upload(http, "/alice/dev", wheel.name, wheel.read_bytes(), ALICE, WHEEL_FIELDS)
    assert stored.status_code == 200, stored.text
    version = http.get("/alice/dev/demo/1.0", headers=JSON).json()["result"]
    (link,) = version["+links"]
    relpath = re.sub(r"^https?://[^/]+", "", link["href"])
    http.patch("/alice/dev", json=["acl_toxresult_upload=alice"], headers=JSON | ALICE)
    refused = http.post(relpath, content=json.dumps({"ok": True}).encode(), headers=BOB)
    assert "No permission to upload tox results" in message_of(refused, 403)
    assert refused.reason_phrase.startswith("Forbidden")
    links = http.get("/alice/dev/demo/1.0", headers=JSON).json()["result"]["+links"]
    assert [item["rel"] for item in links] == ["releasefile"], "no tox result stored"
