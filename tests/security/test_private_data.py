"""What an attacker's review found in read permissions, tokens and the audit trail, tried
again against the real server on loopback.

alice/priv (acl_read=[alice]) holds `secretpkg` 1.0 with docs; alice/dev is public and has
alice/priv as its base. Each test attacks as the reviewer did and asserts what the attacker
sees, and that nothing was stored or leaked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import JSON, LOOPBACK_UPSTREAMS, ROOT_PASSWORD, ServerProcess, basic_auth
from tests.devpi_client import doc_zip
from tests.e2e_support import (
    PASSWORD,
    create_index,
    create_user,
    print_log_if_failed,
    running_server,
    upload,
)

pytestmark = pytest.mark.e2e

PROJECT = "secretpkg"
VERSION = "1.0"
DESCRIPTION = "LONG-SECRET-DESCRIPTION"
DOCS = "secretpkg 1.0 docs"
USERS = ("alice", "bob", "carol", "mallory")
ROOT = basic_auth("root", ROOT_PASSWORD)
ACCEPT_JSON = {"Accept": "application/json"}


@dataclasses.dataclass(frozen=True)
class Secret:
    relpath: str  # +f/... under alice/priv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("private-data")
    with running_server(directory, LOOPBACK_UPSTREAMS) as started:
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        print_log_if_failed(request, request.getfixturevalue("server"))


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def auth(user: str) -> dict[str, str]:
    return basic_auth(user, PASSWORD)


@pytest.fixture(scope="module")
def secret(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Secret:
    for user in USERS:
        create_user(client, user)
    create_index(client, "alice", "priv", acl_read="alice")
    create_index(client, "alice", "dev", bases="alice/priv")
    directory = tmp_path_factory.mktemp("dists")
    wheel = build_wheel(directory, PROJECT, VERSION, description=f"# Hi\n\n{DESCRIPTION}\n")
    fields = {"name": PROJECT, "version": VERSION}
    stored = upload(client, "/alice/priv", wheel.name, wheel.read_bytes(), auth("alice"), fields)
    assert stored.status_code == 200, stored.text
    docs = doc_zip(directory, PROJECT, VERSION)
    sent = client.post(
        "/alice/priv/", data={":action": "doc_upload", **fields},
        files={"content": (docs.name, docs.read_bytes())}, headers=auth("alice"),
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    version = client.get(f"/alice/priv/{PROJECT}/{VERSION}", headers=JSON | auth("alice"))
    links = version.json()["result"]["+links"]
    [link] = [link for link in links if link["rel"] == "releasefile"]
    return Secret(relpath=link["href"].rsplit("#", 1)[0].split("/alice/priv/", 1)[1])


def make_token(client: httpx.Client, user: str, indexes: list[str], actions: list[str]) -> str:
    body = {"indexes": indexes, "actions": actions}
    response = client.post(f"/{user}/+tokens", json=body, headers=JSON | auth(user))
    assert response.status_code == 201, response.text
    text: str = response.json()["result"]["token"]
    return text


def as_token(token: str) -> dict[str, str]:
    return basic_auth("__token__", token)


# --- 1. a token reads no more than its scope, bases included ------------------------------------


def inherited_reads() -> list[tuple[str, dict[str, str], str]]:
    """Reads of alice/dev that show alice/priv's secret through the base: (path, headers, what
    an allowed reader sees)."""
    dev = "/alice/dev"
    return [
        (f"{dev}/+simple/", {}, PROJECT),
        (f"{dev}/+simple/{PROJECT}/", {}, f"{PROJECT}-{VERSION}"),
        (f"{dev}/{PROJECT}/{VERSION}", ACCEPT_JSON, DESCRIPTION),
        (f"{dev}/{PROJECT}/{VERSION}/+doc/index.html", {}, DOCS),
    ]


def test_a_token_scoped_to_an_index_does_not_read_its_bases(
    client: httpx.Client, secret: Secret
) -> None:
    token = make_token(client, "alice", ["alice/dev"], ["read"])
    for path, headers, shown in inherited_reads():
        # alice herself sees it (and so fills any page cache first) ...
        mine = client.get(path, headers=headers | auth("alice"))
        assert mine.status_code == 200 and shown in mine.text, (path, mine.status_code)
        # ... her token for alice/dev alone does not.
        scoped = client.get(path, headers=headers | as_token(token))
        assert shown not in scoped.text, (path, scoped.status_code)
        assert scoped.status_code in (200, 404), (path, scoped.status_code)
    direct = client.get(f"/alice/priv/+simple/{PROJECT}/", headers=as_token(token))
    assert direct.status_code == 403


def test_a_token_cannot_add_a_base_outside_its_scope(client: httpx.Client, secret: Secret) -> None:
    create_index(client, "bob", "shared", acl_read="bob,carol")
    create_index(client, "carol", "dev")
    token = make_token(client, "carol", ["carol/dev"], ["read", "admin"])
    patched = client.patch("/carol/dev", json=["bases=bob/shared"], headers=JSON | as_token(token))
    assert patched.status_code == 403, patched.text
    assert "bob/shared" in patched.json()["message"]
    config = client.get("/carol/dev", headers=JSON | auth("carol")).json()["result"]
    assert config["bases"] == []
    # carol herself, who may read bob/shared, may choose it.
    allowed = client.patch("/carol/dev", json=["bases=bob/shared"], headers=JSON | auth("carol"))
    assert allowed.status_code == 200, allowed.text


# --- 4. nobody chooses a base they may not read ------------------------------------------------


def test_an_index_cannot_take_a_base_its_author_may_not_read(
    client: httpx.Client, secret: Secret
) -> None:
    created = client.put(
        "/mallory/probe", json={"bases": ["alice/priv"]}, headers=JSON | auth("mallory")
    )
    assert created.status_code == 403, created.text
    assert "may not read alice/priv" in created.json()["message"]
    assert client.get("/mallory/probe", headers=JSON).status_code == 404  # nothing stored
    create_index(client, "mallory", "plain")
    patched = client.patch(
        "/mallory/plain", json=["bases+=alice/priv"], headers=JSON | auth("mallory")
    )
    assert patched.status_code == 403, patched.text
    config = client.get("/mallory/plain", headers=JSON).json()["result"]
    assert config["bases"] == []
    page = client.get(f"/mallory/plain/+simple/{PROJECT}/", headers=auth("mallory"))
    assert page.status_code == 404


# --- 2. a deleted user's name grants nothing to whoever registers it next ---------------------


def test_a_deleted_users_name_leaves_every_acl(client: httpx.Client, secret: Secret) -> None:
    create_user(client, "dave")
    create_index(client, "carol", "priv", acl_read="carol,dave", acl_upload="carol,dave")
    assert client.get("/carol/priv/+simple/", headers=auth("dave")).status_code == 200
    deleted = client.delete("/dave", headers=JSON | auth("dave"))
    assert deleted.status_code == 200, deleted.text
    config = client.get("/carol/priv", headers=JSON | auth("carol")).json()["result"]
    assert "dave" not in config["acl_read"] + config["acl_upload"]
    assert "dave" not in config["acl_toxresult_upload"]
    # Anyone may register the free name again: it reads nothing of the old dave's grants.
    create_user(client, "dave")
    assert client.get("/carol/priv/+simple/", headers=auth("dave")).status_code == 403


# --- 3. what not everyone may read stays out of shared caches ---------------------------------


def assert_private(response: httpx.Response) -> None:
    assert response.status_code == 200, (response.url, response.status_code)
    directives = [d.strip() for d in response.headers["cache-control"].split(",")]
    assert "private" in directives and "public" not in directives, response.headers
    vary = {v.strip().lower() for v in response.headers["vary"].split(",")}
    assert {"authorization", "cookie"} <= vary, response.headers


def test_read_protected_content_is_sent_private(
    client: httpx.Client, secret: Secret, tmp_path_factory: pytest.TempPathFactory
) -> None:
    alice = auth("alice")
    for path, headers in [
        (f"/alice/priv/{secret.relpath}", {}),
        (f"/alice/priv/+simple/{PROJECT}/", {}),
        (f"/alice/priv/{PROJECT}/{VERSION}", ACCEPT_JSON),
        (f"/alice/priv/{PROJECT}/{VERSION}/+doc/index.html", {}),
        # public, but what it shows depends on who asks (its base is private)
        (f"/alice/dev/+simple/{PROJECT}/", {}),
        ("/alice/dev/+simple/", {}),
    ]:
        assert_private(client.get(path, headers=headers | alice))
    # A public index with public bases keeps its immutable, shareable files.
    wheel = build_wheel(tmp_path_factory.mktemp("open"), "openpkg", "1.0")
    fields = {"name": "openpkg", "version": "1.0"}
    create_index(client, "bob", "open")
    stored = upload(client, "/bob/open", wheel.name, wheel.read_bytes(), auth("bob"), fields)
    assert stored.status_code == 200, stored.text
    version = client.get("/bob/open/openpkg/1.0", headers=JSON).json()["result"]
    [link] = [link for link in version["+links"] if link["rel"] == "releasefile"]
    public = client.get(link["href"].rsplit("#", 1)[0])
    assert public.status_code == 200
    assert "public" in public.headers["cache-control"]
    assert "immutable" in public.headers["cache-control"]


# --- 5. wrong API tokens count against the sender's address, never the token's owner -----------


def test_wrong_tokens_do_not_lock_their_owner_out(server: ServerProcess, secret: Secret) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.66")
    with httpx.Client(base_url=server.url, transport=transport, timeout=30) as mallory:
        token = make_token(mallory, "alice", ["alice/dev"], ["read"])
        token_id = token[4:20]  # public: shown in lists and logs
        wrong = f"pky_{token_id}" + "A" * 43
        sent = basic_auth("mallory", wrong)
        statuses = [mallory.get("/+api", headers=sent).status_code for _ in range(11)]
        assert statuses == [401] * 11
    with httpx.Client(base_url=server.url, timeout=30) as alice:
        started = time.perf_counter()
        login = alice.post("/+login", json={"user": "alice", "password": PASSWORD}, headers=JSON)
        assert login.status_code == 200, login.text
        read = alice.get("/alice/priv/+simple/", headers=auth("alice"))
        assert read.status_code == 200
        assert time.perf_counter() - started < 20


# --- 6. a mirror_url's password only for root and the owner -----------------------------------


def test_mirror_url_passwords_are_masked_for_readers(client: httpx.Client, secret: Secret) -> None:
    url = "http://upuser:s3cretpw@127.0.0.1:9/simple/"
    body = {"type": "mirror", "mirror_url": url}
    created = client.put("/root/mir2", json=body, headers=JSON | ROOT)
    assert created.status_code == 200, created.text
    masked = "http://upuser:***@127.0.0.1:9/simple/"
    for headers in ({}, auth("mallory")):
        shown = client.get("/root/mir2?no_projects=", headers=JSON | headers)
        assert shown.json()["result"]["mirror_url"] == masked
        listed = client.get("/", headers=JSON | headers)
        assert "s3cretpw" not in listed.text and masked in listed.text
    owner = client.get("/root/mir2?no_projects=", headers=JSON | ROOT)
    assert owner.json()["result"]["mirror_url"] == url


# --- 7. an index's audit entries for its owner only while it exists and is theirs ---------------


def test_a_reregistered_name_does_not_read_the_old_users_audit(
    client: httpx.Client, secret: Secret
) -> None:
    create_user(client, "erin")
    create_index(client, "erin", "shared", volatile=True)
    mine = client.get("/+audit", params={"index": "erin/shared"}, headers=JSON | auth("erin"))
    assert mine.status_code == 200 and mine.json()["result"], mine.text
    assert client.delete("/erin", headers=JSON | auth("erin")).status_code == 200
    create_user(client, "erin")  # someone else now
    theirs = client.get("/+audit", params={"index": "erin/shared"}, headers=JSON | auth("erin"))
    assert theirs.status_code == 403, theirs.text
    assert "index-create" not in theirs.text
    kept = client.get("/+audit", params={"index": "erin/shared"}, headers=JSON | ROOT)
    assert kept.status_code == 200 and kept.json()["result"]


# --- 8. X-Forwarded-For is believed only from the configured proxies --------------------------


def audit_addresses(client: httpx.Client, index: str) -> set[str | None]:
    trail = client.get("/+audit", params={"index": index}, headers=JSON | ROOT)
    assert trail.status_code == 200, trail.text
    return {entry["address"] for entry in trail.json()["result"]}


def test_forwarded_for_is_ignored_unless_its_proxy_is_configured(
    client: httpx.Client, secret: Secret, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spoofed = {"X-Forwarded-For": "203.0.113.9"}
    made = client.put("/bob/spoof", json={}, headers=JSON | auth("bob") | spoofed)
    assert made.status_code == 200, made.text
    assert audit_addresses(client, "bob/spoof") == {"127.0.0.1"}
    settings = {"forwarded_allow_ips": "127.0.0.1"}
    with (
        running_server(tmp_path_factory.mktemp("proxied"), settings) as proxied,
        httpx.Client(base_url=proxied.url, timeout=30) as behind,
    ):
        create_user(behind, "bob")
        made = behind.put("/bob/proxied", json={}, headers=JSON | auth("bob") | spoofed)
        assert made.status_code == 200, made.text
        assert audit_addresses(behind, "bob/proxied") == {"203.0.113.9"}
