"""Read permissions per index (`acl_read`), against a real server on loopback.

alice owns alice/private (acl_read=[reader, uploader], acl_upload=[alice, uploader]) holding
`secret-proj` 4.2.42 with docs; alice/child is public and inherits from it. Every read route is
asked by anonymous, another user (bob), the reader, the uploader, the owner and root: refused
callers get the documented status and none of the project's content (its name on list pages,
its file hash and bytes, its summary and description, its docs); allowed callers get it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from packyard.web.app import routes
from packyard.web.readcheck import is_read_checked, with_read_check
from tests.builders import build_wheel
from tests.conftest import BIN, JSON, ROOT_PASSWORD, ServerProcess, basic_auth, clean_env
from tests.conftest import tool as tool_path
from tests.devpi_client import Devpi, devpi_executable, doc_zip, printed_config  # noqa: F401
from tests.e2e_support import PASSWORD, create_index, create_user, running_server, upload
from tests.packyard_cli import Packyard

pytestmark = pytest.mark.e2e

PROJECT = "secret-proj"
VERSION = "4.2.42"
SUMMARY = "zebraquartz summary"
DESCRIPTION = "TOPSECRET-DESCRIPTION-TEXT"
DOCS = "secret-proj 4.2.42 docs"
USERS = ("alice", "bob", "reader", "uploader")
CALLERS = ("anonymous", "bob", "reader", "uploader", "alice", "root")
ALLOWED = frozenset({"reader", "uploader", "alice", "root"})
PIP_UA = {"User-Agent": "pip/24.0 {}"}
HTML = {"Accept": "text/html,application/xhtml+xml"}
ACCEPT_JSON = {"Accept": "application/json"}


@dataclasses.dataclass(frozen=True)
class Secret:
    wheel: bytes
    sha256: str
    relpath: str  # +f/.../filename under alice/private


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("readacl")) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def secret(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Secret:
    for user in USERS:
        create_user(client, user)
    create_index(
        client, "alice", "private", acl_read="reader,uploader", acl_upload="alice,uploader"
    )
    create_index(client, "alice", "child", bases="alice/private")
    directory = tmp_path_factory.mktemp("dists")
    wheel = build_wheel(
        directory, PROJECT, VERSION, summary=SUMMARY, description=f"# Hello\n\n{DESCRIPTION}\n"
    )
    auth = basic_auth("uploader", PASSWORD)
    fields = {"name": PROJECT, "version": VERSION}
    stored = upload(client, "/alice/private", wheel.name, wheel.read_bytes(), auth, fields)
    assert stored.status_code == 200, stored.text
    docs = doc_zip(directory, PROJECT, VERSION)
    form = {":action": "doc_upload", **fields}
    sent = client.post(
        "/alice/private/", data=form, files={"content": (docs.name, docs.read_bytes())},
        headers=auth,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    version = client.get(f"/alice/private/{PROJECT}/{VERSION}", headers=JSON | auth)
    [link] = [link for link in version.json()["result"]["+links"] if link["rel"] == "releasefile"]
    relpath = link["href"].split("/alice/private/", 1)[1]
    data = wheel.read_bytes()
    return Secret(data, hashlib.sha256(data).hexdigest(), relpath)


@pytest.fixture(scope="module")
def headers_of(client: httpx.Client, secret: Secret) -> dict[str, dict[str, str]]:
    """Each caller's credentials: a login token (quick to check), as the devpi client sends."""
    found: dict[str, dict[str, str]] = {"anonymous": {}}
    for user in CALLERS[1:]:
        password = ROOT_PASSWORD if user == "root" else PASSWORD
        response = client.post("/+login", json={"user": user, "password": password})
        assert response.status_code == 200, response.text
        token = response.json()["result"]["password"]
        encoded = base64.b64encode(f"{user}:{token}".encode()).decode()
        found[user] = {"X-Devpi-Auth": encoded}
    return found


# --- the matrix -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReadRoute:
    """A read of alice/private's content: what an allowed caller sees in it (`shows`), and
    what a refused one gets instead (`refused`: None means 401 anonymous, 403 others)."""

    name: str
    path: str
    headers: dict[str, str]
    shows: tuple[str, ...]
    allowed: int = 200
    refused: int | None = None
    whole_file: bool = False


