"""The audit trail (issue 17 part 3): every change recorded, in its own transaction, with who,
when, from where and what; readable by root and index owners only; kept by export/import.

One real `packyard serve` per module, driven by the real devpi client, twine and packyard's
own client; what was recorded is read back through `GET /+audit` as each reader sees it.
"""

from __future__ import annotations

import contextvars
import datetime
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from packyard.cli.main import main
from packyard.config import Settings
from packyard.core import audit as rules
from packyard.core.audit import Actor, Entry, Query
from packyard.core.uploads import UploadAction, UploadCommand
from packyard.errors import InvalidInput
from packyard.services import Services, open_services
from packyard.services.uploads import UploadRequest
from packyard.storage import audit as audit_rows
from tests.builders import build_wheel
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess, basic_auth, free_port, tool
from tests.devpi_client import Devpi, devpi_executable  # noqa: F401 (a fixture)
from tests.e2e_support import PASSWORD, assert_succeeded, create_user, run_tool, upload
from tests.packyard_cli import Packyard

pytestmark = pytest.mark.e2e

ROOT = basic_auth("root", ROOT_PASSWORD)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("audit")
    server = ServerProcess(directory / "server", free_port(), directory / "server.log")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def trail(http: httpx.Client, headers: dict[str, str] = ROOT, **params: str) -> list[Any]:
    response = http.get("/+audit", params=params, headers=JSON | headers)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "list:audit"
    entries: list[Any] = response.json()["result"]
    return entries


def newest_id(http: httpx.Client) -> int:
    entries = trail(http, limit="1")
    return int(entries[0]["id"]) if entries else 0


def entries_since(http: httpx.Client, after: int) -> list[Any]:
    return [e for e in trail(http, order="oldest", limit="1000") if e["id"] > after]


def make_index(http: httpx.Client, user: str, name: str = "dev", **config: Any) -> None:
    response = http.put(f"/{user}/{name}", json=config, headers=JSON | basic_auth(user, PASSWORD))
    assert response.status_code == 200, response.text


def wheel(tmp_path: Path, name: str, version: str, payload: str = "") -> Path:
    return build_wheel(
        tmp_path / f"{name}-{version}-{payload!s:.4}", name, version, payload=payload
    )


def upload_wheel(
    http: httpx.Client, index: str, path: Path, user: str, password: str = PASSWORD
) -> httpx.Response:
    name, version = path.name.split("-")[:2]
    fields = {"name": name, "version": version}
    return upload(http, index, path.name, path.read_bytes(), basic_auth(user, password), fields)


# --- every change, in order, with who and from where ----------------------------------------


