"""devpi's JSON API, in-process (devpi-protocol.md §2-7, 9, 11)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from packyard.services import Services
from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, basic_auth
from tests.inprocess import (
    ENGINES,
    SIMPLE_JSON_ACCEPT,
    create_index,
    create_user,
    engine_url,
    running_client,
    services_of,
    token_auth,
    upload,
    upload_ok,
)

ROOT_URL = "http://testserver"


def devpi_auth(user: str, token: str) -> dict[str, str]:
    """What devpi-client sends once logged in."""
    return {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode()}


def result_of(response: httpx2.Response, result_type: str, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == result_type
    return body["result"]


def error_of(response: httpx2.Response, status: int) -> str:
    """The `message` of a JSON error, checked to come as devpi-client can show it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message: str = response.json()["message"]
    return message


def login(client: TestClient, user: str, password: str) -> httpx2.Response:
    return client.post("/+login", json={"user": user, "password": password}, headers=JSON)


def authstatus(client: TestClient, headers: dict[str, str]) -> list[Any]:
    status: list[Any] = result_of(client.get("/+api", headers=JSON | headers), "apiconfig")[
        "authstatus"
    ]
    return status


# --- a shared, read-only server --------------------------------------------------------------


@dataclasses.dataclass
class Site:
    """alice/dev (volatile) with demo 1.0 (wheel, sdist) and 2.0 (wheel); alice/prod (bases
    alice/dev) with demo 2.0 rebuilt and 3.0; root/mirror, a non-volatile mirror; bob, a user
    without indexes."""

    client: TestClient
    alice: dict[str, str]
    bob: dict[str, str]
    dev_files: dict[str, Path]
    prod_files: dict[str, Path]


@pytest.fixture(scope="module", params=ENGINES)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("devpi-site")
    with running_client(directory / "server", engine_url(request)) as client:
        alice = create_user(client, "alice")
        bob = create_user(client, "bob")
        create_index(client, "alice", "dev", alice)
        create_index(client, "alice", "prod", alice, bases="alice/dev")
        dev = [
            build_wheel(directory / "dev", "demo", "1.0"),
            build_sdist(directory / "dev", "demo", "1.0"),
            build_wheel(directory / "dev", "demo", "2.0"),
        ]
        prod = [
            build_wheel(directory / "prod", "demo", "2.0", payload="# rebuilt\n"),
            build_wheel(directory / "prod", "demo", "3.0"),
        ]
        for index, paths in (("alice/dev", dev), ("alice/prod", prod)):
            for path in paths:
                upload_ok(client, index, path, alice)
        mirror = {"type": "mirror", "mirror_url": "http://up.invalid/simple/", "volatile": False}
        create_index(client, "root", "mirror", token_auth(client, "root"), **mirror)
        yield Site(client, alice, bob, {p.name: p for p in dev}, {p.name: p for p in prod})


@pytest.fixture(params=ENGINES)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """A fresh server per test, as conftest's `client` but without hashing root's password
    (argon2 is slow on purpose; this module starts many servers)."""
    with running_client(tmp_path / "server", engine_url(request)) as client:
        yield client


# --- discovery and headers -------------------------------------------------------------------


def test_root_api_discovery(site: Site) -> None:
    result = result_of(site.client.get("/+api", headers=JSON), "apiconfig")
    assert result["login"] == f"{ROOT_URL}/+login"
    assert result["authstatus"] == ["noauth", "", []]
    assert "server-keyvalue-parsing" in result["features"]
    assert "pypisubmit" not in result
    assert authstatus(site.client, site.alice) == ["ok", "alice", []]


def test_unknown_user_api_answers_the_root_form(site: Site) -> None:
    result = result_of(site.client.get("/nobody/+api", headers=JSON), "apiconfig")
    assert result["login"] == f"{ROOT_URL}/+login"
    assert "index" not in result


def test_index_api_discovery(site: Site) -> None:
    result = result_of(site.client.get("/alice/dev/+api", headers=JSON), "apiconfig")
    assert result["index"] == f"{ROOT_URL}/alice/dev"
    assert result["simpleindex"] == f"{ROOT_URL}/alice/dev/+simple/"
    assert result["pypisubmit"] == f"{ROOT_URL}/alice/dev/"
    assert result["login"] == f"{ROOT_URL}/+login"