def read_routes(secret: Secret) -> list[ReadRoute]:
    private, child, f = "/alice/private", "/alice/child", f"/alice/private/{secret.relpath}"
    sha, name = secret.sha256, PROJECT
    return [
        ReadRoute("simple list", f"{private}/+simple/", {}, (name,)),
        ReadRoute("simple page", f"{private}/+simple/{name}/", {}, (sha,)),
        ReadRoute("simple json", f"{private}/+simple/{name}/", SIMPLE_JSON, (sha,)),
        ReadRoute("installer index view", private, PIP_UA, (name,)),
        ReadRoute("installer project view", f"{private}/{name}", PIP_UA, (sha,)),
        ReadRoute("file", f, {}, (), whole_file=True),
        ReadRoute("metadata", f + ".metadata", {}, (SUMMARY,)),
        ReadRoute("+cached (a stage: 400 once allowed)", f"{private}/+cached", {}, (), 400),
        ReadRoute("index json", private, ACCEPT_JSON, (name,)),
        ReadRoute("project json", f"{private}/{name}", ACCEPT_JSON, (sha,)),
        ReadRoute("version json", f"{private}/{name}/{VERSION}", ACCEPT_JSON, (sha, SUMMARY)),
        ReadRoute("file meta json", f, ACCEPT_JSON, (sha,)),
        ReadRoute("docs", f"{private}/{name}/{VERSION}/+doc/index.html", {}, (DOCS,)),
        ReadRoute("ui index", private, HTML, (name,)),
        ReadRoute("ui project", f"{private}/{name}", HTML, (VERSION,)),
        ReadRoute("ui version", f"{private}/{name}/{VERSION}", HTML, (DESCRIPTION,)),
        ReadRoute("search", "/+search?q=zebraquartz", HTML, (f"/{name}",), refused=200),
        ReadRoute("child simple list", f"{child}/+simple/", {}, (name,), refused=200),
        ReadRoute("child simple page", f"{child}/+simple/{name}/", {}, (sha,), refused=404),
        ReadRoute("child installer", f"{child}/{name}", PIP_UA, (sha,), refused=404),
        ReadRoute("child project json", f"{child}/{name}", ACCEPT_JSON, (sha,), refused=404),
        ReadRoute("child ui index", child, HTML, (name,), refused=200),
        ReadRoute("child ui version", f"{child}/{name}/{VERSION}", HTML, (DESCRIPTION,), 200, 404),
    ]


SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def refused_status(route: ReadRoute, caller: str) -> int:
    if route.refused is not None:
        return route.refused
    return 401 if caller == "anonymous" else 403


def test_every_read_route_by_every_caller(
    client: httpx.Client, secret: Secret, headers_of: dict[str, dict[str, str]]
) -> None:
    """The matrix: the documented status for each (route, caller), content only if allowed."""
    problems = []
    started = time.monotonic()
    for route in read_routes(secret):
        for caller in CALLERS:
            response = client.get(route.path, headers=route.headers | headers_of[caller])
            allowed = caller in ALLOWED
            expected = route.allowed if allowed else refused_status(route, caller)
            body = response.content
            leaked = secret.sha256.encode() in body or secret.wheel in body
            if allowed:
                shown = all(text.encode() in body for text in route.shows)
                ok = shown and (not route.whole_file or body == secret.wheel)
            else:
                ok = not leaked and not any(text.encode() in body for text in route.shows)
            if response.status_code != expected or not ok:
                problems.append(f"{route.name} as {caller}: {response.status_code} {body[:200]!r}")
    assert not problems, "\n".join(problems)
    assert time.monotonic() - started < 60


def test_anonymous_gets_a_basic_challenge_and_browsers_a_log_in_link(
    client: httpx.Client, secret: Secret
) -> None:
    for path in ("/alice/private/+simple/", f"/alice/private/{secret.relpath}"):
        response = client.get(path, headers=PIP_UA)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="packyard"'
        assert "log in to read alice/private" in response.text
    page = client.get("/alice/private", headers=HTML)
    assert page.status_code == 401
    assert "www-authenticate" not in page.headers  # no password dialog in the browser
    assert 'href="/+login' in page.text


def test_wrong_credentials_are_401_not_anonymous(client: httpx.Client, secret: Secret) -> None:
    response = client.get("/alice/private/+simple/", headers=basic_auth("reader", "wrong"))
    assert response.status_code == 401
    assert PROJECT not in response.text


