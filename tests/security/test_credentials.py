"""Attacks on credentials, against the real server process on loopback: password guessing
(throttled, bounded memory), wrong credentials taken for anonymous, tokens that outlive a
password change, a logout or their user, look-alike user names, login CSRF, and what the
server tells strangers about itself and its users."""

from __future__ import annotations

import base64
import json
import re
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from packyard.core.names import user_key
from packyard.errors import Busy, TooManyAttempts
from packyard.services import Services
from packyard.services.accounts import load_secret
from packyard.services.throttle import HashingLimit, LoginThrottle
from packyard.storage import store
from packyard.storage.db import MIGRATIONS, Database
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess, basic_auth, free_port
from tests.devpi_client import Devpi
from tests.devpi_client import devpi_executable as devpi_executable  # a fixture
from tests.e2e_support import print_log_if_failed, running_server
from tests.packyard_cli import Packyard

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse"
BROWSER = {"Accept": "text/html,application/xhtml+xml"}
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("credentials")) as started:
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield
    print_log_if_failed(request, server)


def client_from(server: ServerProcess, address: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from `address` (any of 127/8 is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, timeout=60)


def devpi_auth(user: str, secret: str) -> dict[str, str]:
    return {"X-Devpi-Auth": base64.b64encode(f"{user}:{secret}".encode()).decode()}


def make_user(server: ServerProcess, name: str, **info: Any) -> None:
    with client_from(server) as client:
        response = client.put(f"/{name}", json={"password": PASSWORD, **info}, headers=JSON)
    assert response.status_code == 201, response.text


def login(client: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/+login", json={"user": user, "password": password}, headers=JSON)


def token_of(client: httpx.Client, user: str, password: str = PASSWORD) -> str:
    response = login(client, user, password)
    assert response.status_code == 200, response.text
    return str(response.json()["result"]["password"])


def user_names(client: httpx.Client) -> list[str]:
    return sorted(client.get("/", headers=JSON).json()["result"])


# --- guessing passwords ------------------------------------------------------------------------


def test_twenty_wrong_passwords_are_throttled_with_retry_after(server: ServerProcess) -> None:
    make_user(server, "victim")
    make_user(server, "bystander")
    statuses, refused = [], []
    with client_from(server, "127.0.0.2") as attacker:
        for attempt in range(20):
            started = time.monotonic()
            response = login(attacker, "victim", f"guess-{attempt}")
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused.append((response, time.monotonic() - started))
        assert statuses[:10] == [401] * 10, statuses
        assert statuses[10:] == [429] * 10, statuses
        for response, seconds in refused:
            assert int(response.headers["retry-after"]) > 0
            assert "too many failed logins" in response.json()["message"]
            assert seconds < 1.0, "a refused guess must not cost a password hash"
        # The same limit holds for passwords sent with any request, and for the right one.
        assert attacker.get("/+api", headers=JSON | basic_auth("victim", "x")).status_code == 429
        assert login(attacker, "victim").status_code == 429
    # Another user, from another address, is not locked out.
    with client_from(server, "127.0.0.3") as someone:
        assert login(someone, "bystander").status_code == 200


def test_a_successful_login_forgets_that_users_typos(server: ServerProcess) -> None:
    make_user(server, "typist")
    with client_from(server, "127.0.0.4") as client:
        for _round in range(2):
            for attempt in range(9):
                assert login(client, "typist", f"typo-{attempt}").status_code == 401
            assert login(client, "typist").status_code == 200


def test_a_wrong_password_on_any_request_is_401_not_anonymous(server: ServerProcess) -> None:
    make_user(server, "walter")
    with client_from(server, "127.0.0.5") as client:
        for path in ("/+api", "/", "/root/pypi/+simple/", "/walter"):
            for headers in (devpi_auth("walter", "wrong"), basic_auth("walter", "wrong")):
                response = client.get(path, headers=JSON | headers)
                assert response.status_code == 401, (path, response.text)
                assert "could not be authenticated" in response.json()["message"]
                assert response.headers["www-authenticate"] == 'Basic realm="packyard"'
        garbage = client.get("/+api", headers=JSON | {"X-Devpi-Auth": "not base64!"})
        assert garbage.status_code == 401
        assert "could not be read" in garbage.json()["message"]


def peak_rss(pid: int) -> int:
    """Bytes of the process's peak resident memory (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert found, status
    return int(found.group(1)) * 1024


def test_thirty_parallel_wrong_passwords_keep_memory_bounded(server: ServerProcess) -> None:
    """Each argon2 check takes 64 MiB: 30 at once were 1.9 GB; now two run at a time."""
    users = [f"crowd{number}" for number in range(5)]
    for name in users:
        make_user(server, name)
    assert server.process is not None
    pid = server.process.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to the current size
    before = peak_rss(pid)

    def guess(number: int) -> int:
        with client_from(server, f"127.0.0.{10 + number}") as client:
            headers = JSON | devpi_auth(users[number % len(users)], f"guess-{number}")
            return client.get("/+api", headers=headers).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(guess, range(30)))
    elapsed = time.monotonic() - started
    grown = peak_rss(pid) - before
    assert grown < 400 * MIB, f"peak memory grew by {grown / MIB:.0f} MiB"
    assert set(statuses) <= {401, 503}, statuses  # wrong, or "busy: retry" once past the queue
    assert elapsed < 60
    print(f"30 parallel wrong passwords: {statuses.count(401)} x 401, "
          f"{statuses.count(503)} x 503, peak +{grown / MIB:.0f} MiB, {elapsed:.1f} s")  # fmt: skip


# --- tokens that should have died -------------------------------------------------------------


def assert_token_dead(client: httpx.Client, user: str, token: str) -> None:
    for headers in (devpi_auth(user, token), basic_auth(user, token)):
        response = client.get("/+api", headers=JSON | headers)
        assert response.status_code == 401, response.text
        assert "log in again" in response.json()["message"]
        # devpi-client drops a stored token when a 401 carries a Location, and says so.
        assert response.headers["location"] == "/+login"


def assert_token_works(client: httpx.Client, user: str, token: str) -> None:
    response = client.get("/+api", headers=JSON | devpi_auth(user, token))
    assert response.status_code == 200, response.text
    assert response.json()["result"]["authstatus"] == ["ok", user, []]


def test_a_token_dies_with_a_password_change(server: ServerProcess) -> None:
    make_user(server, "dave")
    with client_from(server) as client:
        old = token_of(client, "dave")
        assert_token_works(client, "dave", old)
        changed = client.patch(
            "/dave", json={"password": "new-horse"}, headers=JSON | devpi_auth("dave", old)
        )
        assert changed.status_code == 200, changed.text
        assert_token_dead(client, "dave", old)
        assert_token_works(client, "dave", changed.json()["result"]["password"])


def test_a_token_dies_with_a_logout(server: ServerProcess) -> None:
    make_user(server, "erin")
    with client_from(server) as client:
        first, second = token_of(client, "erin"), token_of(client, "erin")
        response = client.post("/+logout", headers=JSON | devpi_auth("erin", first))
        assert response.status_code == 200, response.text
        assert "revoked" in response.json()["message"]
        assert_token_dead(client, "erin", first)
        assert_token_dead(client, "erin", second)  # logging out revokes all of the user's
        assert_token_works(client, "erin", token_of(client, "erin"))


def test_the_packyard_client_logoff_revokes_the_token(
    server: ServerProcess, tmp_path: Path
) -> None:
    make_user(server, "fiona")
    client = Packyard(tmp_path / "home")
    client.ok("use", server.url)
    client.ok("login", "fiona", "--password", PASSWORD)
    state = json.loads((client.clientdir / "client.json").read_text())
    token = state["tokens"][server.url]["fiona"]
    assert "revoked" in client.ok("logoff")
    with client_from(server) as http:
        assert_token_dead(http, "fiona", token)


def test_devpi_client_is_told_its_token_died_and_can_log_in_again(
    server: ServerProcess, devpi_executable: Path, tmp_path: Path
) -> None:
    make_user(server, "gina")
    devpi = Devpi(devpi_executable, tmp_path / "home")
    devpi.ok("use", server.url)
    devpi.ok("login", "gina", "--password", PASSWORD)
    with client_from(server) as client:  # gina logs out elsewhere (the web UI, another client)
        token = devpi.token("gina")
        assert client.post("/+logout", headers=JSON | devpi_auth("gina", token)).is_success
    stale = devpi.fails("use", server.url)
    assert "removed expired authentication information" in stale
    assert "no longer valid" in stale and "log in again" in stale
    assert "gina" in devpi.ok("login", "gina", "--password", PASSWORD)
    assert "logged in as gina" in devpi.ok("use")


def test_a_token_does_not_work_for_a_re_registered_name(server: ServerProcess) -> None:
    make_user(server, "frank")
    with client_from(server) as client:
        old = token_of(client, "frank")
        deleted = client.delete("/frank", headers=JSON | devpi_auth("frank", old))
        assert deleted.status_code == 200, deleted.text
        make_user(server, "frank", email="new-frank@example.invalid")  # someone else
        assert_token_dead(client, "frank", old)
        takeover = client.patch(
            "/frank", json={"email": "old-frank@example.invalid"},
            headers=JSON | devpi_auth("frank", old),
        )  # fmt: skip
        assert takeover.status_code == 401
        mine = client.get("/frank", headers=JSON | basic_auth("frank", PASSWORD))
        assert mine.json()["result"]["email"] == "new-frank@example.invalid"


# --- names that look alike --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("ALICE", 409),
        ("Alice", 409),
        ("\u0430lice", 400),  # Cyrillic a
        ("root\u200b", 400),  # zero width space
        ("ro\u202eot", 400),  # right-to-left override
        ("jos\u00e9", 400),  # NFC
        ("jose\u0301", 400),  # its NFD twin
        ("\uff41lice", 400),  # fullwidth a
    ],
)
def test_look_alike_user_names_are_refused(server: ServerProcess, name: str, status: int) -> None:
    with client_from(server) as client:
        if "alice" not in user_names(client):
            make_user(server, "alice")
        response = client.put(f"/{name}", json={"password": "x"}, headers=JSON)
        assert response.status_code == status, response.text
        assert response.json()["message"]
        assert name not in user_names(client)


def test_user_keys_ignore_case_compatibility_forms_and_invisible_characters() -> None:
    assert user_key("ALICE") == user_key("Alice") == user_key("\uff41lice") == "alice"
    assert user_key("root\u200b") == user_key("ro\u202eot") == "root"
    assert user_key("jos\u00e9") == user_key("jose\u0301")
    assert user_key("\u0430lice") != "alice"  # not a compatibility form: refused as non-ASCII


# --- login CSRF ----------------------------------------------------------------------------------


def test_the_login_form_needs_its_csrf_token(server: ServerProcess) -> None:
    make_user(server, "mallory")
    form = {"user": "mallory", "password": PASSWORD, "next": "/"}
    with client_from(server) as forged:
        for extra in ({}, {"csrf": "0" * 64}):
            response = forged.post("/+login", data=form | extra, headers=BROWSER)
            assert response.status_code == 403, response.text
            assert "form expired or came from another site" in response.text
            assert "packyard_session" not in response.headers.get("set-cookie", "")
    with client_from(server) as browser:
        page = browser.get("/+login", headers=BROWSER)
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf, page.text
        response = browser.post("/+login", data=form | {"csrf": csrf.group(1)}, headers=BROWSER)
        assert response.status_code == 303, response.text
        assert "packyard_session=" in response.headers["set-cookie"]


# --- what strangers may see -------------------------------------------------------------------


def test_status_shows_the_server_dir_to_root_only(server: ServerProcess) -> None:
    secret_facts = ("serverdir", "host", "port", "mirror-cache", "outside-url")
    with client_from(server) as client:
        anonymous = client.get("/+status", headers=JSON).json()["result"]
        assert anonymous["versioninfo"] and "serial" in anonymous
        assert not set(secret_facts) & set(anonymous), anonymous
        page = client.get("/+status", headers=BROWSER)
        assert page.status_code == 200 and str(server.serverdir) not in page.text
        as_root = client.get("/+status", headers=JSON | basic_auth("root", ROOT_PASSWORD))
        assert as_root.json()["result"]["serverdir"] == str(server.serverdir)


def test_email_and_custom_data_are_for_the_user_and_root(server: ServerProcess) -> None:
    private = {"email": "carol@example.invalid", "custom_data": "badge 42"}
    make_user(server, "carol", title="Carol", **private)
    make_user(server, "nosy")
    with client_from(server) as client:
        viewers: dict[str, dict[str, str]] = {
            "anonymous": {},
            "nosy": basic_auth("nosy", PASSWORD),
            "carol": basic_auth("carol", PASSWORD),
            "root": basic_auth("root", ROOT_PASSWORD),
        }
        for viewer, headers in viewers.items():
            one = client.get("/carol", headers=JSON | headers).json()["result"]
            listed = client.get("/", headers=JSON | headers).json()["result"]["carol"]
            for shown in (one, listed):
                assert shown["title"] == "Carol"
                if viewer in ("carol", "root"):
                    assert {key: shown[key] for key in private} == private, viewer
                else:
                    assert not set(private) & set(shown), (viewer, shown)
        page = client.get("/carol", headers=BROWSER)
        assert "carol@example.invalid" not in page.text and "badge 42" not in page.text


# --- files on disk --------------------------------------------------------------------------------


def private_files(serverdir: Path) -> dict[str, int]:
    names = ["packyard.sqlite3", "packyard.sqlite3-wal", "packyard.sqlite3-shm", "secret"]
    return {
        name: stat.S_IMODE((serverdir / name).stat().st_mode)
        for name in names
        if (serverdir / name).exists()
    }


def test_the_database_and_secret_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", free_port(), tmp_path / "server.log")
    server.start()
    try:
        modes = private_files(server.serverdir)
        assert {"packyard.sqlite3", "secret"} <= set(modes)
        assert set(modes.values()) == {0o600}, modes
    finally:
        server.stop()
    for path in server.serverdir.iterdir():  # as an older version left them
        if path.name in modes:
            path.chmod(0o644)
    server.start()
    try:
        assert set(private_files(server.serverdir).values()) == {0o600}
    finally:
        server.stop()


# --- in process: the throttle's rules, imported names, tokens and databases from before ------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failed_guess(throttle: LoginThrottle, user: str, address: str) -> None:
    with throttle.guess(user, address):
        pass


def test_the_throttle_counts_per_user_in_a_sliding_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=3, per_address=100, window=60, clock=clock)
    for _ in range(3):
        failed_guess(throttle, "alice", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        failed_guess(throttle, "ALICE", "10.0.0.2")  # the same user however spelt, from anywhere
    assert refused.value.retry_after == 60
    clock.now += 61
    failed_guess(throttle, "alice", "10.0.0.1")  # the old failures aged out


def test_the_throttle_counts_per_address() -> None:
    throttle = LoginThrottle(per_user=100, per_address=5, window=60, clock=Clock())
    for number in range(5):
        failed_guess(throttle, f"user{number}", "10.0.0.1")
    with pytest.raises(TooManyAttempts, match="from your address"):
        failed_guess(throttle, "user9", "10.0.0.1")
    failed_guess(throttle, "user9", "10.0.0.2")


def test_a_success_forgets_that_pairs_failures_and_an_unjudged_guess_is_withdrawn() -> None:
    throttle = LoginThrottle(per_user=4, per_address=100, window=60, clock=Clock())
    failed_guess(throttle, "bob", "10.0.0.1")
    failed_guess(throttle, "bob", "10.0.0.1")
    failed_guess(throttle, "bob", "10.0.0.2")  # someone else's guess stays counted
    with throttle.guess("bob", "10.0.0.1") as guess:
        guess.correct = True  # bob's own typos from 10.0.0.1 are forgotten: 1 failure left
    with pytest.raises(Busy), throttle.guess("bob", "10.0.0.3"):
        raise Busy("no time to judge it", 1)  # not judged: not counted
    for _ in range(3):
        failed_guess(throttle, "bob", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        failed_guess(throttle, "bob", "10.0.0.1")


def test_hashing_beyond_the_bound_waits_briefly_then_is_refused() -> None:
    no_queue = HashingLimit(concurrency=1, waiting=0, timeout=5)
    with no_queue.slot():
        started = time.monotonic()
        with pytest.raises(Busy), no_queue.slot():
            pass
        assert time.monotonic() - started < 0.5  # refused at once
    queued = HashingLimit(concurrency=1, waiting=1, timeout=0.2)
    with queued.slot():
        started = time.monotonic()
        with pytest.raises(Busy), queued.slot():
            pass
        assert 0.15 < time.monotonic() - started < 2  # waited its turn, then gave up


def test_imported_names_keep_working_and_block_their_look_alikes(
    client: TestClient, services: Services, root_pwhash: str
) -> None:
    """Users imported with names the new rule refuses still log in; new look-alikes are 409."""
    for name in ("jos\u00e9", "Bob"):
        services.accounts.create_initial(name, None, pwhash=root_pwhash)
    credentials = {"user": "jos\u00e9", "password": ROOT_PASSWORD}
    assert client.post("/+login", json=credentials, headers=JSON).status_code == 200
    twin = client.put("/bob", json={"password": "x"}, headers=JSON)
    assert twin.status_code == 409, twin.text
    assert "'Bob'" in twin.json()["message"]


def test_a_token_signed_before_the_stamps_is_refused(
    client: TestClient, services: Services
) -> None:
    secret = load_secret(services.db, services.settings.serverdir / "secret")
    old_style = URLSafeTimedSerializer(secret, salt="packyard-auth").dumps("root")
    response = client.get("/+api", headers=JSON | basic_auth("root", str(old_style)))
    assert response.status_code == 401
    assert "log in again" in response.json()["message"]


def test_the_upgrade_gives_existing_users_a_token_stamp(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'packyard.sqlite3'}"
    engine = create_engine(url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(
            text("INSERT INTO users (name, pwhash, info, created) VALUES ('old', 'x', '{}', 'x')")
        )
    engine.dispose()
    database = Database(url, tmp_path / "serial")
    try:
        with database.read() as connection:
            user = store.get_user(connection, "old")
    finally:
        database.close()
    assert user is not None and len(user.token_stamp) == 32


def test_a_burst_of_the_right_password_is_not_a_burst_of_guesses(services: Services) -> None:
    """A parallel installer sending the correct password 30 times at once: one hash, the
    rest wait for it, and none is throttled as a guess."""
    with ThreadPoolExecutor(max_workers=30) as pool:
        logins = [
            pool.submit(services.accounts.login, "root", ROOT_PASSWORD, "127.0.0.9")
            for _ in range(30)
        ]
        tokens = [login.result().token for login in logins]
    assert len(tokens) == 30