def test_mirror_api_has_no_upload_url(site: Site) -> None:
    result = result_of(site.client.get("/root/mirror/+api", headers=JSON), "apiconfig")
    assert result["simpleindex"] == f"{ROOT_URL}/root/mirror/+simple/"
    assert "pypisubmit" not in result


def test_unknown_index_api_is_404_with_message(site: Site) -> None:
    message = error_of(site.client.get("/alice/nope/+api", headers=JSON), 404)
    assert message == "The stage alice/nope could not be found."


@pytest.mark.parametrize(
    ("method", "path", "accept"),
    [
        ("GET", "/+api", JSON),
        ("GET", "/", JSON),
        ("GET", "/alice", JSON),
        ("GET", "/alice/dev", JSON),
        ("GET", "/alice/dev/demo", JSON),
        ("GET", "/alice/dev/demo/1.0", JSON),
        ("GET", "/alice/nope", JSON),
        ("DELETE", "/alice/dev", JSON),
        ("GET", "/alice/dev/+simple/demo/", SIMPLE_JSON_ACCEPT),
        ("GET", "/alice/dev/+simple/nothing/", SIMPLE_JSON_ACCEPT),
        ("GET", "/alice/dev/+simple/", {"Accept": "application/xml"}),
    ],
)
def test_every_response_carries_devpi_headers(
    site: Site, method: str, path: str, accept: dict[str, str]
) -> None:
    response = site.client.request(method, path, headers=accept)
    assert response.headers["x-devpi-api-version"] == "2"
    serial = int(response.headers["x-devpi-serial"])
    assert serial >= 10  # root, alice, three indexes and five uploads were written


@pytest.mark.parametrize(
    "path", ["/+api", "/", "/alice", "/alice/dev", "/alice/dev/demo", "/alice/nope", "/nobody"]
)
def test_api_responses_are_exactly_application_json(site: Site, path: str) -> None:
    response = site.client.get(path, headers=JSON)
    assert response.headers["content-type"] == "application/json"
    assert response.text.endswith("\n")
    assert isinstance(response.json(), dict)


def test_serial_header_moves_with_each_change(client: TestClient, tmp_path: Path) -> None:
    before = int(client.get("/+api").headers["x-devpi-serial"])
    auth = create_user(client, "alice")
    after_user = int(client.get("/+api").headers["x-devpi-serial"])
    create_index(client, "alice", "dev", auth)
    response = upload(client, "alice/dev", build_wheel(tmp_path, "demo", "1.0"), auth)
    assert response.status_code == 200
    assert after_user == before + 1
    assert int(response.headers["x-devpi-serial"]) == before + 3


# --- users -----------------------------------------------------------------------------------


def test_create_user_with_a_password(client: TestClient) -> None:
    body = {"password": "secret", "email": "alice@example.invalid", "title": "Alice"}
    result = result_of(client.put("/alice", json=body, headers=JSON), "userconfig", 201)
    assert result["username"] == "alice"
    assert result["email"] == "alice@example.invalid"
    assert result["indexes"] == {}
    assert result["created"].endswith("Z")
    assert not {"password", "pwhash", "pwsalt"} & set(result)
    token = result_of(login(client, "alice", "secret"), "proxyauth")
    assert token["expiration"] == 36000
    assert "secret" not in client.get("/alice", headers=JSON).text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"password": "x"}, 409, "user already exists"),
        ({"email": "a@example.invalid"}, 400, "password needs to be set"),
        ({"password": "x", "colour": "red"}, 400, "Unknown keys in user config: colour"),
    ],
)
def test_create_user_errors(site: Site, body: dict[str, Any], status: int, message: str) -> None:
    response = site.client.put("/alice", json=body, headers=JSON)
    assert error_of(response, status) == message