def test_each_change_made_with_the_real_clients_is_recorded_in_order(
    server: ServerProcess, http: httpx.Client, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    before = newest_id(http)
    devpi = Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "devpi")
    devpi.ok("use", server.url)
    devpi.ok("user", "-c", "carol", "password=carolpw", "email=carol@example.org")
    devpi.ok("login", "carol", "--password", "carolpw")
    devpi.ok("index", "-c", "dev", "volatile=True")
    devpi.ok("index", "dev", "title=Carol's")
    devpi.ok("index", "-c", "prod", "volatile=True")
    demo = wheel(tmp_path, "demo", "1.0")
    twine = [tool("twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    assert_succeeded(
        run_tool(
            [*twine, "--repository-url", f"{server.url}/carol/dev/", "-u", "carol",
             "-p", "carolpw", demo]
        )
    )  # fmt: skip
    devpi.ok("use", "carol/dev")
    client = Packyard(tmp_path / "packyard")
    client.ok("use", f"{server.url}/carol/dev")
    client.ok("login", "carol", "--password", "carolpw")
    client.ok("yank", "demo==1.0", "--reason", "broken")
    client.ok("unyank", "demo==1.0")
    devpi.ok("push", "demo==1.0", "carol/prod")
    devpi.ok("remove", "-y", "demo==1.0")
    devpi.ok("index", "-y", "--delete", "carol/prod")
    devpi.ok("logoff")  # devpi's logoff forgets the token here; the server is not told
    devpi.ok("login", "root", "--password", ROOT_PASSWORD)
    devpi.ok("user", "--delete", "-y", "carol")

    recorded = entries_since(http, before)
    summary = [(e["action"], e["user"], e["index"]) for e in recorded]
    assert summary == [
        ("user.create", "(anonymous)", None),
        ("index.create", "carol", "carol/dev"),
        ("index.modify", "carol", "carol/dev"),
        ("index.create", "carol", "carol/prod"),
        ("upload", "carol", "carol/dev"),
        ("yank", "carol", "carol/dev"),
        ("unyank", "carol", "carol/dev"),
        ("push", "carol", "carol/prod"),
        ("version.delete", "carol", "carol/dev"),
        ("index.delete", "carol", "carol/prod"),
        ("user.delete", "root", None),
    ]
    assert all(e["address"] == "127.0.0.1" and e["token"] is None for e in recorded)
    assert [e["id"] for e in recorded] == sorted(e["id"] for e in recorded)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["time"]) for e in recorded)
    by_action = {e["action"]: e for e in recorded}
    assert by_action["user.create"]["detail"] == {"user": "carol"}  # no password, no e-mail
    assert by_action["index.modify"]["detail"] == {
        "changed": {"title": {"old": None, "new": "Carol's"}}
    }
    uploaded = by_action["upload"]
    assert (uploaded["project"], uploaded["version"], uploaded["filename"]) == (
        "demo", "1.0", demo.name,
    )  # fmt: skip
    assert by_action["yank"]["detail"] == {"reason": "broken"}
    assert by_action["push"]["detail"] == {"source": "carol/dev"}
    assert (by_action["push"]["project"], by_action["push"]["version"]) == ("demo", "1.0")
    assert by_action["version.delete"]["version"] == "1.0"
    assert "carolpw" not in str(recorded) and "pwhash" not in str(recorded)


def test_a_password_change_is_recorded_without_the_password(
    http: httpx.Client, tmp_path: Path
) -> None:
    create_user(http, "dave")
    before = newest_id(http)
    headers = JSON | basic_auth("dave", PASSWORD)
    changed = http.patch("/dave", json={"password": "n3w-secret", "title": "Dave"}, headers=headers)
    assert changed.status_code == 200, changed.text
    [entry] = entries_since(http, before)
    assert (entry["action"], entry["user"]) == ("user.modify", "dave")
    assert entry["detail"] == {"user": "dave", "changed": ["title", "password"]}
    raw = http.get("/+audit", params={"user": "dave"}, headers=JSON | ROOT).text
    assert "n3w-secret" not in raw and "argon2" not in raw


# --- a write that fails leaves no entry -----------------------------------------------------


def test_refused_and_failed_writes_leave_no_entry(http: httpx.Client, tmp_path: Path) -> None:
    create_user(http, "erin")
    create_user(http, "frank")
    erin = JSON | basic_auth("erin", PASSWORD)
    assert http.put("/erin/stable", json={"volatile": False}, headers=erin).status_code == 200
    first = wheel(tmp_path, "pkg", "1.0")
    assert upload_wheel(http, "/erin/stable", first, "erin").status_code == 200
    before = newest_id(http)

    other_bytes = wheel(tmp_path, "pkg", "1.0", payload="x = 1\n")
    duplicate = upload_wheel(http, "/erin/stable", other_bytes, "erin")
    assert duplicate.status_code == 409, duplicate.text
    foreign = http.patch(
        "/erin/stable", json=["title=mine"], headers=JSON | basic_auth("frank", PASSWORD)
    )
    assert foreign.status_code == 403, foreign.text
    anonymous = http.delete("/erin/stable/pkg/1.0", headers=JSON)
    assert anonymous.status_code == 401, anonymous.text
    cycle = http.patch("/erin/stable", json=["bases=erin/stable"], headers=erin)
    assert cycle.status_code == 400, cycle.text
    identical = upload_wheel(http, "/erin/stable", first, "erin")  # no change: no entry
    assert identical.status_code == 200, identical.text

    assert entries_since(http, before) == []


