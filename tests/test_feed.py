"""Many hosts on one PostgreSQL (issue 16): the change feed, host-agreed state, cross-host
single flight, and `/+health`.

Two real `packyard serve` processes with separate server dirs share one real PostgreSQL
database; everything is driven over HTTP on loopback and checked from the outside (pages, the
upstream's request counts, the blobs on disk, the database's rows).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import obstore
import psycopg
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from packyard.storage.db import Database
from packyard.storage.feed import APPLICATION_NAME, parse_payload
from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, LOOPBACK_UPSTREAMS, ROOT_PASSWORD, ServerProcess, free_port
from tests.e2e_support import SIMPLE_JSON, upload
from tests.pg import PostgresCluster
from tests.s3 import S3Server, in_environment
from tests.test_mirror import ROOT_AUTH, create_mirror, create_stage, page_files
from tests.upstream import Upstream

pytestmark = pytest.mark.e2e

POLL_INTERVAL = 2  # change_feed_poll_interval given to the hosts


class Hosts:
    """Hosts A and B (and more on demand) on one database, each with its own server dir."""

    def __init__(self, directory: Path, database: str, blobs: str = "") -> None:
        self.directory = directory
        self.database = database
        self.blobs = blobs  # shared by the hosts: s3://BUCKET/PREFIX; else each its own disk
        self.started: list[ServerProcess] = []

    def host(self, name: str) -> ServerProcess:
        server = ServerProcess(
            self.directory / name, free_port(), self.directory / f"{name}.log", self.database
        )
        server.settings = dict(LOOPBACK_UPSTREAMS, change_feed_poll_interval=str(POLL_INTERVAL))
        if self.blobs:
            server.settings["blobs"] = self.blobs
        self.started.append(server)
        return server

    def logs(self) -> str:
        return "\n".join(f"--- {s.serverdir.name} ---\n{s.log()}" for s in self.started)


@pytest.fixture
def hosts(
    tmp_path: Path, postgres_cluster: PostgresCluster, request: pytest.FixtureRequest
) -> Iterator[Hosts]:
    made = Hosts(tmp_path, postgres_cluster.new_database())
    yield made
    for server in made.started:
        if server.process is not None and server.process.poll() is None:
            server.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(made.logs())


def started(hosts: Hosts, *names: str) -> list[ServerProcess]:
    servers = [hosts.host(name) for name in names]
    for server in servers:  # one after the other: the first initializes the database
        server.start()
    return servers


def upload_file(url: str, index: str, path: Path, headers: dict[str, str]) -> httpx.Response:
    name, version = path.name.removesuffix(".tar.gz").split("-")[:2]
    fields = {"name": name, "version": version}
    with httpx.Client(base_url=url, timeout=30) as client:
        return upload(client, index, path.name, path.read_bytes(), headers, fields)


def listed(client: httpx.Client, index: str, project: str) -> set[str]:
    response = client.get(f"{index}/+simple/{project}/", headers=SIMPLE_JSON)
    if response.status_code == 404:
        return set()
    assert response.status_code == 200, response.text
    return {entry["filename"] for entry in response.json()["files"]}


def is_listed(client: httpx.Client, index: str, project: str, filename: str) -> bool:
    return filename in listed(client, index, project)


def seconds_until(condition: Callable[[], bool], limit: float) -> float:
    """How long until `condition()` holds (polled every few ms); fails after `limit` s."""
    start = time.perf_counter()
    while not condition():
        assert time.perf_counter() - start < limit, f"not within {limit} s"
        time.sleep(0.002)
    return time.perf_counter() - start


def database_rows(database: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


# --- 1. the change feed ------------------------------------------------------------------------


def test_an_upload_through_a_is_listed_on_b_at_once(hosts: Hosts, tmp_path: Path) -> None:
    a, b = started(hosts, "a", "b")
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        create_stage(on_a, "dev", volatile=False)
    lags = []
    with httpx.Client(base_url=b.url, timeout=30) as on_b:
        assert listed(on_b, "/root/dev", "feedlag") == set()  # B has the page cached now
        for number in range(20):
            wheel = build_wheel(tmp_path / "dists", "feedlag", f"1.{number}")
            response = upload_file(a.url, "/root/dev", wheel, ROOT_AUTH)
            assert response.status_code == 200, response.text
            shown = functools.partial(is_listed, on_b, "/root/dev", "feedlag", wheel.name)
            lags.append(seconds_until(shown, 2))
    print(f"upload on A -> listed on B: median {statistics.median(lags) * 1000:.1f} ms,"
          f" max {max(lags) * 1000:.1f} ms over {len(lags)} uploads")  # fmt: skip
    assert max(lags) < 2


def test_a_restarted_host_catches_up_with_writes_made_meanwhile(
    hosts: Hosts, tmp_path: Path
) -> None:
    a, b = started(hosts, "a", "b")
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        create_stage(on_a, "dev", volatile=False)
    b.stop()
    wheel = build_wheel(tmp_path / "dists", "whileaway", "1.0")
    assert upload_file(a.url, "/root/dev", wheel, ROOT_AUTH).status_code == 200
    b.start()
    with httpx.Client(base_url=b.url, timeout=30) as on_b:
        assert listed(on_b, "/root/dev", "whileaway") == {wheel.name}


def test_a_host_whose_listen_connection_was_killed_still_catches_up(
    hosts: Hosts, tmp_path: Path
) -> None:
    """B runs two workers: one of them listens for the host, and both see what it hears."""
    a = started(hosts, "a")[0]
    b = hosts.host("b")
    b.start("--workers", "2")
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        create_stage(on_a, "dev", volatile=False)
    with httpx.Client(base_url=b.url, timeout=30) as on_b:
        assert listed(on_b, "/root/dev", "afterkill") == set()
        killed = database_rows(
            hosts.database,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()",
        )
        assert len(killed) == 2 and all(row[0] for row in killed)  # one listener per host
        wheel = build_wheel(tmp_path / "dists", "afterkill", "1.0")
        assert upload_file(a.url, "/root/dev", wheel, ROOT_AUTH).status_code == 200
        lag = seconds_until(lambda: wheel.name in listed(on_b, "/root/dev", "afterkill"), 5)
    print(f"after the LISTEN connections were killed: listed on B in {lag * 1000:.0f} ms")
    assert lag < POLL_INTERVAL + 1


# --- 2. host-agreed state --------------------------------------------------------------------


def test_a_login_token_issued_by_a_works_on_b_and_an_old_secret_is_adopted(
    hosts: Hosts,
) -> None:
    a = hosts.host("a")
    old_secret = base64.b64encode(secrets.token_bytes(32))
    a.serverdir.mkdir(parents=True)
    (a.serverdir / "secret").write_bytes(old_secret)  # from the days of one host on SQLite
    a.start()
    b = started(hosts, "b")[0]
    stored = database_rows(
        hosts.database, "SELECT value FROM server_settings WHERE key = 'token_secret'"
    )
    assert stored == [(old_secret.decode(),)]
    assert not (b.serverdir / "secret").exists()  # B keeps no secret of its own
    login = httpx.post(
        f"{a.url}/+login", json={"user": "root", "password": ROOT_PASSWORD}, headers=JSON
    )
    token = login.json()["result"]["password"]
    auth = {"X-Devpi-Auth": base64.b64encode(f"root:{token}".encode()).decode()}
    response = httpx.put(f"{b.url}/root/bytoken", json={}, headers=JSON | auth)
    assert response.status_code == 200, response.text
    forged = {"X-Devpi-Auth": base64.b64encode(f"root:{token}x".encode()).decode()}
    assert httpx.put(f"{b.url}/root/forged", json={}, headers=JSON | forged).status_code == 401


# --- 3. single flight across hosts (which share their files in a bucket) ---------------------


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    in_environment(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: S3Server, hosts: Hosts) -> str:
    """A fresh bucket the hosts keep their files in (under `files/`)."""
    name = s3_server.new_bucket()
    hosts.blobs = f"s3://{name}/files"
    return name


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    server.start()
    yield server
    server.stop()


def test_concurrent_requests_for_one_mirror_file_over_two_hosts_fetch_it_once(
    hosts: Hosts, bucket: str, tmp_path: Path, upstream: Upstream
) -> None:
    published = upstream.publish(build_wheel(tmp_path / "dists", "flighty", "1.0"))
    upstream.file_delay = 0.5  # every request overlaps the first download
    a, b = started(hosts, "a", "b")
    with (
        httpx.Client(base_url=a.url, timeout=30) as on_a,
        httpx.Client(base_url=b.url, timeout=30) as on_b,
    ):
        create_mirror(on_a, "mirror", upstream.simple_url, expiry=3600)
        relative = {
            client: str(page_files(client, "/root/mirror", "flighty")[published.filename]["url"])
            for client in (on_a, on_b)
        }

        def fetch(number: int) -> httpx.Response:
            client = (on_a, on_b)[number % 2]
            return client.get(relative[client])

        began = time.perf_counter()
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(fetch, range(20)))
        elapsed = time.perf_counter() - began
    assert [answer.status_code for answer in answers] == [200] * 20
    assert {hashlib.sha256(answer.content).hexdigest() for answer in answers} == {published.sha256}
    print(f"20 requests over 2 hosts: {upstream.count(f'/files/{published.filename}')}"
          f" upstream request(s), {elapsed:.2f} s")  # fmt: skip
    assert upstream.count(f"/files/{published.filename}") == 1
    assert elapsed < 15


def test_concurrent_uploads_of_one_filename_through_two_hosts_one_wins(
    hosts: Hosts, bucket: str, s3_server: S3Server, tmp_path: Path
) -> None:
    a, b = started(hosts, "a", "b")
    with httpx.Client(base_url=a.url, timeout=30) as on_a:
        create_stage(on_a, "dev", volatile=False)
    # Ten builds of one file name, each with other bytes.
    builds = [
        build_sdist(tmp_path / f"build{n}", "racer", "1.0", summary=f"build {n}") for n in range(10)
    ]
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in builds}) == 10

    def send(number: int) -> httpx.Response:
        host = (a, b)[number % 2]
        return upload_file(host.url, "/root/dev", builds[number], ROOT_AUTH)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, range(10)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * 9, [answer.text for answer in answers]
    winner = builds[[answer.status_code for answer in answers].index(200)]
    rows = database_rows(hosts.database, "SELECT sha256, metadata_sha256 FROM files")
    assert [row[0] for row in rows] == [hashlib.sha256(winner.read_bytes()).hexdigest()]
    referenced = {sha for row in rows for sha in row if sha}
    in_bucket = {
        meta["path"].rsplit("/", 1)[-1]
        for batch in obstore.list(s3_server.client(bucket))
        for meta in batch
    }
    assert in_bucket == referenced, "a losing upload left its blob behind"
    cached = {
        path.name
        for server in (a, b)
        for path in (server.serverdir / "blob-cache").rglob("*")
        if path.is_file()
    }
    assert cached <= referenced


# --- 4. health ------------------------------------------------------------------------------


@pytest.fixture
def private_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL of this test's own: it is stopped and started again."""
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def health(server: ServerProcess, path: str = "/+health/ready") -> tuple[int, dict[str, object]]:
    response = httpx.get(f"{server.url}{path}", timeout=10)
    return response.status_code, response.json()