@pytest.mark.parametrize("name", ["al!ce", "al ce", "al:ce", "al,ce", "al$", "al(ce)"])
def test_invalid_user_names_are_refused(site: Site, name: str) -> None:
    response = site.client.put(f"/{name}", json={"password": "x"}, headers=JSON)
    assert "contains characters that aren't allowed" in error_of(response, 400)
    assert name not in site.client.get("/", headers=JSON).json()["result"]


def test_login_and_every_way_to_send_credentials(client: TestClient) -> None:
    auth = create_user(client, "alice")
    assert authstatus(client, auth) == ["ok", "alice", []]
    token = result_of(login(client, "alice", "alicepw"), "proxyauth")["password"]
    assert login(client, "alice", "alicepw").json()["message"] == "login successful"
    assert authstatus(client, devpi_auth("alice", token)) == ["ok", "alice", []]
    assert authstatus(client, basic_auth("alice", token)) == ["ok", "alice", []]
    assert authstatus(client, basic_auth("alice", "alicepw")) == ["ok", "alice", []]


@pytest.mark.parametrize(
    ("user", "password", "status"),
    [("alice", "wrong", 401), ("nobody", "alicepw", 401), ("", "x", 400)],
)
def test_failed_login(site: Site, user: str, password: str, status: int) -> None:
    message = error_of(login(site.client, user, password), status)
    assert "alicepw" not in message


def test_login_with_a_body_that_is_not_json(site: Site) -> None:
    response = site.client.post("/+login", content=b"{nope", headers=JSON)
    assert error_of(response, 400) == "Bad request: could not decode json"


def _tampered(token: str) -> str:
    """The token with one character of its signature changed (not the last one: its low
    bits are base64 padding and may decode to the same signature)."""
    position = len(token) - 8
    changed = "A" if token[position] != "A" else "B"
    return token[:position] + changed + token[position + 1 :]


@pytest.mark.parametrize(
    "headers",
    [
        lambda token: devpi_auth("alice", _tampered(token)),
        lambda token: basic_auth("alice", _tampered(token)),
        lambda token: devpi_auth("bob", token),
        lambda token: {"X-Devpi-Auth": "not base64!"},
    ],
    ids=["tampered-devpi", "tampered-basic", "other-user", "garbage"],
)
def test_bad_credentials_are_refused_not_anonymous(site: Site, headers: Any) -> None:
    token = site.client.app.state.services.accounts.issue_token("alice").token  # type: ignore[attr-defined]
    sent = headers(token)
    for response in (
        site.client.get("/+api", headers=JSON | sent),
        site.client.patch("/alice/dev", json=["title=x"], headers=JSON | sent),
    ):
        assert error_of(response, 401)
        assert response.headers["www-authenticate"] == 'Basic realm="packyard"'


def test_modify_user_accepts_what_devpi_client_echoes(client: TestClient) -> None:
    auth = create_user(client, "alice")
    current = result_of(client.get("/alice", headers=JSON), "userconfig")
    body = {k: v for k, v in current.items() if k not in ("indexes", "username")}
    body["email"] = "new@example.invalid"
    response = client.patch("/alice", json=body, headers=JSON | auth)
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "user updated"
    result = result_of(client.get("/alice", headers=JSON | auth), "userconfig")
    assert result["email"] == "new@example.invalid"
    assert result["created"] == current["created"]
    assert "modified" in result
    response = client.patch("/alice", json={"email": ""}, headers=JSON | auth)
    assert response.status_code == 200, response.text
    assert "email" not in result_of(client.get("/alice", headers=JSON), "userconfig")


def test_modify_other_user_is_forbidden(client: TestClient) -> None:
    create_user(client, "alice")
    bob = create_user(client, "bob")
    response = client.patch("/alice", json={"email": "x@example.invalid"}, headers=JSON | bob)
    error_of(response, 403)
    anonymous = client.patch("/alice", json={"email": "x@example.invalid"}, headers=JSON)
    assert anonymous.status_code in (401, 403)


