"""The `packyard` command as an operator uses it: init, serve, logs, config, shutdown."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import BIN, JSON, ServerProcess, basic_auth, free_port

pytestmark = pytest.mark.e2e


def packyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "packyard"), *args], capture_output=True, text=True, timeout=60, env=env
    )


def wait_for_log(server: ServerProcess, pattern: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, server.log()):
        assert time.monotonic() < deadline, f"{pattern!r} not in log:\n{server.log()}"
        time.sleep(0.05)


def upload(server: ServerProcess, wheel: Path, user: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/{user}/dev/",
        data={":action": "file_upload", "name": "demo", "version": "1.0"},
        files={"content": (wheel.name, wheel.read_bytes())},
        headers=basic_auth(user, password),
    )


def make_user_and_index(server: ServerProcess, user: str = "alice", password: str = "pw") -> None:
    assert httpx.put(f"{server.url}/{user}", json={"password": password}, headers=JSON).is_success
    auth = basic_auth(user, password)
    response = httpx.put(f"{server.url}/{user}/dev", json={}, headers=JSON | auth)
    assert response.status_code == 200, response.text


def test_serve_initializes_prints_url_and_logs_each_request(live_server: ServerProcess) -> None:
    assert httpx.get(f"{live_server.url}/+api", headers=JSON).status_code == 200
    assert httpx.get(f"{live_server.url}/nobody", headers=JSON).status_code == 404
    wait_for_log(live_server, r"GET /nobody 404 \d+\.\dms")
    log = live_server.log()
    assert f"initialized {live_server.serverdir}" in log
    assert f"at {live_server.url}/" in log
    assert re.search(r"GET /\+api 200 \d+\.\dms", log)


def test_sigterm_stops_cleanly_and_keeps_data(live_server: ServerProcess, tmp_path: Path) -> None:
    make_user_and_index(live_server)
    wheel = build_wheel(tmp_path / "dist", "demo", "1.0")
    assert upload(live_server, wheel, "alice", "pw").status_code == 200
    # uvicorn shuts down gracefully, then re-raises the signal: exit status -15 (or 0).
    assert live_server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "packyard stopped: storage closed" in live_server.log()
    assert "Traceback" not in live_server.log()
    live_server.start()
    page = httpx.get(f"{live_server.url}/alice/dev/+simple/demo/", headers={"Accept": "text/html"})
    assert wheel.name in page.text


def test_generated_root_password_is_printed_once_and_works(tmp_path: Path) -> None:
    serverdir = tmp_path / "server"
    first = packyard("init", "--serverdir", str(serverdir), "--no-root-pypi")
    assert first.returncode == 0, first.stderr
    match = re.search(r"generated password for user root \(shown once\): (\S+)", first.stdout)
    assert match, first.stdout
    again = packyard("init", "--serverdir", str(serverdir), "--no-root-pypi")
    assert again.returncode != 0
    assert "already initialized" in again.stderr
    server = ServerProcess(serverdir, free_port(), tmp_path / "server.log")
    server.start()
    try:
        response = httpx.post(
            f"{server.url}/+login", json={"user": "root", "password": match[1]}, headers=JSON
        )
        assert response.status_code == 200
        assert response.json()["result"]["expiration"] == 36000
        assert "generated password" not in server.log()
    finally:
        server.stop()


def test_unknown_config_key_stops_start_with_a_hint(tmp_path: Path) -> None:
    serverdir = tmp_path / "server"
    serverdir.mkdir()
    (serverdir / "packyard.toml").write_text("prot = 4000\n")
    result = packyard("serve", "--serverdir", str(serverdir))
    assert result.returncode != 0
    assert "unknown setting" in result.stderr
    assert "did you mean 'port'?" in result.stderr


def test_environment_and_flags_override_the_config_file(tmp_path: Path) -> None:
    serverdir = tmp_path / "server"
    serverdir.mkdir()
    (serverdir / "packyard.toml").write_text("token_expiry = 60\nport = 1\n")
    port = free_port()
    env = {"PACKYARD_SERVERDIR": str(serverdir), "PACKYARD_TOKEN_EXPIRY": "7200"}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "packyard"), "serve", "--port", str(port), "--root-passwd", "r",
             "--no-root-pypi"],
            env=os.environ | env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ServerProcess(serverdir, port, log_path, process=process)
    try:
        _wait_until_up(server)
        login = httpx.post(
            f"{server.url}/+login", json={"user": "root", "password": "r"}, headers=JSON
        )
        assert login.json()["result"]["expiration"] == 7200
    finally:
        server.stop()


def _wait_until_up(server: ServerProcess) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{server.url}/+api", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def _workers(pid: int) -> list[int]:
    """The worker processes `pid` spawned (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
                if parent == pid and b"spawn_main" in command:
                    found.append(int(entry.name))
    return found


def test_two_workers_replace_a_dead_one_keep_the_port_and_stop_cleanly(
    server_factory: object, tmp_path: Path
) -> None:
    server: ServerProcess = server_factory()  # type: ignore[operator]
    server.start("--workers", "2")
    assert server.process is not None
    workers = _workers(server.process.pid)
    assert len(workers) == 2
    # A second server on the same port would join the workers' sockets: it is refused.
    rival_dir = str(tmp_path / "rival")
    rival = packyard("serve", "--serverdir", rival_dir, "--port", str(server.port),
                     "--workers", "2", "--no-root-pypi", "--root-passwd", "pw")  # fmt: skip
    assert rival.returncode != 0
    assert f"cannot serve on 127.0.0.1:{server.port}" in rival.stderr
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60  # a loaded machine takes its time to start one
    while "serves in place of" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"worker {victim} exited" in server.log()
    assert f"in place of {victim}" in server.log()  # stopped before it serves, it logs nothing
    make_user_and_index(server)
    wheel = build_wheel(tmp_path / "dist", "demo", "1.0")
    assert upload(server, wheel, "alice", "pw").status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    assert server.log().count("packyard stopped: storage closed") == 2
    assert "Traceback" not in server.log()
    with socket.socket() as probe:  # nothing is left listening
        probe.bind(("127.0.0.1", server.port))


def test_two_workers_share_one_state(server_factory: object, tmp_path: Path) -> None:
    server: ServerProcess = server_factory()  # type: ignore[operator]
    server.start("--workers", "2")
    make_user_and_index(server)
    wheel = build_wheel(tmp_path / "dist", "demo", "1.0")
    page_url = f"{server.url}/alice/dev/+simple/demo/"
    with httpx.Client() as client:
        # Warm both workers' page caches with the 404, then upload through one of them.
        for _ in range(6):
            assert client.get(page_url, headers={"Connection": "close"}).status_code == 404
        assert upload(server, wheel, "alice", "pw").status_code == 200
        seen = {client.get(page_url, headers={"Connection": "close"}).status_code for _ in range(8)}
    assert seen == {200}
