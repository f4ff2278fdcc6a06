"""Attacks through the server's own outbound requests (push to any URL, mirrors as an SSRF and
port-scanning tool, oversized upstreams, anonymous refresh), tried against real server
processes on loopback. What the attacker sees, what reached the internal targets, and what
was stored are all checked."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from packyard.services.outbound import DestinationRule
from tests.builders import build_wheel
from tests.conftest import JSON, LOOPBACK_UPSTREAMS, ROOT_PASSWORD, ServerProcess, basic_auth
from tests.e2e_support import PASSWORD, blob_files, create_index, create_user, upload

pytestmark = pytest.mark.e2e

ROOT = JSON | basic_auth("root", ROOT_PASSWORD)
ALICE = JSON | basic_auth("alice", PASSWORD)
BOB = JSON | basic_auth("bob", PASSWORD)
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
SECRET = b"INTERNAL-SECRET-" * 12_500  # 200 KB an internal host would hand out
PAGE_LINKS_CAP = 1000
PAGE_SIZE_CAP = 400_000


# --- loopback helpers: a scripted HTTP responder, a listener that counts, a silent port -------


class Responder:
    """A tiny HTTP server answering scripted (status, content type, body) per path, and
    counting every request it receives."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.hits: Counter[str] = Counter()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits[self.path] += 1
                status, kind, body = owner.routes.get(self.path, (404, "text/plain", b"no"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """A listening socket that records connections and never answers (a hung service)."""

    def __init__(self, accept: bool = True) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._held: list[socket.socket] = []
        self._closing = False
        if accept:
            threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._closing:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            self._held.append(conn)

    def close(self) -> None:
        self._closing = True
        time.sleep(0.15)
        for conn in self._held:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def responder() -> Iterator[Responder]:
    started = Responder()
    yield started
    started.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    started = Listener()
    yield started
    started.close()


def serve(directory: Path, **settings: str) -> ServerProcess:
    server = ServerProcess(directory / "server", closed_port(), directory / "server.log")
    server.settings = dict(settings)
    server.start()
    return server


def with_release(server: ServerProcess, tmp_path: Path) -> None:
    """alice (with alice/dev holding demo 1.0) and bob."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        create_user(http, "alice")
        create_user(http, "bob")
        create_index(http, "alice", "dev")
        wheel = build_wheel(tmp_path, "demo", "1.0")
        auth = basic_auth("alice", PASSWORD)
        fields = {"name": "demo", "version": "1.0"}
        response = upload(http, "/alice/dev", wheel.name, wheel.read_bytes(), auth, fields)
        assert response.status_code == 200


@contextmanager
def running(directory: Path, **settings: str) -> Iterator[ServerProcess]:
    """A started server with alice's release; its log is printed when a test failed."""
    server = serve(directory, **settings)
    try:
        with_release(server, directory)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default settings: no internal destinations, no external push."""
    with running(tmp_path_factory.mktemp("default")) as server:
        yield server


@pytest.fixture(scope="module")
def push_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """External pushes on, internal destinations still refused."""
    with running(tmp_path_factory.mktemp("push"), allow_external_push="true") as server:
        yield server


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Root opted in: loopback upstreams, external pushes; small caps and timeouts."""
    with running(
        tmp_path_factory.mktemp("open"), **LOOPBACK_UPSTREAMS, allow_external_push="true",
        mirror_timeout="2", outbound_file_deadline="3",
        outbound_max_page_links=str(PAGE_LINKS_CAP), outbound_max_page_size=str(PAGE_SIZE_CAP),
    ) as server:  # fmt: skip
        yield server


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for name in ("default_server", "push_server", "open_server"):
            if name in request.fixturenames:
                server = request.getfixturevalue(name)
                print(f"--- {name} log ---\n{server.log()}")


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def push_body(posturl: str) -> dict[str, str]:
    return {"name": "demo", "version": "1.0", "posturl": posturl, "username": "u", "password": "p"}


def assert_api_quick(server: ServerProcess, bound: float = 3.0) -> None:
    """The server answers at once; the bound allows a loaded machine, not a stuck server."""
    started = time.monotonic()
    response = httpx.get(f"{server.url}/+api", timeout=10)
    assert response.status_code == 200
    assert time.monotonic() - started < bound, "the server must keep answering"


# --- push to an external URL ------------------------------------------------------------------


def test_push_to_an_internal_posturl_is_refused_without_any_connection(
    default_server: ServerProcess, listener: Listener
) -> None:
    with client(default_server) as http:
        target = f"http://127.0.0.1:{listener.port}/legacy/"
        for headers in (JSON, ALICE):
            response = http.post("/alice/dev", json=push_body(target), headers=headers)
            assert response.status_code == 403, response.text
            assert "allow_external_push" in response.json()["message"]
    time.sleep(0.3)
    assert listener.connections == 0


def test_enabled_push_needs_upload_rights_and_refuses_internal_hosts_without_connecting(
    push_server: ServerProcess, listener: Listener
) -> None:
    with client(push_server) as http:
        internal = f"http://127.0.0.1:{listener.port}/legacy/"
        assert http.post("/alice/dev", json=push_body(internal)).status_code == 401
        assert http.post("/alice/dev", json=push_body(internal), headers=BOB).status_code == 403
        for url in (internal, f"http://localhost:{listener.port}/", "http://169.254.169.254/"):
            refused = http.post("/alice/dev", json=push_body(url), headers=ALICE)
            assert refused.status_code == 400, refused.text
            assert "outbound_allowed_networks" in refused.json()["message"]
    time.sleep(0.3)
    assert listener.connections == 0


def test_a_push_target_s_answer_and_connection_errors_are_not_echoed(
    open_server: ServerProcess, responder: Responder
) -> None:
    responder.routes["/legacy/"] = (500, "text/plain", b"REMOTE-BODY " + SECRET[:100])
    with client(open_server) as http:
        answered = http.post(
            "/alice/dev", json=push_body(f"{responder.url}/legacy/"), headers=ALICE
        )
        assert answered.status_code == 502
        assert answered.json()["result"][0][:2] == [500, "upload"]
        assert b"REMOTE-BODY" not in answered.content and b"SECRET" not in answered.content
        closed = f"http://127.0.0.1:{closed_port()}/legacy/"
        failed = http.post("/alice/dev", json=push_body(closed), headers=ALICE)
        assert failed.status_code == 502
        (row,) = failed.json()["result"]
        assert row[0] == -1 and "refused" not in json.dumps(row).lower()
    assert responder.hits["/legacy/"] == 1


def test_fifty_hanging_pushes_and_fetches_do_not_stop_the_server(
    open_server: ServerProcess, listener: Listener
) -> None:
    hung = f"http://127.0.0.1:{listener.port}"
    with client(open_server) as http:
        mirror = {"type": "mirror", "mirror_url": f"{hung}/simple/"}
        assert http.put("/root/hung", json=mirror, headers=ROOT).status_code == 200
        # A token, as the devpi client sends: 25 password checks at once would meet the
        # login throttle, which is not what this test is about.
        login = http.post("/+login", json={"user": "alice", "password": PASSWORD}, headers=JSON)
        alice = JSON | basic_auth("alice", login.json()["result"]["password"])

    async def attack() -> list[int]:
        async with httpx.AsyncClient(base_url=open_server.url, timeout=30) as client:
            pushes = [
                client.post("/alice/dev", json=push_body(f"{hung}/legacy/"), headers=alice)
                for _ in range(25)
            ]
            pages = [client.get(f"/root/hung/+simple/p{n}/") for n in range(25)]
            tasks = [asyncio.ensure_future(call) for call in pushes + pages]
            await asyncio.sleep(1.0)  # every request is in flight, waiting on the hung port
            probe = await client.get("/+api")
            assert probe.status_code == 200
            # Answered while the fetches still hang (not after they gave up): a load-proof bound.
            assert not all(task.done() for task in tasks), "the server must keep answering"
            return [response.status_code for response in await asyncio.gather(*tasks)]

    started = time.monotonic()
    statuses = asyncio.run(attack())
    assert statuses == [502] * 50
    assert time.monotonic() - started < 15, "every hung fetch ends within its deadline"
    assert_api_quick(open_server)


# --- mirrors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "url", "status"),
    [
        ("alice", "http://127.0.0.1:8080/simple/", 403),
        ("alice", "http://example.invalid/simple/", 403),
        ("root", "http://127.0.0.1:8080/simple/", 400),
        ("root", "http://169.254.169.254/latest/", 400),
        ("root", "http://[::1]:8080/simple/", 400),
        ("root", "http://localhost:8080/simple/", 400),
        ("root", "file:///etc/passwd", 400),
    ],
)
def test_internal_or_user_made_mirrors_are_refused(
    default_server: ServerProcess, who: str, url: str, status: int
) -> None:
    with client(default_server) as http:
        headers = ALICE if who == "alice" else ROOT
        name = f"m{abs(hash((who, url)))}"
        config = {"type": "mirror", "mirror_url": url}
        response = http.put(f"/alice/{name}", json=config, headers=headers)
        assert response.status_code == status, response.text
        assert http.get(f"/alice/{name}", headers=JSON).status_code == 404, "nothing created"


def test_a_file_url_on_another_internal_host_is_refused_and_none_of_it_reaches_the_client(
    open_server: ServerProcess, responder: Responder
) -> None:
    secret_host = Responder()  # another service on loopback, e.g. a metadata endpoint
    try:
        secret_host.routes["/secret.whl"] = (200, "application/octet-stream", SECRET)
        name = "evil-1.0-py3-none-any.whl"
        entry = {"filename": name, "url": f"{secret_host.url}/secret.whl",
                 "hashes": {"sha256": hashlib.sha256(SECRET).hexdigest()}}  # fmt: skip
        page = {"meta": {"api-version": "1.1"}, "name": "evil", "files": [entry]}
        responder.routes["/simple/evil/"] = (200, SIMPLE_JSON["Accept"], json.dumps(page).encode())
        with httpx.Client(base_url=open_server.url, timeout=30) as http:
            mirror = {"type": "mirror", "mirror_url": f"{responder.url}/simple/"}
            assert http.put("/root/up", json=mirror, headers=ROOT).status_code == 200
            listed = http.get("/root/up/+simple/evil/", headers=SIMPLE_JSON).json()["files"]
            url = str(httpx.URL(f"{open_server.url}/root/up/+simple/evil/").join(listed[0]["url"]))
            response = http.get(url)
            assert response.status_code == 502
            assert b"INTERNAL-SECRET" not in response.content
            assert http.get("/root/up/+cached", headers=JSON).json()["result"] == []
        assert secret_host.hits["/secret.whl"] == 0, "no connection to the other host"
    finally:
        secret_host.close()


def test_a_file_larger_than_declared_is_cut_off_and_not_kept(
    open_server: ServerProcess, responder: Responder
) -> None:
    name = "big-1.0-py3-none-any.whl"
    responder.routes[f"/files/{name}"] = (200, "application/octet-stream", SECRET)
    sha = hashlib.sha256(SECRET).hexdigest()
    # The page declares 1000 bytes; the upstream sends 200 KB (whose hash the page gives).
    entry = {"filename": name, "url": f"/files/{name}", "size": 1000, "hashes": {"sha256": sha}}
    page = {"meta": {"api-version": "1.1"}, "name": "big", "files": [entry]}
    responder.routes["/simple/big/"] = (200, SIMPLE_JSON["Accept"], json.dumps(page).encode())
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        mirror = {"type": "mirror", "mirror_url": f"{responder.url}/simple/"}
        assert http.put("/root/big", json=mirror, headers=ROOT).status_code == 200
        response = http.get(f"/root/big/+f/{sha[:3]}/{sha[3:16]}/{name}")
        assert response.status_code == 502, response.text
        assert b"INTERNAL-SECRET" not in response.content
        assert http.get("/root/big/+cached", headers=JSON).json()["result"] == []
    assert not [path for path in blob_files(open_server) if path.name == sha]


@pytest.mark.parametrize("excess", ["links", "bytes"])
def test_an_oversized_upstream_page_is_a_clean_502_and_stalls_nothing(
    open_server: ServerProcess, responder: Responder, excess: str
) -> None:
    count = PAGE_LINKS_CAP + 1 if excess == "links" else 10
    files = [
        {
            "filename": f"huge-{n}.0-py3-none-any.whl",
            "url": f"/f/{n}",
            "hashes": {"sha256": "0" * 64},
        }
        for n in range(count)
    ]
    padding = "x" * (PAGE_SIZE_CAP + 1) if excess == "bytes" else ""
    page = {"meta": {"api-version": "1.1", "pad": padding}, "name": "huge", "files": files}
    responder.routes["/simple/huge/"] = (200, SIMPLE_JSON["Accept"], json.dumps(page).encode())
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        mirror = {"type": "mirror", "mirror_url": f"{responder.url}/simple/"}
        assert http.put(f"/root/huge-{excess}", json=mirror, headers=ROOT).status_code == 200
        started = time.monotonic()
        response = http.get(f"/root/huge-{excess}/+simple/huge/", headers=SIMPLE_JSON)
        assert response.status_code == 502, response.text
        assert time.monotonic() - started < 5
        if excess == "links":
            assert "outbound_max_page_links" in response.text
    assert_api_quick(open_server)
    assert "upstream error" in open_server.log()


def test_upstream_errors_read_the_same_for_open_and_closed_ports(
    open_server: ServerProcess, listener: Listener
) -> None:
    garbage = Listener(accept=False)  # accepts at the TCP level, never speaks HTTP
    try:
        with httpx.Client(base_url=open_server.url, timeout=30) as http:
            texts = []
            for name, port in (("m-closed", closed_port()), ("m-hangs", listener.port),
                               ("m-mutes", garbage.port)):  # fmt: skip
                mirror = {"type": "mirror", "mirror_url": f"http://127.0.0.1:{port}/simple/"}
                assert http.put(f"/root/{name}", json=mirror, headers=ROOT).status_code == 200
                response = http.get(f"/root/{name}/+simple/anything/", headers=SIMPLE_JSON)
                assert response.status_code == 502
                texts.append(response.text.replace(name, "INDEX"))
        assert len(set(texts)) == 1, texts
        assert "refused" not in texts[0].lower() and "timed out" not in texts[0].lower()
    finally:
        garbage.close()


def test_anonymous_refresh_neither_writes_nor_hammers_the_upstream(
    open_server: ServerProcess, responder: Responder, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "fresh", "1.0")
    entry = {"filename": wheel.name, "url": f"/files/{wheel.name}",
             "hashes": {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}}  # fmt: skip
    page = {"meta": {"api-version": "1.1"}, "name": "fresh", "files": [entry]}
    responder.routes["/simple/fresh/"] = (200, SIMPLE_JSON["Accept"], json.dumps(page).encode())
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        mirror = {"type": "mirror", "mirror_url": f"{responder.url}/simple/"}
        assert http.put("/root/fr", json=mirror, headers=ROOT).status_code == 200
        assert http.get("/root/fr/+simple/fresh/").status_code == 200
        serial = http.get("/+api").headers["X-Devpi-Serial"]
        for _ in range(20):
            refreshed = http.post("/root/fr/+simple/fresh/refresh")
            assert refreshed.status_code == 302
        assert http.get("/+api").headers["X-Devpi-Serial"] == serial, "nothing was written"
    assert responder.hits["/simple/fresh/"] <= 2, "one upstream request per interval at most"


# --- the destination rule itself (pure) -------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "trusted", "allowed"),
    [
        ("93.184.216.34", False, True),  # public
        ("127.0.0.1", True, True),  # in root's allowed network, origin root chose
        ("127.0.0.1", False, False),  # same address, origin an upstream page named
        ("10.1.2.3", True, False),
        ("169.254.169.254", True, False),
        ("100.64.0.1", True, False),  # shared address space
        ("224.0.0.1", True, False),  # multicast
        ("0.0.0.0", True, False),
        ("::1", True, False),
        ("::ffff:10.0.0.1", True, False),  # IPv4-mapped private
        ("fe80::1", True, False),
        ("fc00::1", True, False),
        ("2002:a00:1::1", True, False),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", True, False),  # NAT64 of 169.254.169.254
        ("64:ff9b::5db8:d822", False, True),  # NAT64 of a public address
        ("203.0.113.80", False, True),  # documentation range: leads nowhere internal
    ],
)
def test_destination_rule(address: str, trusted: bool, allowed: bool) -> None:
    rule = DestinationRule(["127.0.0.0/8", "mirror.corp.example"])
    assert rule.allows("host.example", ipaddress.ip_address(address), trusted) is allowed
    assert rule.allows("mirror.corp.example", ipaddress.ip_address("10.0.0.5"), False)