def test_password_change_returns_a_new_token(client: TestClient) -> None:
    auth = create_user(client, "alice")
    assert authstatus(client, basic_auth("alice", "alicepw")) == ["ok", "alice", []]
    response = client.patch("/alice", json={"password": "changed"}, headers=JSON | auth)
    result = result_of(response, "userpassword")
    assert response.json()["message"] == "user updated, new proxy auth"
    assert result["expiration"] == 36000
    assert authstatus(client, devpi_auth("alice", result["password"])) == ["ok", "alice", []]
    assert login(client, "alice", "alicepw").status_code == 401
    for stale in (basic_auth("alice", "alicepw"), auth):  # the old password, the old token
        assert client.get("/+api", headers=JSON | stale).status_code == 401
    assert login(client, "alice", "changed").status_code == 200


def test_delete_user(client: TestClient) -> None:
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    bob = create_user(client, "bob")
    error_of(client.delete("/alice", headers=JSON | bob), 403)
    response = client.delete("/alice", headers=JSON | auth)
    assert response.status_code == 200
    assert response.json()["message"] == "user 'alice' deleted"
    assert error_of(client.get("/alice", headers=JSON), 404) == "user 'alice' does not exist"
    assert client.get("/alice/dev", headers=JSON).status_code == 404


def test_user_with_a_non_volatile_index_cannot_be_deleted(client: TestClient) -> None:
    auth = create_user(client, "alice")
    create_index(client, "alice", "prod", auth, volatile=False)
    message = error_of(client.delete("/alice", headers=JSON | auth), 403)
    assert message == "user 'alice' has non-volatile index: prod"


def test_list_users_with_their_indexes(site: Site) -> None:
    result = result_of(
        site.client.request("GET", "/", headers=JSON, content=b"{}"), "list:userconfig"
    )
    assert set(result) == {"root", "alice", "bob"}
    assert result["bob"]["indexes"] == {}
    assert set(result["alice"]["indexes"]) == {"dev", "prod"}
    assert result["alice"]["indexes"]["prod"]["bases"] == ["alice/dev"]
    assert result["root"]["indexes"]["mirror"]["type"] == "mirror"
    assert all("pwhash" not in user for user in result.values())


# --- indexes ---------------------------------------------------------------------------------


def test_create_index_from_strings_with_defaults(client: TestClient) -> None:
    auth = create_user(client, "alice")
    create_index(client, "alice", "base", auth)
    response = client.put(
        "/alice/dev", json={"bases": "alice/base", "volatile": "True"}, headers=JSON | auth
    )
    assert result_of(response, "indexconfig") == {
        "type": "stage",
        "bases": ["alice/base"],
        "volatile": True,
        "acl_upload": ["alice"],
        "acl_toxresult_upload": [":ANONYMOUS:"],
        "acl_read": [":ANONYMOUS:"],
        "mirror_whitelist": [],
        "mirror_whitelist_inheritance": "intersection",
    }
    response = client.put("/alice/prod", json={"volatile": "no"}, headers=JSON | auth)
    assert result_of(response, "indexconfig")["volatile"] is False


@pytest.mark.parametrize(
    ("path", "body", "who", "status", "message"),
    [
        (
            "/alice/new",
            {"bases": "alice/nope"},
            "alice",
            400,
            "base index 'alice/nope' does not exist",
        ),
        ("/alice/dev", {}, "alice", 409, "index 'alice/dev' exists"),
        ("/root/new", {}, "alice", 403, "no permission to create index root/new"),
        ("/alice/new", {}, None, 403, "no permission to create index alice/new"),
        (
            "/alice/new",
            {"colour": "red"},
            "alice",
            400,
            "indexconfig got unexpected keyword arguments: colour=red",
        ),
        (
            "/alice/new",
            {"volatile": "maybe"},
            "alice",
            400,
            "volatile must be true or false, not 'maybe'",
        ),
        (
            # No mirror_url: it defaults to pip's index (issue 14), which only root may mirror.
            "/alice/new",
            {"type": "mirror"},
            "alice",
            403,
            "only root may create a mirror index or change its mirror_url (root can allow"
            " users with the setting users_create_mirrors)",
        ),
        ("/alice/new", {"type": "weird"}, "alice", 400, "unknown index type 'weird'"),
    ],
    ids=[
        "no-base",
        "exists",
        "other-namespace",
        "anonymous",
        "unknown-key",
        "bad-bool",
        "mirror-url",
        "type",
    ],
)
def test_create_index_errors(
    site: Site, path: str, body: dict[str, Any], who: str | None, status: int, message: str
) -> None:
    headers = JSON | (site.alice if who else {})
    assert error_of(site.client.put(path, json=body, headers=headers), status) == message
    assert site.client.get("/alice/new", headers=JSON).status_code == 404


