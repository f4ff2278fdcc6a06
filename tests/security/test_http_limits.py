"""Attacks on the request limits, against the real server on loopback: oversized and endless
heads, slow heads and bodies, floods of half-open connections, bodies sent before (or without)
the right to send them, oversized JSON and form fields, and pipelining around `PUSH`.

Every test asserts what the attacker sees (status, message, time) and that the server did not
hold or store the body (its RSS, its server dir, the user list)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import JSON, ServerProcess, basic_auth, free_port
from tests.e2e_support import PASSWORD, blob_files, create_index, create_user, print_log_if_failed

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1
BODY_TIMEOUT = 1
MAX_CONNECTIONS = 40
MAX_UPLOAD = 4 * 1024 * 1024
MiB = 1024 * 1024
ALICE = basic_auth("alice", PASSWORD)
BOB = basic_auth("bob", PASSWORD)
INDEX = "/alice/dev"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("limits")
    server = ServerProcess(directory / "server", free_port(), directory / "server.log")
    server.serverdir.mkdir()
    (server.serverdir / "packyard.toml").write_text(
        f"header_timeout = {HEADER_TIMEOUT}\nbody_timeout = {BODY_TIMEOUT}\n"
        f"max_connections = {MAX_CONNECTIONS}\nmax_upload_size = {MAX_UPLOAD}\n"
    )
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        create_user(client, "alice")
        create_user(client, "bob")
        create_index(client, "alice", "dev")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[None]:
    yield
    print_log_if_failed(request, server)


# --- a raw HTTP client: attackers do not use a polite library -------------------------------


def connect(server: ServerProcess, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def read_until_closed(sock: socket.socket, limit: int = 4 * MiB) -> bytes:
    received = b""
    try:
        while len(received) < limit:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def read_head(sock: socket.socket) -> bytes:
    """One response head (or what came before the connection ended)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


