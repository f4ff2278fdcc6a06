"""Scoped API tokens against the real server process on loopback, driven by real clients
(twine, uv publish, pip, uv pip, the packyard client, the devpi client): what a token may do
within its scope, what it is refused outside it (403 before any endpoint runs), and that a
revoked, expired or orphaned token is 401. Plus the scope classification as a table test."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route

from packyard.core.tokens import Action, Need, TokenScope, parse_token
from packyard.errors import Unauthenticated
from packyard.services import Services
from packyard.services.tokens import ApiTokens, TokenRequest
from packyard.storage import token_store
from packyard.web.app import routes
from packyard.web.scopes import classify
from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess, basic_auth, tool
from tests.devpi_client import Devpi
from tests.devpi_client import devpi_executable as devpi_executable  # a fixture
from tests.e2e_support import (
    PASSWORD,
    assert_succeeded,
    create_index,
    create_user,
    print_log_if_failed,
    run_tool,
    running_server,
    simple_files,
    upload,
)
from tests.packyard_cli import Packyard

pytestmark = pytest.mark.e2e

PROJECT = "tokened-demo"
MODULE = "tokened_demo"
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("tokens")) as started:
        with httpx.Client(base_url=started.url, timeout=60) as client:
            create_user(client, "alice")
            for index in ("dev", "other"):
                create_index(client, "alice", index, volatile=True)
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:  # the pure tests below start no server
        print_log_if_failed(request, request.getfixturevalue("server"))


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as made:
        yield made


def make_token(
    client: httpx.Client,
    indexes: list[str],
    actions: list[str],
    user: str = "alice",
    password: str = PASSWORD,
    **extra: Any,
) -> str:
    body = {"indexes": indexes, "actions": actions, **extra}
    response = client.post(f"/{user}/+tokens", json=body, headers=JSON | basic_auth(user, password))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    text: str = response.json()["result"]["token"]
    return text


def as_token(token: str) -> dict[str, str]:
    return basic_auth("__token__", token)


def twine(server: ServerProcess, index: str, token: str, *files: Path) -> Any:
    return run_tool([
        tool("twine"), "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", f"{server.url}/{index}/", "-u", "__token__", "-p", token, *files,
    ])  # fmt: skip


def projects_of(client: httpx.Client, index: str) -> list[str]:
    response = client.get(f"/{index}", headers=JSON)
    assert response.status_code == 200, response.text
    names: list[str] = response.json()["result"]["projects"]
    return names


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("dists")
    return [build_wheel(directory, PROJECT, "1.0"), build_sdist(directory, PROJECT, "1.0")]


@pytest.fixture(scope="module")
def upload_token(server: ServerProcess) -> str:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return make_token(client, ["alice/dev"], ["upload"], description="CI upload")


@pytest.fixture(scope="module")
def twine_uploaded(server: ServerProcess, upload_token: str, dists: list[Path]) -> list[Path]:
    assert_succeeded(twine(server, "alice/dev", upload_token, *dists))
    return dists


# --- uploads with an upload-scoped token ------------------------------------------------------


def test_twine_uploads_with_an_upload_token_as_user_token(
    client: httpx.Client, twine_uploaded: list[Path]
) -> None:
    listed = {entry.url.rsplit("/", 1)[-1] for entry in simple_files(client, "/alice/dev", PROJECT)}
    assert listed == {path.name for path in twine_uploaded}


def test_uv_publish_uploads_with_an_upload_token(
    server: ServerProcess, client: httpx.Client, upload_token: str, tmp_path: Path
) -> None:
    published = [
        build_wheel(tmp_path, "uv-tokened", "0.1"),
        build_sdist(tmp_path, "uv-tokened", "0.1"),
    ]
    result = run_tool([
        tool("uv"), "publish", "--no-config", "--publish-url", f"{server.url}/alice/dev/",
        "--token", upload_token, *published,
    ])  # fmt: skip
    assert_succeeded(result)
    assert "uv-tokened" in projects_of(client, "alice/dev")


def test_the_upload_token_cannot_upload_elsewhere_delete_or_manage_the_account(
    server: ServerProcess,
    client: httpx.Client,
    upload_token: str,
    twine_uploaded: list[Path],
    tmp_path: Path,
) -> None:
    other = [build_wheel(tmp_path, "elsewhere", "1.0")]
    refused = twine(server, "alice/other", upload_token, *other)
    printed = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0
    assert "403" in printed and "may not upload to index alice/other" in printed
    assert projects_of(client, "alice/other") == []  # nothing stored

    headers = as_token(upload_token) | JSON
    wheel = twine_uploaded[0].name
    file_url = next(e.url for e in simple_files(client, "/alice/dev", PROJECT) if wheel in e.url)
    attempts = {
        "delete a file": client.delete(file_url.split("#")[0], headers=headers),
        "delete a version": client.delete(f"/alice/dev/{PROJECT}/1.0", headers=headers),
        "yank": client.patch(f"/alice/dev/{PROJECT}/1.0", json={"yanked": True}, headers=headers),
        "delete the index": client.delete("/alice/dev", headers=headers),
        "read another index": client.get("/alice/other/+simple/", headers=as_token(upload_token)),
        "create a token": client.post(
            "/alice/+tokens", json={"indexes": ["*"], "actions": ["admin"]}, headers=headers
        ),
        "list tokens": client.get("/alice/+tokens", headers=headers),
        "change the password": client.patch("/alice", json={"password": "x"}, headers=headers),
        "log out": client.post("/+logout", headers=headers),
        "create a user": client.put("/eve", json={"password": "x"}, headers=headers),
    }
    for what, response in attempts.items():
        assert response.status_code == 403, (what, response.status_code, response.text)
        assert "API token" in response.text, what
    # Logging in with it mints no login token either.
    login = client.post(
        "/+login", json={"user": "__token__", "password": upload_token}, headers=JSON
    )
    assert login.status_code == 401
    assert len(simple_files(client, "/alice/dev", PROJECT)) == len(twine_uploaded)


def test_the_owner_name_and_the_devpi_header_work_like_user_token(
    client: httpx.Client, upload_token: str, tmp_path: Path
) -> None:
    import base64

    wheel = build_wheel(tmp_path, "owner-named", "1.0")
    fields = {"name": "owner-named", "version": "1.0"}
    as_owner = basic_auth("alice", upload_token)
    devpi_header = {"X-Devpi-Auth": base64.b64encode(f"alice:{upload_token}".encode()).decode()}
    for n, headers in enumerate((as_owner, devpi_header)):
        built = build_wheel(tmp_path / str(n), "owner-named", f"1.{n}")
        fields["version"] = f"1.{n}"
        response = upload(client, "/alice/dev", built.name, built.read_bytes(), headers, fields)
        assert response.status_code == 200, response.text
    # Another user's name with alice's token: refused.
    refused = upload(
        client, "/alice/dev", wheel.name, wheel.read_bytes(), basic_auth("root", upload_token),
        fields,
    )  # fmt: skip
    assert refused.status_code == 401


# --- reads with a read-scoped token -----------------------------------------------------------


def test_pip_and_uv_install_with_a_read_token_in_the_index_url(
    server: ServerProcess, client: httpx.Client, twine_uploaded: list[Path], tmp_path: Path
) -> None:
    token = make_token(client, ["alice/dev"], ["read"])
    url = f"http://__token__:{token}@127.0.0.1:{server.port}/alice/dev/+simple/"
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps"]
    assert_succeeded(run_tool([*pip, "--target", tmp_path / "pip", "--index-url", url, PROJECT]))
    assert (tmp_path / "pip" / MODULE / "__init__.py").is_file()
    uv = [tool("uv"), "pip", "install", "--no-config", "--no-cache", "--python", sys.executable]
    assert_succeeded(run_tool([*uv, "--target", tmp_path / "uv", "--index-url", url, PROJECT]))
    assert (tmp_path / "uv" / MODULE / "__init__.py").is_file()
    # The same token reads no other index, and uploads nothing.
    other = client.get("/alice/other/+simple/", headers=as_token(token))
    assert other.status_code == 403
    wheel = build_wheel(tmp_path, "read-only", "1.0")
    fields = {"name": "read-only", "version": "1.0"}
    refused = upload(client, "/alice/dev", wheel.name, wheel.read_bytes(), as_token(token), fields)
    assert refused.status_code == 403
    assert "read-only" not in projects_of(client, "alice/dev")


# --- the end of a token -----------------------------------------------------------------------


def test_a_revoked_token_is_refused_at_once(client: httpx.Client) -> None:
    token = make_token(client, ["alice/dev"], ["read"])
    assert client.get("/alice/dev/+simple/", headers=as_token(token)).status_code == 200
    token_id = parse_token(token).id  # type: ignore[union-attr]
    owner = basic_auth("alice", PASSWORD) | JSON
    assert client.delete(f"/alice/+tokens/{token_id}", headers=owner).status_code == 200
    response = client.get("/alice/dev/+simple/", headers=as_token(token))
    assert response.status_code == 401
    assert "not valid" in response.text
    assert client.delete(f"/alice/+tokens/{token_id}", headers=owner).status_code == 404


def test_an_expired_token_is_refused(client: httpx.Client) -> None:
    token = make_token(client, ["alice/dev"], ["read"], expires_in=1)
    assert client.get("/alice/dev/+simple/", headers=as_token(token)).status_code == 200
    time.sleep(1.2)
    response = client.get("/alice/dev/+simple/", headers=as_token(token))
    assert response.status_code == 401
    assert "expired" in response.text


def test_deleting_the_owner_kills_its_tokens(server: ServerProcess, client: httpx.Client) -> None:
    create_user(client, "bob")
    create_index(client, "bob", "dev", volatile=True)
    token = make_token(client, ["*"], ["read", "upload", "admin"], user="bob")
    assert client.get("/bob/dev/+simple/", headers=as_token(token)).status_code == 200
    deleted = client.delete("/bob", headers=basic_auth("bob", PASSWORD) | JSON)
    assert deleted.status_code == 200, deleted.text
    assert client.get("/+api", headers=as_token(token)).status_code == 401
    create_user(client, "bob")  # the same name again: the old token is still dead
    assert client.get("/+api", headers=as_token(token)).status_code == 401
    assert stored_tokens(server, "bob") == []


def stored_tokens(server: ServerProcess, user: str | None = None) -> list[tuple[Any, ...]]:
    with sqlite3.connect(server.serverdir / "packyard.sqlite3") as database:
        rows = database.execute(
            'SELECT * FROM api_tokens WHERE "user" = ? OR ? IS NULL', (user, user)
        )
        return list(rows.fetchall())


# --- secrets stay secret ----------------------------------------------------------------------


def test_lists_never_show_the_secret_and_the_database_holds_only_its_hash(
    server: ServerProcess, client: httpx.Client
) -> None:
    token = make_token(client, ["alice/dev"], ["read"], description="secret-keeping")
    secret = token[len("pky_") + 16 :]
    listing = client.get("/alice/+tokens", headers=basic_auth("alice", PASSWORD) | JSON)
    assert listing.status_code == 200
    assert secret not in listing.text and "sha256" not in listing.text
    mine = [t for t in listing.json()["result"] if t["description"] == "secret-keeping"]
    assert mine and mine[0]["actions"] == ["read"] and "token" not in mine[0]
    rows = stored_tokens(server)
    assert rows and not any(secret in str(value) for row in rows for value in row)
    database_files = server.serverdir.glob("packyard.sqlite3*")
    assert not any(secret.encode() in path.read_bytes() for path in database_files)


def test_root_may_list_and_revoke_anyones_tokens_others_may_not(client: httpx.Client) -> None:
    token = make_token(client, ["alice/dev"], ["read"], description="for root to revoke")
    token_id = parse_token(token).id  # type: ignore[union-attr]
    create_user(client, "carol")
    carol = basic_auth("carol", PASSWORD) | JSON
    assert client.get("/alice/+tokens", headers=carol).status_code == 403
    assert client.delete(f"/alice/+tokens/{token_id}", headers=carol).status_code == 403
    assert client.get("/alice/+tokens", headers=JSON).status_code == 401
    root = basic_auth("root", ROOT_PASSWORD) | JSON
    listed = client.get("/alice/+tokens", headers=root).json()["result"]
    assert token_id in [t["id"] for t in listed]
    assert client.delete(f"/alice/+tokens/{token_id}", headers=root).status_code == 200
    assert client.get("/+api", headers=as_token(token)).status_code == 401
    # Nor may root create tokens in alice's name.
    made = client.post("/alice/+tokens", json={"indexes": ["*"], "actions": ["read"]}, headers=root)
    assert made.status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"indexes": ["alice/nope"], "actions": ["read"]}, "no such index"),
        ({"indexes": ["alice"], "actions": ["read"]}, "is no index"),
        ({"indexes": ["alice/dev"], "actions": ["delete"]}, "is no token action"),
        ({"indexes": ["alice/dev"], "actions": []}, "at least one action"),
        ({"indexes": ["alice/dev"], "actions": ["read"], "expires_in": -5}, "expires_in"),
        ({"indexes": "alice/dev", "actions": ["read"]}, "expected"),
        ({"indexes": ["*"], "actions": ["read"], "owner": "root"}, "unknown keys"),
    ],
)
def test_a_bad_token_request_is_a_clear_400(
    client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    response = client.post(
        "/alice/+tokens", json=body, headers=basic_auth("alice", PASSWORD) | JSON
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]


# --- cheap to check, and guesses count like wrong passwords -------------------------------------


def test_a_right_token_is_cheap_and_wrong_ones_count_against_the_address(
    server: ServerProcess,
) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.77")  # its own address counters
    with httpx.Client(base_url=server.url, transport=transport, timeout=60) as client:
        create_user(client, "dave")
        token = make_token(client, ["*"], ["read"], user="dave")
        started = time.perf_counter()
        for _ in range(50):
            assert client.get("/+api", headers=as_token(token)).status_code == 200
        assert time.perf_counter() - started < 5.0  # no KDF: milliseconds each
        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        statuses = [client.get("/+api", headers=as_token(wrong)).status_code for _ in range(31)]
        assert statuses[:30] == [401] * 30 and statuses[30] == 429  # login_failures_per_address
        # The address is locked out (passwords too); dave's right token still works.
        guess = client.post("/+login", json={"user": "dave", "password": "guess"}, headers=JSON)
        assert guess.status_code == 429
        assert client.get("/+api", headers=as_token(token)).status_code == 200
    # dave himself is not: wrong tokens never count against their owner (review item 5).
    with httpx.Client(base_url=server.url, timeout=60) as client:
        login = client.post("/+login", json={"user": "dave", "password": PASSWORD}, headers=JSON)
        assert login.status_code == 200, login.text


# --- the packyard client, the web UI, the devpi client -----------------------------------------


def test_the_packyard_client_creates_lists_and_revokes_tokens(
    server: ServerProcess, tmp_path: Path
) -> None:
    packyard = Packyard(tmp_path / "home")
    packyard.ok("use", f"{server.url}/alice/dev")
    packyard.ok("login", "alice", "--password", PASSWORD)
    made = packyard.json(
        "token", "create", "--actions", "read", "--expires", "1d", "--description", "cli"
    )
    assert made["indexes"] == ["alice/dev"] and made["token"].startswith("pky_") and made["expires"]
    listed = packyard.ok("token", "list")
    assert made["id"] in listed and made["token"][20:] not in listed
    reader = Packyard(tmp_path / "ci", PACKYARD_URL=server.url, PACKYARD_INDEX="alice/dev",
                      PACKYARD_USER="__token__", PACKYARD_TOKEN=made["token"])  # fmt: skip
    assert PROJECT in reader.ok("list")
    refused = reader.fails("token", "create")
    assert "403" in refused and "API token cannot" in refused
    assert "revoked" in packyard.ok("token", "revoke", made["id"])
    assert made["id"] not in packyard.ok("token", "list")
    assert "401" in reader.fails("list")


def test_the_web_ui_creates_a_token_shown_once_and_revokes_it(
    server: ServerProcess, client: httpx.Client
) -> None:
    session = browser_login(client, "alice")
    page = client.get("/alice/+tokens", headers=BROWSER)
    assert page.status_code == 200 and "Create a token" in page.text
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": csrf, "indexes": "alice/dev", "action_read": "on", "expires_days": "7",
            "description": "from the browser"}  # fmt: skip
    forged = client.post("/+ui/create-token", data=form | {"csrf": "x"}, headers=BROWSER)
    assert forged.status_code == 403
    created = client.post("/+ui/create-token", data=form, headers=BROWSER)
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    token = created.text.split('<code id="new-token">', 1)[1].split("<", 1)[0]
    assert client.get("/alice/dev/+simple/", headers=as_token(token)).status_code == 200
    again = client.get("/alice/+tokens", headers=BROWSER)
    assert token not in again.text and "from the browser" in again.text
    token_id = parse_token(token).id  # type: ignore[union-attr]
    revoke = {"csrf": csrf, "user": "alice", "token": token_id}
    done = client.post("/+ui/revoke-token", data=revoke, headers=BROWSER, follow_redirects=False)
    assert done.status_code == 303
    assert client.get("/alice/dev/+simple/", headers=as_token(token)).status_code == 401
    assert session


def browser_login(client: httpx.Client, user: str) -> str:
    form_page = client.get("/+login", headers=BROWSER)
    csrf = form_page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/+login", data={"user": user, "password": PASSWORD, "csrf": csrf}, headers=BROWSER,
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303, response.text
    return str(client.cookies["packyard_session"])


def test_the_devpi_client_uploads_with_a_token_in_the_index_url(
    server: ServerProcess,
    client: httpx.Client,
    upload_token: str,
    devpi_executable: Path,
    tmp_path: Path,
) -> None:
    devpi = Devpi(devpi_executable, tmp_path / "home")
    netloc = f"__token__:{upload_token}@127.0.0.1:{server.port}"
    devpi.ok("use", f"http://{netloc}/alice/dev")
    wheel = build_wheel(tmp_path, "devpi-tokened", "1.0")
    devpi.ok("upload", wheel)
    assert "devpi-tokened" in projects_of(client, "alice/dev")


# --- the one classification, over the whole route table ------------------------------------------


def params_of(template: str) -> dict[str, str]:
    """The path parameters a request to the route `template` carries."""
    values = {"user": "alice", "index": "dev"}
    return {key: value for key, value in values.items() if f"{{{key}}}" in template}


@pytest.mark.parametrize(
    ("path", "method", "content_type", "need"),
    [
        ("/+api", "GET", "", None),
        ("/{user}/{index}/+api", "GET", "", None),
        ("/{user}/{index}/+simple/", "GET", "", Need("alice/dev", Action.READ)),
        ("/{user}/{index}/+f/{relpath:path}", "GET", "", Need("alice/dev", Action.READ)),
        ("/{user}/{index}", "POST", "multipart/form-data; b=1", Need("alice/dev", Action.UPLOAD)),
        ("/{user}/{index}/+f/{relpath:path}", "POST", "", Need("alice/dev", Action.UPLOAD)),
        ("/{user}/{index}", "POST", "application/json", Need(None, Action.ADMIN)),
        ("/{user}/{index}", "PUSH", "application/json", Need(None, Action.ADMIN)),
        ("/{user}/{index}", "DELETE", "", Need("alice/dev", Action.ADMIN)),
        ("/{user}/{index}/{project}/{version}", "PATCH", "", Need("alice/dev", Action.ADMIN)),
        ("/{user}/{index}/+f/{relpath:path}", "DELETE", "", Need("alice/dev", Action.ADMIN)),
        ("/", "GET", "", Need(None, Action.READ)),
        ("/{user}", "PATCH", "", Need(None, Action.ACCOUNT)),
        ("/{user}/+tokens", "POST", "", Need(None, Action.ACCOUNT)),
        ("/{user}/+tokens", "GET", "", Need(None, Action.ACCOUNT)),
        ("/+logout", "POST", "", Need(None, Action.ACCOUNT)),
        ("/+ui/yank", "POST", "", Need(None, Action.ACCOUNT)),
    ],
)
def test_each_route_is_classified_by_its_template_and_method(
    path: str, method: str, content_type: str, need: Need | None
) -> None:
    assert classify(path, method, params_of(path), content_type) == need


def test_every_route_of_the_app_gets_a_need_or_is_open() -> None:
    """No route falls through: every (route, method) of the table classifies, and no change
    is ever a read."""
    for route in routes():
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        for method in route.methods or ():
            need = classify(route.path, method, params_of(route.path), "")
            refresh = route.path.rstrip("/").endswith("/refresh")  # asks a mirror to re-read
            if method not in ("GET", "HEAD") and need is not None and not refresh:
                assert need.action != Action.READ, route.path


def test_a_scope_allows_only_its_actions_on_its_indexes() -> None:
    scope = TokenScope(frozenset({"alice/dev"}), frozenset({Action.UPLOAD}))
    assert scope.allows(Need("alice/dev", Action.UPLOAD))
    assert not scope.allows(Need("alice/other", Action.UPLOAD))
    assert not scope.allows(Need("alice/dev", Action.READ))
    assert not scope.allows(Need(None, Action.UPLOAD))
    everything = TokenScope(frozenset({"*"}), frozenset(Action) - {Action.ACCOUNT})
    assert everything.allows(Need(None, Action.ADMIN))
    assert not everything.allows(Need(None, Action.ACCOUNT))


# --- the service on both database engines, with an injected clock ------------------------------


def test_tokens_expire_by_the_clock_and_die_with_their_owner(services: Services) -> None:
    """In-process, on SQLite and PostgreSQL: expiry by an injected clock, the cascade."""
    now = [1_000_000.0]
    tokens = ApiTokens(services.db, services.accounts, services.indexes, clock=lambda: now[0])
    services.accounts.create_initial("erin", "pw")
    services.indexes.create_initial("erin", "dev", {"type": "stage", "volatile": True})
    request = TokenRequest.from_json(
        {"indexes": ["erin/dev"], "actions": ["read"], "expires_in": 60}
    )
    made = tokens.create("erin", "erin", request)
    assert tokens.verify("__token__", made.text, "", tokens.load()) == made.token
    now[0] += 61
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify("__token__", made.text, "", tokens.load())
    services.accounts.delete("erin", "erin")
    assert made.token.id not in tokens.load()
    with services.db.read() as conn:
        assert token_store.user_tokens(conn, "erin") == []