def test_bases_cycle_is_refused(site: Site) -> None:
    response = site.client.patch("/alice/dev", json=["bases=alice/prod"], headers=JSON | site.alice)
    assert "inherit from itself" in error_of(response, 400)
    response = site.client.patch("/alice/dev", json=["bases=alice/dev"], headers=JSON | site.alice)
    assert "inherit from itself" in error_of(response, 400)
    assert result_of(site.client.get("/alice/dev", headers=JSON), "indexconfig")["bases"] == []


def test_index_config_lists_own_projects_unless_asked_not_to(site: Site) -> None:
    result = result_of(site.client.get("/alice/dev", headers=JSON), "indexconfig")
    assert result["projects"] == ["demo"]
    result = result_of(site.client.get("/alice/dev?no_projects=", headers=JSON), "indexconfig")
    assert "projects" not in result
    assert result["acl_upload"] == ["alice"]


def _patch(client: TestClient, auth: dict[str, str], body: Any) -> dict[str, Any]:
    result: dict[str, Any] = result_of(
        client.patch("/alice/dev", json=body, headers=JSON | auth), "indexconfig"
    )
    assert result == result_of(client.get("/alice/dev?no_projects=", headers=JSON), "indexconfig")
    return result


def test_patch_index_with_operations(client: TestClient) -> None:
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth, title="Dev")
    create_index(client, "alice", "base", auth)
    assert _patch(client, auth, ["volatile=False"])["volatile"] is False
    assert _patch(client, auth, ["acl_upload+=bob", "acl_upload+=bob"])["acl_upload"] == [
        "alice",
        "bob",
    ]
    assert _patch(client, auth, ["acl_upload-=alice"])["acl_upload"] == ["bob"]
    assert _patch(client, auth, ["mirror_whitelist+=Foo_Bar"])["mirror_whitelist"] == ["foo-bar"]
    assert _patch(client, auth, ["bases=alice/base"])["bases"] == ["alice/base"]
    assert "title" not in _patch(client, auth, ["title-="])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["acl_upload-=nobody"], "The 'acl_upload' setting doesn't have value 'nobody'"),
        (["acl_upload-="], "Default values can't be removed."),
        (["volatile"], "invalid setting 'volatile': use key=value, key+=value or key-=value"),
        (["colour=red"], "indexconfig got unexpected keyword arguments: colour=red"),
        (["type=mirror"], "the 'type' of an index can't be changed"),
        ({"type": "mirror"}, "the 'type' of an index can't be changed"),
    ],
)
def test_patch_index_errors(site: Site, body: Any, message: str) -> None:
    before = site.client.get("/alice/dev?no_projects=", headers=JSON).json()
    response = site.client.patch("/alice/dev", json=body, headers=JSON | site.alice)
    assert error_of(response, 400) == message
    assert site.client.get("/alice/dev?no_projects=", headers=JSON).json() == before


def test_patch_index_with_a_full_dict(client: TestClient) -> None:
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    current = result_of(client.get("/alice/dev", headers=JSON), "indexconfig")
    changed = current | {"volatile": False, "title": "Development", "acl_upload": "alice,bob"}
    result = _patch(client, auth, changed)
    assert result["volatile"] is False
    assert result["title"] == "Development"
    assert result["acl_upload"] == ["alice", "bob"]
    assert "projects" not in result
    wrapped = {"type": "indexconfig", "result": {"title": "Wrapped"}}
    assert _patch(client, auth, wrapped)["title"] == "Wrapped"
    assert _patch(client, auth, {"description": "only this"})["title"] == "Wrapped"


def test_patch_index_needs_permission(site: Site) -> None:
    response = site.client.patch("/alice/dev", json=["title=x"], headers=JSON | site.bob)
    assert error_of(response, 403) == "no permission to modify index alice/dev"
    error_of(site.client.patch("/alice/dev", json=["title=x"], headers=JSON), 403)
    assert "title" not in site.client.get("/alice/dev", headers=JSON).json()["result"]


