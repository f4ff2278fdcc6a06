"""Shared fixtures: in-process apps, real server processes, PostgreSQL, toy distributions."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from packyard.config import Settings
from packyard.services import Services, initialize, open_services
from packyard.web.app import create_app
from tests.pg import PostgresCluster

ROOT_PASSWORD = "rootpw"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic_auth(user: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


JSON = {"Accept": "application/json", "Content-Type": "application/json"}
# The opt-in a server needs to mirror (or push to) a test server on loopback: the default
# outbound policy refuses internal destinations.
LOOPBACK_UPSTREAMS = {"outbound_allowed_networks": "127.0.0.0/8"}


# --- storage backends ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL server for the test session (CI installs PostgreSQL)."""
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest) -> str:
    """'' for the embedded SQLite default, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.new_database()


# --- in-process ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def root_pwhash() -> str:
    """root's password hashed once per session (argon2 is slow on purpose)."""
    return PasswordHasher().hash(ROOT_PASSWORD)


@pytest.fixture
def services(tmp_path: Path, storage_url: str, root_pwhash: str) -> Iterator[Services]:
    settings = Settings(serverdir=tmp_path / "server", storage=storage_url, log_requests=False)
    opened = open_services(settings)
    initialize(opened, root_pwhash=root_pwhash, root_pypi=False)
    yield opened
    opened.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services), base_url="http://testserver") as test_client:
        yield test_client


# --- real server processes -------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A real `packyard serve` on loopback."""

    serverdir: Path
    port: int
    log_path: Path
    storage: str = ""
    process: subprocess.Popen[bytes] | None = None
    # Settings given to the server as PACKYARD_* variables, e.g. LOOPBACK_UPSTREAMS.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str, timeout: float = 60) -> None:
        command = [
            str(BIN / "packyard"),
            "serve",
            "--serverdir",
            str(self.serverdir),
            "--port",
            str(self.port),
            "--root-passwd",
            ROOT_PASSWORD,
            "--no-root-pypi",
            *extra,
        ]
        if self.storage:
            command += ["--storage", self.storage]
        env = os.environ | {f"PACKYARD_{k.upper()}": v for k, v in self.settings.items()}
        # The child keeps its own copy of the descriptor; ours is closed at once.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/+api", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop(signal.SIGKILL)  # else it outlives the test and fails a later one
        raise RuntimeError(f"server did not come up in {timeout:g} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess] | object]:
    started: list[ServerProcess] = []

    def make(storage: str = "", name: str = "server") -> ServerProcess:
        server = ServerProcess(tmp_path / name, free_port(), tmp_path / f"{name}.log", storage)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.process and server.process.poll() is None:
            server.stop()


@pytest.fixture
def live_server(server_factory: object, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A started server on SQLite; its log is printed when the test fails."""
    server: ServerProcess = server_factory()  # type: ignore[operator]
    server.start()
    yield server
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- server log ---\n{server.log()}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # type: ignore[attr-defined]
    return report


# --- tools -----------------------------------------------------------------------------------


def tool(name: str) -> str:
    """Path of a console script installed beside the test interpreter (twine, uv, ...)."""
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed; `pip install -e .[test]` installs it")
    return found


def clean_env() -> dict[str, str]:
    """Environment for client tools: no pip config pointing elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@dataclass(frozen=True)
class CommandResult:
    """A client command as a user ran it: what it printed and how it exited."""

    program: str
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return f"$ {self.program} {' '.join(self.args)}  -> {self.returncode}\n{self.output}"


def run_command(
    executable: Path,
    words: tuple[str, ...],
    env: dict[str, str],
    cwd: Path,
    stdin: str,
    timeout: float,
) -> CommandResult:
    """Run a client as a user would. No controlling terminal: password prompts (getpass)
    read the piped stdin."""
    completed = subprocess.run(
        [str(executable), *words], env=env, cwd=cwd, input=stdin, capture_output=True,
        text=True, timeout=timeout, check=False, start_new_session=True,
    )  # fmt: skip
    return CommandResult(
        executable.name, words, completed.returncode, completed.stdout, completed.stderr
    )