def test_listings_hide_indexes_the_caller_may_not_read(
    client: httpx.Client, secret: Secret, headers_of: dict[str, dict[str, str]]
) -> None:
    """`GET /` and `GET /alice` (JSON and pages) leave out alice/private, config and all."""
    for caller in CALLERS:
        listed = client.get("/", headers=JSON | headers_of[caller]).json()["result"]
        user = client.get("/alice", headers=JSON | headers_of[caller]).json()["result"]
        page = client.get("/", headers=HTML | headers_of[caller]).text
        assert "child" in listed["alice"]["indexes"] and "child" in user["indexes"]
        visible = caller in ALLOWED
        assert ("private" in listed["alice"]["indexes"]) is visible, caller
        assert ("private" in user["indexes"]) is visible, caller
        assert ('"reader", "uploader"' in json.dumps(listed)) is visible, caller
        if caller == "anonymous":  # pages show the browser's session, not headers
            assert "alice/private" not in page


def test_acl_read_is_shown_and_set_with_key_value_operations(
    client: httpx.Client, secret: Secret, headers_of: dict[str, dict[str, str]]
) -> None:
    """devpi's `index NAME acl_read=...` (a PATCH of k=v operations), normalised like
    acl_upload; the owner may always read, whatever the list says."""
    alice = JSON | headers_of["alice"]
    create_index(client, "alice", "ops")
    shown = client.get("/alice/ops", headers=alice).json()["result"]
    assert shown["acl_read"] == [":ANONYMOUS:"]
    patched = client.patch("/alice/ops", json=["acl_read=bob,:authenticated:"], headers=alice)
    assert patched.json()["result"]["acl_read"] == ["bob", ":AUTHENTICATED:"]
    client.patch("/alice/ops", json=["acl_read=bob"], headers=alice)
    assert client.get("/alice/ops/+simple/", headers=headers_of["reader"]).status_code == 403
    assert client.get("/alice/ops/+simple/", headers=headers_of["bob"]).status_code == 200
    assert client.get("/alice/ops/+simple/", headers=headers_of["alice"]).status_code == 200
    bad = client.patch("/alice/ops", json=["acl_read=a,b", "acl_read+="], headers=alice)
    assert bad.status_code == 200  # `+=` of nothing changes nothing
    refused = client.patch("/alice/ops", json={"acl_read": 5}, headers=alice)
    assert refused.status_code == 400 and "expected a list" in refused.json()["message"]


def test_non_readers_cannot_probe_with_writes(
    client: httpx.Client, secret: Secret, headers_of: dict[str, dict[str, str]]
) -> None:
    """A DELETE or PATCH by someone who may not read gets 401/403 whether the project exists
    or not: existence is not told apart by 404 vs 403."""
    for path in (f"/alice/private/{PROJECT}", "/alice/private/no-such-project"):
        assert client.delete(path, headers=headers_of["anonymous"]).status_code == 401
        bob = JSON | headers_of["bob"]
        assert client.patch(path, json={"yanked": True}, headers=bob).status_code == 403
    assert client.get(f"/alice/private/{PROJECT}", headers=ACCEPT_JSON).status_code == 401


def test_non_readers_cannot_probe_with_the_web_forms(server: ServerProcess, secret: Secret) -> None:
    """The UI's forms name the index in their body, not their path: a logged-in non-reader
    gets 403 for a project that exists and one that does not alike."""
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        login_page = browser.get("/+login", headers=HTML)
        csrf = re.search(r'name="csrf" value="([^"]*)"', login_page.text)
        assert csrf is not None
        form = {"user": "bob", "password": PASSWORD, "csrf": csrf.group(1)}
        assert browser.post("/+login", data=form, headers=HTML).status_code == 303
        page = browser.get("/bob", headers=HTML)
        csrf = re.search(r'name="csrf" value="([^"]*)"', page.text)
        assert csrf is not None, page.text
        for project in (PROJECT, "no-such-project"):
            target = {"index": "alice/private", "project": project, "version": VERSION}
            for path, extra in (("/+ui/yank", {"action": "yank"}), ("/+ui/delete-release", {})):
                sent = target | extra | {"csrf": csrf.group(1)}
                answer = browser.post(path, data=sent, headers=HTML)
                assert answer.status_code == 403, (path, project, answer.text)
                assert DESCRIPTION not in answer.text and SUMMARY not in answer.text