def test_error_on_noop(site: Site) -> None:
    response = site.client.patch(
        "/alice/dev?error_on_noop=", json=["volatile=True"], headers=JSON | site.alice
    )
    assert error_of(response, 400) == "The requested modifications resulted in no changes"


def test_delete_index(client: TestClient, tmp_path: Path) -> None:
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    upload_ok(client, "alice/dev", build_wheel(tmp_path, "demo", "1.0"), auth)
    response = client.delete("/alice/dev", headers=JSON | auth)
    assert response.status_code == 201
    assert response.json()["message"] == "index alice/dev deleted"
    assert client.get("/alice/dev", headers=JSON).status_code == 404
    assert client.get("/alice/dev/+simple/demo/").status_code == 404


def test_non_volatile_index_cannot_be_deleted(site: Site) -> None:
    response = site.client.delete("/root/mirror", headers=JSON | token_auth(site.client, "root"))
    assert error_of(response, 403) == "index root/mirror non-volatile, cannot delete"
    anonymous = site.client.delete("/alice/dev", headers=JSON)
    error_of(anonymous, 403)
    assert site.client.get("/alice/dev", headers=JSON).status_code == 200


# --- JSON views of projects and versions -----------------------------------------------------


def test_project_view_merges_bases(site: Site) -> None:
    result = result_of(site.client.get("/alice/prod/demo", headers=JSON), "projectconfig")
    assert sorted(result) == ["1.0", "2.0", "3.0"]
    assert len(result["2.0"]["+shadowing"]) == 1
    own = site.client.get("/alice/prod/demo/?ignore_bases=", headers=JSON)
    assert sorted(result_of(own, "projectconfig")) == ["2.0", "3.0"]


def test_project_view_normalizes_the_name(site: Site) -> None:
    result = result_of(site.client.get("/alice/dev/Demo", headers=JSON), "projectconfig")
    assert sorted(result) == ["1.0", "2.0"]


def test_version_view(site: Site) -> None:
    result = result_of(site.client.get("/alice/dev/demo/1.0", headers=JSON), "versiondata")
    assert result["name"] == "demo"
    assert result["version"] == "1.0"
    assert result["summary"] == "a test package"
    assert result["classifiers"] == []
    links = {link["href"].rsplit("/", 1)[-1]: link for link in result["+links"]}
    assert set(links) == {"demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"}
    for filename, link in links.items():
        data = site.dev_files[filename].read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert link["rel"] == "releasefile"
        assert link["href"].startswith(f"{ROOT_URL}/alice/dev/+f/{digest[:3]}/{digest[3:16]}/")
        assert link["hash_spec"] == f"sha256={digest}"
        assert link["hashes"] == {"sha256": digest}
        (entry,) = link["log"]
        assert entry["what"] == "upload"
        assert entry["who"] == "alice"
        assert entry["dst"] == "alice/dev"
        assert len(entry["when"]) == 6
        assert site.client.get(link["href"]).content == data


def test_version_view_of_a_base_version_links_into_the_base(site: Site) -> None:
    result = result_of(site.client.get("/alice/prod/demo/1.0", headers=JSON), "versiondata")
    assert all(link["href"].startswith(f"{ROOT_URL}/alice/dev/+f/") for link in result["+links"])
    missing = site.client.get("/alice/prod/demo/1.0?ignore_bases=", headers=JSON)
    assert error_of(missing, 404) == "The version 1.0 of project demo does not exist."


def test_version_view_honours_outside_url(site: Site) -> None:
    headers = JSON | {"X-Outside-Url": "https://pkgs.example.invalid/prefix"}
    result = result_of(site.client.get("/alice/dev/demo/2.0", headers=headers), "versiondata")
    (link,) = result["+links"]
    assert link["href"].startswith("https://pkgs.example.invalid/prefix/alice/dev/+f/")