def test_health_reports_the_database_down_and_back(
    tmp_path: Path, private_cluster: PostgresCluster
) -> None:
    hosts = Hosts(tmp_path, private_cluster.new_database())
    server = started(hosts, "a")[0]
    try:
        assert health(server, "/+health") == (200, {"status": "alive"})
        status, body = health(server)
        assert (status, body["failed"]) == (200, []), body
        assert health(server, "/+health?ready")[0] == 200
        private_cluster.pg_ctl("stop", "-m", "fast")
        began = time.perf_counter()
        status, body = health(server)
        took = time.perf_counter() - began
        assert (status, body["failed"]) == (503, ["database"]), body
        assert body["checks"]["blobs"] == "ok"  # type: ignore[index]
        assert "127.0.0.1" not in str(body) and hosts.database not in str(body)
        assert took < 5
        assert health(server, "/+health")[0] == 200  # alive: it still serves
        private_cluster.pg_ctl("start", "-w")
        seconds_until(lambda: health(server)[0] == 200, 15)
    finally:
        server.stop()


def test_a_postgresql_restart_is_survived_by_every_host(
    tmp_path: Path, private_cluster: PostgresCluster
) -> None:
    """While PostgreSQL is down, cached pages still answer and writes answer a clear 503
    promptly; once it is back, both hosts read and write again, without a restart of
    packyard, and the change feed carries a write on one host to the other."""
    hosts = Hosts(tmp_path, private_cluster.new_database())
    a, b = started(hosts, "a", "b")
    on_a, on_b = httpx.Client(base_url=a.url, timeout=60), httpx.Client(base_url=b.url, timeout=60)
    try:
        create_stage(on_a, "dev", volatile=False)
        before = build_wheel(tmp_path / "dists", "restart", "1.0")
        assert upload_file(a.url, "/root/dev", before, ROOT_AUTH).status_code == 200
        seconds_until(lambda: is_listed(on_b, "/root/dev", "restart", before.name), 5)
        assert is_listed(on_a, "/root/dev", "restart", before.name)  # cached on both now
        private_cluster.pg_ctl("stop", "-m", "fast")
        for client in (on_a, on_b):
            assert listed(client, "/root/dev", "restart") == {before.name}
        during = build_wheel(tmp_path / "dists", "restart", "2.0")
        for client in (on_a, on_b):
            began = time.perf_counter()
            refused = upload_file(str(client.base_url), "/root/dev", during, ROOT_AUTH)
            took = time.perf_counter() - began
            assert refused.status_code == 503, refused.text
            assert "database cannot be reached" in refused.text, refused.text
            assert "127.0.0.1" not in refused.text and "Traceback" not in refused.text
            assert refused.headers["retry-after"]
            assert took < 10, f"{took:.1f} s"
            print(f"upload while PostgreSQL is down: 503 in {took * 1000:.0f} ms")
            made = client.put("/root/other", json={}, headers=ROOT_AUTH)
            assert made.status_code == 503, made.text
        private_cluster.pg_ctl("start", "-w")
        assert upload_file(a.url, "/root/dev", during, ROOT_AUTH).status_code == 200
        lag = seconds_until(lambda: is_listed(on_b, "/root/dev", "restart", during.name), 15)
        after = build_wheel(tmp_path / "dists", "restart", "3.0")
        assert upload_file(b.url, "/root/dev", after, ROOT_AUTH).status_code == 200
        back = seconds_until(lambda: is_listed(on_a, "/root/dev", "restart", after.name), 15)
        print(f"after the restart: A's write on B in {lag:.2f} s, B's on A in {back:.2f} s")
        assert listed(on_a, "/root/dev", "restart") == {before.name, during.name, after.name}
        assert on_b.put("/root/other", json={}, headers=ROOT_AUTH).status_code == 200
    finally:
        on_a.close()
        on_b.close()
        for server in (a, b):
            server.stop()