# --- who reads it --------------------------------------------------------------------------


def test_only_root_and_the_index_owner_read_the_trail(http: httpx.Client) -> None:
    create_user(http, "gina")
    create_user(http, "hank")
    gina = basic_auth("gina", PASSWORD)
    assert http.put("/gina/dev", json={}, headers=JSON | gina).status_code == 200
    make_index(http, "hank")

    def status(headers: dict[str, str], **params: str) -> int:
        return http.get("/+audit", params=params, headers=JSON | headers).status_code

    assert status({}) == 401
    assert status({}, index="gina/dev") == 401
    assert status(basic_auth("hank", PASSWORD)) == 403
    assert status(basic_auth("hank", PASSWORD), index="gina/dev") == 403
    assert status(gina) == 403  # the whole trail is root's
    refused = http.get("/+audit", headers=JSON | basic_auth("hank", PASSWORD))
    assert "index owner" in refused.json()["message"]
    assert "gina" not in refused.text

    own = trail(http, gina, index="gina/dev")
    assert [(e["action"], e["index"]) for e in own] == [("index.create", "gina/dev")]
    everything = trail(http)
    assert {"gina/dev", "hank/dev"} <= {e["index"] for e in everything}


def test_bad_parameters_are_a_400_that_says_why(http: httpx.Client) -> None:
    for params, words in [
        ({"limit": "0"}, "limit must be"),
        ({"limit": "5000"}, "limit must be"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"order": "random"}, "order must be"),
        ({"colour": "red"}, "unknown audit parameter"),
    ]:
        response = http.get("/+audit", params=params, headers=JSON | ROOT)
        assert response.status_code == 400, (params, response.text)
        assert words in response.json()["message"]


def test_filters_select_by_user_index_and_time(http: httpx.Client) -> None:
    create_user(http, "ivan")
    ivan = JSON | basic_auth("ivan", PASSWORD)
    assert http.put("/ivan/a", json={}, headers=ivan).status_code == 200
    time.sleep(1.1)  # entries are a second apart: `since` sees only the later ones
    middle = time.time()
    assert http.put("/ivan/b", json={}, headers=ivan).status_code == 200
    assert http.patch("/ivan/b", json=["title=B"], headers=ivan).status_code == 200

    by_ivan = trail(http, user="ivan", order="oldest")
    assert [(e["action"], e["index"]) for e in by_ivan] == [
        ("index.create", "ivan/a"), ("index.create", "ivan/b"), ("index.modify", "ivan/b"),
    ]  # fmt: skip
    assert [e["action"] for e in trail(http, index="ivan/b")] == ["index.modify", "index.create"]
    later = trail(http, user="ivan", since=str(middle))
    assert {e["index"] for e in later} == {"ivan/b"}
    iso = datetime.datetime.fromtimestamp(middle, datetime.UTC).isoformat()  # to the µs
    assert {e["index"] for e in trail(http, user="ivan", until=iso)} == {"ivan/a"}
    assert len(trail(http, user="ivan", limit="1")) == 1
    assert trail(http, user="nobody-at-all") == []


def test_the_packyard_client_reads_the_trail(server: ServerProcess, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url) as http:
        create_user(http, "judy")
        make_index(http, "judy")

    def client(user: str, password: str) -> Packyard:
        credentials = {"PACKYARD_USER": user, "PACKYARD_PASSWORD": password} if user else {}
        return Packyard(tmp_path / (user or "anonymous"), PACKYARD_URL=server.url, **credentials)

    root = client("root", ROOT_PASSWORD)
    printed = root.ok("audit", "--user", "judy")
    assert re.search(r"Z  judy  127\.0\.0\.1  index\.create  judy/dev", printed), printed
    entries = root.json("audit", "--index", "judy/dev", "--oldest-first")
    assert [e["action"] for e in entries] == ["index.create"]

    judy = client("judy", PASSWORD)
    assert "index.create" in judy.ok("audit", "--index", "judy/dev")
    refused = judy.fails("audit")
    assert "403" in refused and "--index USER/INDEX" in refused
    assert "401" in client("", "").fails("audit", "--index", "judy/dev")