@pytest.mark.parametrize(
    "path", ["/alice/dev/nope", "/alice/dev/demo/9.9", "/alice/nope/demo", "/nobody/dev/demo/1.0"]
)
def test_json_views_404(site: Site, path: str) -> None:
    error_of(site.client.get(path, headers=JSON), 404)


# --- deleting --------------------------------------------------------------------------------


@dataclasses.dataclass
class Stocked:
    auth: dict[str, str]
    wheel: Path
    sdist: Path
    wheel2: Path


@pytest.fixture
def stocked(client: TestClient, tmp_path: Path) -> Stocked:
    """alice/dev (volatile) and alice/prod (not) each holding demo 1.0 (wheel, sdist), 2.0."""
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    create_index(client, "alice", "prod", auth, volatile=False)
    wheel = build_wheel(tmp_path, "demo", "1.0")
    sdist = build_sdist(tmp_path, "demo", "1.0")
    wheel2 = build_wheel(tmp_path, "demo", "2.0")
    for index in ("alice/dev", "alice/prod"):
        for path in (wheel, sdist, wheel2):
            upload_ok(client, index, path, auth)
    return Stocked(auth, wheel, sdist, wheel2)


def _versions(client: TestClient, index: str) -> list[str]:
    response = client.get(f"/{index}/demo?ignore_bases=", headers=JSON)
    if response.status_code == 404:
        return []
    return sorted(result_of(response, "projectconfig"))


def _file_path(client: TestClient, index: str, filename: str) -> str:
    versions = result_of(client.get(f"/{index}/demo", headers=JSON), "projectconfig")
    for data in versions.values():
        for link in data["+links"]:
            if link["href"].endswith(f"/{filename}"):
                return str(link["href"]).removeprefix(ROOT_URL)
    raise AssertionError(f"{filename} not on {index}")


def test_delete_version_on_volatile_index(client: TestClient, stocked: Stocked) -> None:
    response = client.delete("/alice/dev/demo/1.0", headers=JSON | stocked.auth)
    assert response.status_code == 200
    assert "version '1.0' deleted" in response.json()["message"]
    assert _versions(client, "alice/dev") == ["2.0"]
    assert error_of(client.delete("/alice/dev/demo/1.0", headers=JSON | stocked.auth), 404)


def test_delete_on_non_volatile_index_needs_force(client: TestClient, stocked: Stocked) -> None:
    headers = JSON | stocked.auth
    message = error_of(client.delete("/alice/prod/demo/1.0", headers=headers), 403)
    assert message == "cannot delete version on non-volatile index"
    message = error_of(client.delete("/alice/prod/demo", headers=headers), 403)
    assert message == "project 'demo' is on non-volatile index alice/prod"
    file_path = _file_path(client, "alice/prod", stocked.sdist.name)
    error_of(client.delete(file_path, headers=headers), 403)
    assert _versions(client, "alice/prod") == ["1.0", "2.0"]
    assert client.delete("/alice/prod/demo/1.0?force=", headers=headers).status_code == 200
    assert _versions(client, "alice/prod") == ["2.0"]
    assert client.delete("/alice/prod/demo?force=", headers=headers).status_code == 200
    assert _versions(client, "alice/prod") == []
    message = error_of(client.delete("/alice/prod", headers=headers), 403)
    assert message == "index alice/prod non-volatile, cannot delete"


def test_delete_needs_permission(client: TestClient, stocked: Stocked) -> None:
    bob = create_user(client, "bob")
    error_of(client.delete("/alice/dev/demo/1.0", headers=JSON | bob), 403)
    assert client.delete("/alice/dev/demo/1.0", headers=JSON).status_code == 401
    error_of(client.delete("/alice/dev/demo", headers=JSON | bob), 403)
    assert _versions(client, "alice/dev") == ["1.0", "2.0"]


def test_delete_project(client: TestClient, stocked: Stocked) -> None:
    response = client.delete("/alice/dev/demo", headers=JSON | stocked.auth)
    assert response.status_code == 200
    assert response.json()["message"] == "project demo deleted from stage alice/dev"
    assert _versions(client, "alice/dev") == []
    assert client.get("/alice/dev/+simple/demo/").status_code == 404
    message = error_of(client.delete("/alice/dev/demo", headers=JSON | stocked.auth), 404)
    assert message == "project not found"