def test_made_up_project_names_cost_no_request_and_leave_nothing_behind(
    open_server: ServerProcess, responder: Responder
) -> None:
    """Anonymous clients naming endless projects on a mirror: a name no project can have is
    a 404 with no upstream request; a valid one the upstream does not know writes nothing."""
    impossible = ["x" * 4000, "-bad-", "f\u03bf\u03bf"]
    with httpx.Client(base_url=open_server.url, timeout=30, follow_redirects=True) as http:
        mirror = {"type": "mirror", "mirror_url": f"{responder.url}/simple/"}
        assert http.put("/root/names", json=mirror, headers=ROOT).status_code == 200
        serial = http.get("/+api").headers["X-Devpi-Serial"]
        for name in impossible:
            response = http.get(f"/root/names/+simple/{name}/", headers=SIMPLE_JSON)
            assert response.status_code == 404, response.text
            assert len(response.content) < 1000
        for number in range(20):
            made_up = http.get(f"/root/names/+simple/made-up-{number}/", headers=SIMPLE_JSON)
            assert made_up.status_code == 404, made_up.text
        assert http.get("/+api").headers["X-Devpi-Serial"] == serial, "nothing was written"
    asked = [path for path in responder.hits if path.startswith("/simple/")]
    assert sorted(asked) == sorted(f"/simple/made-up-{number}/" for number in range(20))