# --- the route table --------------------------------------------------------------------------


def index_routes() -> list[Route]:
    return [r for r in routes() if isinstance(r, Route) and "{index}" in r.path]


def test_every_route_under_an_index_is_read_checked() -> None:
    """A route added under /{user}/{index} gets the read check from the route table; the one
    endpoint that skips it says so (`reveals_no_content`: devpi's endpoint discovery)."""
    found = index_routes()
    assert len(found) > 20
    unchecked = [r.path for r in found if not is_read_checked(r.endpoint)]
    assert not unchecked
    skipping = {r.path for r in found if not getattr(r.endpoint, "packyard_read_checked", False)}
    assert skipping == {"/{user}/{index}/+api"}

    async def new_endpoint(request: object) -> object:
        raise AssertionError("not called")

    plain = Route("/{user}/{index}/+new", new_endpoint, methods=["GET"])
    assert not is_read_checked(plain.endpoint)  # what this test would catch
    [wrapped] = with_read_check([plain])
    assert isinstance(wrapped, Route) and is_read_checked(wrapped.endpoint)


def test_every_get_route_under_the_index_refuses_anonymous(
    client: httpx.Client, secret: Secret
) -> None:
    """Walk the route table: each GET route under /{user}/{index} (all representations),
    filled in for alice/private, answers anonymous 401 and shows nothing of it."""
    values = {
        "user": "alice", "index": "private", "project": PROJECT, "version": VERSION,
        "relpath": secret.relpath, "path": "index.html",
    }  # fmt: skip
    asked = 0
    for route in index_routes():
        if route.methods is not None and "GET" not in route.methods:
            continue
        if getattr(route.endpoint, "packyard_reveals_no_index_content", False):
            continue
        path = route.path.replace("{path:path}", "{path}").replace("{relpath:path}", "{relpath}")
        url = path.format(**values)
        for headers in ({}, PIP_UA, HTML, ACCEPT_JSON, SIMPLE_JSON):
            response = client.get(url, headers=headers)
            asked += 1
            assert response.status_code == 401, (route.path, headers, response.status_code)
            assert secret.sha256 not in response.text and SUMMARY not in response.text
    assert asked >= 60


# --- installers -------------------------------------------------------------------------------


def installer_env(home: Path) -> dict[str, str]:
    env = clean_env() | {"HOME": str(home), "UV_NO_CONFIG": "1", "UV_NO_CACHE": "1"}
    env.pop("NETRC", None)
    return env