def test_write_transactions_of_two_hosts_take_turns(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    """The writer's turn spans hosts: a second host's write waits for the first's commit, so
    its look-ups see the first's rows, and serials commit in their order (a host never
    publishes a serial while a smaller one is still invisible)."""
    url = postgres_cluster.new_database()
    one, two = (Database(url, _serial_path(tmp_path / name)) for name in ("one", "two"))
    entered = threading.Event()
    order: list[str] = []

    def first() -> None:
        with one.write("first") as conn:
            conn.execute(text("SELECT 1"))
            entered.set()
            time.sleep(0.5)
            order.append("first commits")

    def second() -> None:
        entered.wait(5)
        began = time.perf_counter()
        with two.write("second"):
            order.append(f"second enters after {time.perf_counter() - began:.1f} s")

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert order[0] == "first commits", order
        assert float(order[1].split()[-2]) >= 0.3, order
    finally:
        one.close()
        two.close()


def _serial_path(directory: Path) -> Path:
    directory.mkdir(parents=True)
    return directory / "serial"


def test_health_in_process_is_open_to_anonymous_callers(client: TestClient) -> None:
    """Liveness and readiness on either database, for anyone; nothing else is revealed."""
    alive = client.get("/+health")
    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
    assert alive.headers["cache-control"] == "no-store"
    ready = client.get("/+health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready", "checks": {"database": "ok", "blobs": "ok"}, "failed": []
    }  # fmt: skip
    assert client.get("/+health?ready").json() == ready.json()


@pytest.mark.parametrize(
    ("payload", "parsed"),
    [("12", (12, False)), ("12,config", (12, True)), ("", None), ("x,config", None), ("-1", None)],
)
def test_a_notification_payload_is_a_serial_and_maybe_config(
    payload: str, parsed: tuple[int, bool] | None
) -> None:
    assert parse_payload(payload) == parsed