def statuses(raw: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", raw)]


def send_all(sock: socket.socket, data: bytes) -> bool:
    """False once the server stopped taking data (it may, after refusing)."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def rss_kib(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


def open_descriptors(server: ServerProcess) -> int:
    assert server.process is not None
    return len(list(Path(f"/proc/{server.process.pid}/fd").iterdir()))


def eventually(condition: Callable[[], bool], within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def dir_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def answers_normally(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/+api", timeout=10).status_code == 200


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --- heads ------------------------------------------------------------------------------


def test_huge_header_line_is_refused_fast_with_bounded_memory(server: ServerProcess) -> None:
    before = rss_kib(server)
    started = time.monotonic()
    with connect(server) as sock:
        send_all(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(256):  # up to 16 MiB of one header line
            if not send_all(sock, b"a" * 65536):
                break
        raw = read_until_closed(sock)
    elapsed = time.monotonic() - started
    assert statuses(raw) == [431], raw[:300]
    assert b"request headers too large" in raw
    assert elapsed < 5
    assert rss_kib(server) - before < 16 * 1024
    assert answers_normally(server)


def test_too_many_header_fields_are_refused(server: ServerProcess) -> None:
    fields = b"".join(b"X-Field-%d: 1\r\n" % number for number in range(150))
    with connect(server) as sock:
        sock.sendall(b"GET /+api HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        raw = read_until_closed(sock)
    assert statuses(raw) == [431], raw[:300]
    assert b"too many header fields: at most 100" in raw


def test_slow_head_is_cut_off_at_the_deadline(server: ServerProcess) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"GET /+api HTTP/1.1\r\n")
        raw = b""
        for _ in range(20):  # one header byte every 0.2 s: each byte is "progress"
            if not send_all(sock, b"X"):
                break
            time.sleep(0.2)
            sock.settimeout(0.01)
            try:
                raw += sock.recv(65536)
            except TimeoutError:
                continue
            if raw:
                break
        sock.settimeout(5)
        raw += read_until_closed(sock)
    elapsed = time.monotonic() - started
    assert statuses(raw) == [408], raw[:300]
    assert b"request headers not received within 1 s" in raw
    assert HEADER_TIMEOUT <= elapsed < HEADER_TIMEOUT + 2


def test_silent_connection_is_closed_at_the_deadline(server: ServerProcess) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        assert read_until_closed(sock) == b""
    assert time.monotonic() - started < HEADER_TIMEOUT + 2


# --- bodies -----------------------------------------------------------------------------


def test_slow_body_is_cut_off_and_nothing_stored(server: ServerProcess) -> None:
    body = json.dumps({"password": "pw", "email": "slow@example.org"}).encode()
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(
            b"PUT /slowpoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Accept: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for byte in body[:-1]:  # everything but the last byte, slowly
            if not send_all(sock, bytes([byte])):
                break
            time.sleep(0.05)
            if time.monotonic() - started > BODY_TIMEOUT + 3:
                break
        raw = read_until_closed(sock)
    elapsed = time.monotonic() - started
    assert statuses(raw) == [408], raw[:300]
    assert b"request body too slow" in raw
    assert elapsed < BODY_TIMEOUT + 3
    assert httpx.get(f"{server.url}/slowpoke", headers=JSON).status_code == 404
    # The operator's log says the client was cut off, not that the server failed.
    assert "PUT /slowpoke 499" in server.log_path.read_text()


def test_oversized_json_body_is_refused_and_user_not_created(server: ServerProcess) -> None:
    big = json.dumps({"password": "pw", "custom_data": "x" * (3 * MiB)}).encode()
    declared = httpx.put(f"{server.url}/mallory", content=big, headers=JSON, timeout=30)
    assert declared.status_code == 413, declared.text
    assert "request body too large: at most 1048576 bytes" in declared.json()["message"]

    def pieces() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    before = rss_kib(server)
    streamed = httpx.put(f"{server.url}/mallory", content=pieces(), headers=JSON, timeout=30)
    assert streamed.status_code == 413, streamed.text
    assert rss_kib(server) - before < 8 * 1024
    assert httpx.get(f"{server.url}/mallory", headers=JSON).status_code == 404


def test_one_user_cannot_inflate_the_user_list(server: ServerProcess) -> None:
    info = {"password": "pw", "custom_data": "x" * (200 * 1024)}  # under the body cap
    response = httpx.put(f"{server.url}/inflator", json=info, headers=JSON)
    assert response.status_code == 413, response.text
    assert "user info too large" in response.json()["message"]
    assert httpx.get(f"{server.url}/inflator", headers=JSON).status_code == 404
    listing = httpx.get(f"{server.url}/", headers=JSON)
    assert len(listing.content) < 64 * 1024


UPLOAD_HEAD = (
    b"POST " + INDEX.encode() + b"/ HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n"
    b"Transfer-Encoding: chunked\r\n"
)
FORM_START = (
    b'--BOUNDARY\r\nContent-Disposition: form-data; name=":action"\r\n\r\nfile_upload\r\n'
    b'--BOUNDARY\r\nContent-Disposition: form-data; name="content"; filename="x-1.0.tar.gz"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


@pytest.mark.parametrize(
    ("auth", "status"), [(b"", 401), (b"Authorization: " + BOB["Authorization"].encode(), 403)]
)
def test_unauthorised_chunked_upload_is_refused_before_its_body(
    server: ServerProcess, auth: bytes, status: int
) -> None:
    before_rss, before_disk = rss_kib(server), dir_size(server.serverdir)
    blobs = blob_files(server)
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(UPLOAD_HEAD + (auth + b"\r\n" if auth else b"") + b"\r\n")
        sock.sendall(chunk(FORM_START))
        head = read_head(sock)  # answered before the body (no more than its start) was sent
        answered = time.monotonic() - started
        sent = 0
        while sent < 50 * MiB and send_all(sock, chunk(b"\0" * MiB)):
            sent += MiB
        send_all(sock, b"0\r\n\r\n")
    assert statuses(head) == [status], head
    assert answered < 2
    assert rss_kib(server) - before_rss < 16 * 1024
    assert dir_size(server.serverdir) - before_disk < MiB
    assert blob_files(server) == blobs
    assert answers_normally(server)


def test_authorised_chunked_upload_over_the_cap_is_refused_while_streaming(
    server: ServerProcess,
) -> None:
    before_disk = dir_size(server.serverdir)
    auth = b"Authorization: " + ALICE["Authorization"].encode() + b"\r\n"
    with connect(server) as sock:
        sock.sendall(UPLOAD_HEAD + auth + b"Accept: application/json\r\n\r\n")
        sock.sendall(chunk(FORM_START))
        sent = 0
        while sent < 40 * MiB and send_all(sock, chunk(b"\0" * MiB)):
            sent += MiB
        send_all(sock, b"0\r\n\r\n")
        raw = read_until_closed(sock)
    assert statuses(raw) == [413], raw[:300]
    assert f"file too large: the limit is {MAX_UPLOAD} bytes".encode() in raw
    assert dir_size(server.serverdir) - before_disk < MiB
    assert not any((server.serverdir / "blobs" / "tmp").iterdir())


def test_huge_form_fields_to_the_upload_route_are_refused(server: ServerProcess) -> None:
    before = rss_kib(server)
    fields = {":action": "file_upload", "name": "x", "version": "1.0", "description": "d" * 9 * MiB}
    response = httpx.post(
        f"{server.url}{INDEX}/",
        data=fields,
        files={"content": ("x-1.0.tar.gz", b"\0" * 100)},
        headers=ALICE | {"Accept": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert "form fields too large" in response.json()["message"]
    assert rss_kib(server) - before < 32 * 1024


# --- connections -------------------------------------------------------------------------


def test_half_open_connections_cannot_exhaust_the_server(server: ServerProcess) -> None:
    held: list[socket.socket] = []
    before = open_descriptors(server)
    try:
        for _ in range(MAX_CONNECTIONS * 3):
            sock = connect(server, timeout=5)
            send_all(sock, b"GET /+api HTTP/1.1\r\nHost: x\r\n")  # and never the end
            held.append(sock)
        # The refused two thirds are closed by the server, perhaps a moment after their 503.
        assert eventually(lambda: open_descriptors(server) - before <= MAX_CONNECTIONS + 10)
        overflow = read_until_closed(held[-1])  # refused at once, not after the deadline
        assert statuses(overflow) == [503], overflow
        assert b"too many connections" in overflow
        time.sleep(HEADER_TIMEOUT + 1)
        assert answers_normally(server)
        cut = read_until_closed(held[0])
        assert statuses(cut) == [408], cut
    finally:
        for sock in held:
            sock.close()


# --- PUSH and pipelining ------------------------------------------------------------------

PUSH_BODY = json.dumps({"name": "nothing", "version": "1.0", "targetindex": "alice/dev"})


def push_request(path: str) -> bytes:
    body = PUSH_BODY.encode()
    head = b"PUSH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path.encode()
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_push_split_across_segments_reaches_the_app(server: ServerProcess) -> None:
    request = push_request(INDEX)
    with connect(server) as sock:
        for piece in (request[:2], request[2:7], request[7:]):
            sock.sendall(piece)
            time.sleep(0.05)
        head = read_head(sock)
    # The app answered the PUSH itself (its headers are there; nothing was pushed).
    assert b"x-devpi-serial" in head, head
    assert statuses(head) == [400], head
    assert b"invalid HTTP request" not in head


def test_push_pipelined_behind_another_request_is_not_run(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /+api HTTP/1.1\r\nHost: x\r\n\r\n" + push_request(INDEX))
        raw = read_until_closed(sock)
    assert statuses(raw) == [200], raw[:600]


def test_body_bytes_are_never_read_as_a_push(server: ServerProcess) -> None:
    """The app answers before reading the body; the body, starting like a PUSH, arrives
    after: it is the body (dropped), not a request smuggled past the parser."""
    smuggled = push_request("/alice/+smuggled")
    with connect(server) as sock:
        sock.sendall(b"GET /+api HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled))
        first = read_head(sock)
        sock.sendall(smuggled)
        sock.sendall(b"GET /+api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = first + read_until_closed(sock)
    assert statuses(raw) == [200, 200], raw[:1200]