def pip_download(
    index_url: str, target: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--no-input",
        "--only-binary", ":all:", "--index-url", index_url, "-d", str(target),
        f"{PROJECT}=={VERSION}",
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def uv_install(
    index_url: str, target: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    command = [
        tool_path("uv"), "pip", "install", "--no-config", "--no-cache", "--python",
        sys.executable, "--index-url", index_url, "--target", str(target),
        f"{PROJECT}=={VERSION}",
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_pip_and_uv_install_with_credentials_in_the_url(
    server: ServerProcess, secret: Secret, tmp_path: Path
) -> None:
    env = installer_env(tmp_path)
    host = server.url.removeprefix("http://")
    with_credentials = f"http://reader:{PASSWORD}@{host}/alice/private/+simple/"
    pip = pip_download(with_credentials, tmp_path / "pip", env)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    [wheel] = (tmp_path / "pip").iterdir()
    assert wheel.read_bytes() == secret.wheel
    uv = uv_install(with_credentials, tmp_path / "uv", env)
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert (tmp_path / "uv" / "secret_proj" / "__init__.py").is_file()


def test_pip_and_uv_install_with_netrc_and_fail_without(
    server: ServerProcess, secret: Secret, tmp_path: Path
) -> None:
    """pip sends .netrc credentials only after the 401 challenge; uv reads .netrc too."""
    index_url = f"{server.url}/alice/private/+simple/"
    home = tmp_path / "home"
    home.mkdir()
    env = installer_env(home)
    pip = pip_download(index_url, tmp_path / "pip-none", env)
    assert pip.returncode != 0 and "No matching distribution" in pip.stderr
    assert not (tmp_path / "pip-none").exists() or not any((tmp_path / "pip-none").iterdir())
    uv = uv_install(index_url, tmp_path / "uv-none", env)
    assert uv.returncode != 0
    assert not (tmp_path / "uv-none" / "secret_proj").exists()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin reader\npassword {PASSWORD}\n")
    netrc.chmod(0o600)
    pip = pip_download(index_url, tmp_path / "pip", env)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (
        tmp_path / "pip" / f"secret_proj-{VERSION}-py3-none-any.whl"
    ).read_bytes() == secret.wheel
    uv = uv_install(index_url, tmp_path / "uv", env)
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert (tmp_path / "uv" / "secret_proj" / "__init__.py").is_file()


# --- the devpi client -------------------------------------------------------------------------


def test_devpi_client_sets_acl_read_and_reads_after_login(
    server: ServerProcess, secret: Secret, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    devpi = Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")
    devpi.ok("use", server.url)
    devpi.ok("login", "alice", "--password", PASSWORD)
    created = devpi.ok("index", "-c", "viaclient", "acl_read=reader")
    assert "acl_read=reader" in printed_config(created)
    devpi.ok("logoff")
    refused = devpi.fails("use", "alice/private")  # it reads the index's JSON
    assert "401 Unauthorized: log in to read alice/private" in refused
    assert PROJECT not in refused
    devpi.ok("login", "bob", "--password", PASSWORD)
    told = devpi.run("use", "alice/private").output  # devpi says so and goes on
    assert "403 Forbidden: bob may not read alice/private" in told
    assert "403" in devpi.fails("list", PROJECT)
    devpi.ok("login", "reader", "--password", PASSWORD)
    devpi.ok("use", "alice/private")
    assert VERSION in devpi.ok("list", PROJECT)


def test_packyard_client_sets_acl_read(
    server: ServerProcess, secret: Secret, tmp_path: Path
) -> None:
    client = Packyard(tmp_path / "home")
    client.ok("use", server.url)
    client.ok("login", "alice", "--password", PASSWORD)
    client.ok("index", "-c", "viacli")
    changed = client.ok("index", "alice/viacli", "acl_read=reader,:authenticated:")
    assert "index modified: alice/viacli" in changed
    assert client.json("index", "alice/viacli")["acl_read"] == ["reader", ":AUTHENTICATED:"]
    assert httpx.get(f"{server.url}/alice/viacli/+simple/").status_code == 401


# --- settings, export and import --------------------------------------------------------------


def test_settings_make_new_indexes_private_and_hide_users(tmp_path: Path) -> None:
    with running_server(tmp_path, settings={
        "default_acl_read": ":AUTHENTICATED:", "hide_users_from_anonymous": "true",
    }) as server, httpx.Client(base_url=server.url, timeout=30) as http:  # fmt: skip
        create_user(http, "carol")
        create_index(http, "carol", "dev")
        carol = basic_auth("carol", PASSWORD)
        assert http.get("/carol/dev", headers=JSON | carol).json()["result"]["acl_read"] == [
            ":AUTHENTICATED:"
        ]
        assert http.get("/carol/dev/+simple/").status_code == 401
        assert http.get("/carol/dev/+simple/", headers=carol).status_code == 200
        for path in ("/", "/carol"):
            hidden = http.get(path, headers=JSON)
            assert hidden.status_code == 401 and "carol" not in hidden.text
            assert "carol" in http.get(path, headers=JSON | carol).text
        page = http.get("/", headers=HTML)
        assert page.status_code == 200 and "carol" not in page.text and "Log in" in page.text


def test_acl_read_survives_export_and_import(
    server: ServerProcess, secret: Secret, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    packyard = str(BIN / "packyard")
    env = {k: v for k, v in clean_env().items() if not k.startswith("PACKYARD_")}
    done = subprocess.run(
        [packyard, "export", "--serverdir", str(server.serverdir), str(export)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    exported = json.loads((export / "dataindex.json").read_text())
    config = exported["indexes"]["alice/private"]["indexconfig"]
    assert config["acl_read"] == ["reader", "uploader"]
    target = tmp_path / "target"
    done = subprocess.run(
        [packyard, "import", "--serverdir", str(target / "server"), str(export)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with running_server(target) as imported:
        assert httpx.get(f"{imported.url}/alice/private/+simple/").status_code == 401
        reader = basic_auth("reader", PASSWORD)
        page = httpx.get(f"{imported.url}/alice/private/+simple/", headers=reader)
        assert page.status_code == 200 and PROJECT in page.text