# --- the web UI ---------------------------------------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


def test_a_change_made_in_the_browser_names_the_session_user(
    http: httpx.Client, tmp_path: Path
) -> None:
    create_user(http, "kate")
    make_index(http, "kate")
    assert upload_wheel(http, "/kate/dev", wheel(tmp_path, "web", "1.0"), "kate").is_success
    browser = {"Accept": "text/html"}
    login_page = http.get("/+login", headers=browser)
    posted = http.post(
        "/+login",
        data={"user": "kate", "password": PASSWORD, "csrf": _csrf(login_page.text)},
        headers=browser,
    )
    assert posted.status_code == 303, posted.text
    index_page = http.get("/kate/dev", headers=browser)
    assert 'href="/+audit?index=kate%2Fdev"' in index_page.text
    before = newest_id(http)
    form = {"index": "kate/dev", "project": "web", "version": "1.0", "action": "yank"}
    yanked = http.post("/+ui/yank", data=form | {"csrf": _csrf(index_page.text)}, headers=browser)
    assert yanked.status_code == 303, yanked.text
    [entry] = entries_since(http, before)
    assert (entry["action"], entry["user"], entry["address"]) == ("yank", "kate", "127.0.0.1")

    page = http.get("/+audit", params={"index": "kate/dev"}, headers=browser)
    assert page.status_code == 200 and "<table>" in page.text
    assert "yank" in page.text and "index.create" in page.text
    http.cookies.clear()
    assert http.get("/+audit", params={"index": "kate/dev"}, headers=browser).status_code == 401


# --- batches: each upload names its own uploader ------------------------------------------