def test_delete_file(client: TestClient, stocked: Stocked) -> None:
    path = _file_path(client, "alice/dev", stocked.sdist.name)
    response = client.delete(path, headers=JSON | stocked.auth)
    assert response.status_code == 200
    assert response.json()["message"] == f"package '{path.lstrip('/')}' deleted"
    assert client.get(path).status_code == 404
    assert client.delete(path, headers=JSON | stocked.auth).status_code == 404
    version = result_of(client.get("/alice/dev/demo/1.0", headers=JSON), "versiondata")
    assert [link["href"].rsplit("/", 1)[-1] for link in version["+links"]] == [stocked.wheel.name]
    wheel_path = _file_path(client, "alice/dev", stocked.wheel.name)
    assert client.delete(wheel_path, headers=JSON | stocked.auth).status_code == 200
    assert _versions(client, "alice/dev") == ["2.0"]


def test_delete_missing_things_is_404(client: TestClient, stocked: Stocked) -> None:
    for path in (
        "/alice/dev/nope/1.0",
        "/alice/dev/demo/9.9",
        "/alice/dev/nope",
        "/alice/dev/+f/abc/def0123456789/demo-1.0.tar.gz",
        "/alice/nope/demo",
        "/alice/nope/demo/1.0",
    ):
        error_of(client.delete(path, headers=JSON | stocked.auth), 404)
    assert _versions(client, "alice/dev") == ["1.0", "2.0"]


def _blob(services: Services, path: Path) -> Path:
    return services.blobs.path(hashlib.sha256(path.read_bytes()).hexdigest())


def test_deleting_the_last_version_removes_project_and_unshared_blobs(
    client: TestClient, tmp_path: Path
) -> None:
    services = services_of(client)
    auth = create_user(client, "alice")
    create_index(client, "alice", "dev", auth)
    create_index(client, "alice", "other", auth)
    shared = build_wheel(tmp_path, "demo", "1.0")
    alone = build_sdist(tmp_path, "demo", "1.0")
    upload_ok(client, "alice/dev", shared, auth)
    upload_ok(client, "alice/dev", alone, auth)
    upload_ok(client, "alice/other", shared, auth)
    metadata_url = _file_path(client, "alice/dev", shared.name) + ".metadata"
    metadata_blob = services.blobs.path(
        hashlib.sha256(client.get(metadata_url).content).hexdigest()
    )
    assert _blob(services, shared).is_file()
    assert _blob(services, alone).is_file()
    assert metadata_blob.is_file()

    assert client.delete("/alice/dev/demo/1.0", headers=JSON | auth).status_code == 200
    listed = client.get("/alice/dev/+simple/", headers=SIMPLE_JSON_ACCEPT).json()["projects"]
    assert listed == []
    assert not _blob(services, alone).exists()
    assert _blob(services, shared).is_file()
    assert metadata_blob.is_file()
    assert client.get(_file_path(client, "alice/other", shared.name)).content == shared.read_bytes()

    assert client.delete("/alice/other/demo/1.0", headers=JSON | auth).status_code == 200
    assert not _blob(services, shared).exists()
    assert not metadata_blob.exists()
    assert list(services.blobs.temp_dir.iterdir()) == []


def test_project_json_names_the_index_each_version_comes_from(
    client: TestClient, tmp_path: Path
) -> None:
    """The whitelist made visible: which index (base) serves which version."""
    auth = token_auth(client, "root")
    create_index(client, "root", "srcbase", auth)
    create_index(client, "root", "srcdev", auth, bases="root/srcbase")
    upload_ok(client, "root/srcbase", build_wheel(tmp_path / "a", "sourced", "1.0"), auth)
    upload_ok(client, "root/srcdev", build_wheel(tmp_path / "b", "sourced", "2.0"), auth)
    versions = result_of(client.get("/root/srcdev/sourced", headers=JSON), "projectconfig")
    assert {v: data["+index"] for v, data in versions.items()} == {
        "1.0": "root/srcbase",
        "2.0": "root/srcdev",
    }