def test_concurrent_uploads_stored_together_each_name_their_uploader(
    http: httpx.Client, tmp_path: Path
) -> None:
    users = ["lena", "mike"]
    for user in users:
        create_user(http, user)
        make_index(http, user)
    jobs = [(user, wheel(tmp_path, f"p{i}{user}", "1.0")) for i in range(6) for user in users]
    before = newest_id(http)
    results: list[int] = []

    def send(user: str, path: Path) -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=60) as own:
            results.append(upload_wheel(own, f"/{user}/dev", path, user).status_code)

    threads = [threading.Thread(target=send, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * len(jobs)
    uploads = [e for e in entries_since(http, before) if e["action"] == "upload"]
    assert len(uploads) == len(jobs)
    assert all(e["index"] == f"{e['user']}/dev" for e in uploads), uploads


def test_a_batch_records_each_request_as_its_own_actor(services: Services, tmp_path: Path) -> None:
    """In-process, so the batch is certain: two requests' uploads in one `upload_many`."""
    for user in ("nora", "otto"):
        services.accounts.create_initial(user, None, "x")
        services.indexes.create(user, user, "dev", {"volatile": True})
    requests = []
    for user in ("nora", "otto"):
        path = wheel(tmp_path, f"batch{user}", "1.0")
        body = io.BytesIO(path.read_bytes())
        command = UploadCommand(
            UploadAction.RELEASE_FILE, f"batch{user}", "1.0", filename=path.name, content=body
        )
        with audit_rows.acting_as(Actor(user=user, address=f"10.0.0.{len(user)}")):
            requests.append(UploadRequest(user, user, "dev", command))
    with audit_rows.acting_as(Actor(user="somebody-else")):  # the batch runner's own context
        outcomes = services.uploads.upload_many(requests)
    assert all(not isinstance(outcome, Exception) for outcome in outcomes), outcomes
    with services.db.read() as conn:
        entries = audit_rows.query(conn, Query(oldest_first=True))
    uploads = [(e.user, e.index) for e in entries if e.action == "upload"]
    assert uploads == [("nora", "nora/dev"), ("otto", "otto/dev")]


# --- the server's own commands ---------------------------------------------------------------


def run_packyard(*args: str, stdin: str = "") -> str:
    """A server verb in this process, in a context of its own (it names its actor there)."""
    result = contextvars.copy_context().run(
        CliRunner().invoke, main, list(args), input=stdin, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def stored_entries(serverdir: Path) -> list[Entry]:
    services = open_services(Settings(serverdir=serverdir, log_requests=False))
    try:
        with services.db.read() as conn:
            return audit_rows.query(conn, Query(oldest_first=True, limit=rules.MAX_LIMIT))
    finally:
        services.close()


def test_server_commands_are_recorded_as_the_command(tmp_path: Path) -> None:
    serverdir = tmp_path / "server"
    run_packyard("init", "--serverdir", str(serverdir), "--no-root-pypi")
    run_packyard("reset-passwd", "--serverdir", str(serverdir), "root", stdin="s3cret\ns3cret\n")
    entries = stored_entries(serverdir)
    assert [(e.action, e.user) for e in entries] == [
        ("user.create", "(packyard init)"),
        ("user.modify", "(packyard reset-passwd)"),
    ]
    assert entries[1].detail == {"user": "root", "changed": ["password"]}


def test_export_carries_the_trail_and_import_restores_it(
    server: ServerProcess, http: httpx.Client, tmp_path: Path
) -> None:
    create_user(http, "pete")
    make_index(http, "pete")
    exported = tmp_path / "export"
    run_packyard("export", "--serverdir", str(server.serverdir), str(exported))
    dataindex = json.loads((exported / "dataindex.json").read_text())
    assert set(dataindex) == {"dumpversion", "pythonversion", "devpi_server", "users", "indexes"}
    lines = (exported / "packyard-audit.jsonl").read_text().splitlines()
    original = [e for e in trail(http, order="oldest", limit="1000")]
    assert len(lines) == len(original)

    target = tmp_path / "imported"
    run_packyard("import", "--serverdir", str(target), "--no-root-pypi", str(exported))
    restored = stored_entries(target)

    def comparable(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k != "id"}

    assert [comparable(e.view()) for e in restored[:-1]] == [comparable(e) for e in original]
    assert (restored[-1].action, restored[-1].user) == ("import", "(packyard import)")
    assert ("index.create", "pete", "pete/dev") in [(e.action, e.user, e.index) for e in restored]


# --- pure rules ---------------------------------------------------------------------------------


def test_detail_never_shows_a_secret() -> None:
    old = {"mirror_url": "https://bob:hunter2@mirror.example/simple/", "title": "a"}
    new = {"mirror_url": "https://bob:hunter3@mirror.example/simple/", "title": "a"}
    changes = rules.config_changes(old, new)
    assert changes == {
        "mirror_url": {
            "old": "https://bob:***@mirror.example/simple/",
            "new": "https://bob:***@mirror.example/simple/",
        }
    }
    entry = rules.new_entry(1, 0.0, Actor("x"), "user.modify", {"password": "p", "pwhash": "h"})
    assert entry.detail == {}


def test_times_parse_as_utc_and_reject_nonsense() -> None:
    assert rules.parse_time("1970-01-02", "since") == 86400
    assert rules.parse_time("1970-01-01T01:00:00Z", "since") == 3600
    assert rules.parse_time("1970-01-01T02:00:00+01:00", "since") == 3600
    assert rules.parse_time("3600", "since") == 3600
    for bad in ("nan", "inf", "soon", ""):
        with pytest.raises(InvalidInput):
            rules.parse_time(bad, "since")


def test_every_write_is_recorded_unless_named_as_housekeeping() -> None:
    assert rules.action_of("index-modify") == "index.modify"
    assert rules.action_of("a-write-added-later") == "a.write.added.later"
    assert rules.action_of("delete-file") == "file.delete"
    assert rules.action_of("mirror-page") is None
