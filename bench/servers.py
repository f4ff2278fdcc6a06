"""The two servers: their venvs under bench/.work/, and running one of them on loopback."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import httpx

HOST = "127.0.0.1"
ROOT_PASSWORD = "rootpw"
DEVPI_REQUIREMENT = "devpi-server<7"
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def packyard_revision() -> str:
    """The commit packyard was installed from, `-dirty` when src/ has uncommitted changes."""
    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        [*git, "status", "--porcelain", "--", "src", "pyproject.toml"],
        capture_output=True,
        text=True,
    )
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def discard(path: Path) -> None:
    """Move `path` into the trash beside bench/.work; `empty_trash()` deletes it later.

    Deleting thousands of files just before a measurement slows the next thousands of file
    creations on ext4 (its allocator skips recently freed inodes), so deletions wait until
    every server was measured.
    """
    if not path.exists():
        return
    trash = Path(__file__).resolve().parent / ".work" / "trash"
    trash.mkdir(parents=True, exist_ok=True)
    path.rename(trash / f"{path.name}-{time.time_ns()}")


def empty_trash() -> None:
    shutil.rmtree(Path(__file__).resolve().parent / ".work" / "trash", ignore_errors=True)


class Server(Protocol):
    @property
    def label(self) -> str: ...

    def prepare(self, serverdir: Path) -> None:
        """Make `serverdir` ready to serve (it does not exist yet)."""

    def command(self, serverdir: Path, port: int) -> list[str]:
        """The command line that serves `serverdir` on HOST:port."""


@dataclasses.dataclass(frozen=True)
class Packyard:
    venv: Path
    workers: int

    @property
    def label(self) -> str:
        return f"packyard-{self.workers}w"

    def prepare(self, serverdir: Path) -> None:
        """`packyard serve` initializes an empty server dir itself; the upstreams of the
        benchmarks run on loopback, which the outbound policy allows only when told."""
        serverdir.mkdir(parents=True, exist_ok=True)
        (serverdir / "packyard.toml").write_text('outbound_allowed_networks = ["127.0.0.0/8"]\n')

    def command(self, serverdir: Path, port: int) -> list[str]:
        return [
            *(str(self.venv / "bin" / "packyard"), "serve"),
            *("--serverdir", str(serverdir), "--host", HOST, "--port", str(port)),
            *("--workers", str(self.workers), "--root-passwd", ROOT_PASSWORD, "--no-root-pypi"),
        ]


@dataclasses.dataclass(frozen=True)
class Devpi:
    venv: Path
    label: str = "devpi"

    def _secretfile(self, serverdir: Path) -> Path:
        return serverdir.with_name(serverdir.name + ".secret")

    def prepare(self, serverdir: Path) -> None:
        bin_dir = self.venv / "bin"
        init = [str(bin_dir / "devpi-init"), "--serverdir", str(serverdir)]
        _quiet([*init, "--no-root-pypi", "--root-passwd", ROOT_PASSWORD])
        secret = self._secretfile(serverdir)
        secret.unlink(missing_ok=True)
        _quiet([str(bin_dir / "devpi-gen-secret"), "--secretfile", str(secret)])

    def command(self, serverdir: Path, port: int) -> list[str]:
        return [
            *(str(self.venv / "bin" / "devpi-server"), "--serverdir", str(serverdir)),
            *(
                "--host",
                HOST,
                "--port",
                str(port),
                "--secretfile",
                str(self._secretfile(serverdir)),
            ),
        ]


def _quiet(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def _new_venv(venv: Path) -> None:
    print(f"creating {venv}", file=sys.stderr)
    _quiet([sys.executable, "-m", "venv", str(venv)])
    _quiet([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"])


def ensure_devpi_venv(work: Path) -> Path:
    """bench/.work/devpi-venv with devpi-server 6 (installed once, then reused)."""
    venv = work / "devpi-venv"
    if not (venv / "bin" / "devpi-server").exists():
        _new_venv(venv)
        _quiet([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", DEVPI_REQUIREMENT])
    return venv


def ensure_packyard_venv(work: Path, source: Path) -> Path:
    """bench/.work/packyard-venv with packyard from `source`, reinstalled on every run."""
    venv = work / "packyard-venv"
    if not (venv / "bin" / "python").exists():
        _new_venv(venv)
    print(f"installing packyard from {source} into {venv}", file=sys.stderr)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _quiet([*pip, str(source)])
    _quiet([*pip, "--force-reinstall", "--no-deps", str(source)])
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_environment() -> dict[str, str]:
    """This machine's environment minus settings that would change either server."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PACKYARD_", "DEVPI"))}


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> str:
    """Poll `GET /+api` until 200; the server version it reports."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(f"{url}/+api", timeout=2)
            if response.status_code == 200:
                return str(response.headers.get("x-devpi-server-version", "?"))
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {READY_TIMEOUT}s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this script started (uvicorn workers included)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclasses.dataclass(frozen=True)
class Running:
    url: str
    version: str
    log: Path


@contextmanager
def running(server: Server, work: Path) -> Iterator[Running]:
    """Serve a fresh server dir on a free loopback port; stop the server afterwards."""
    serverdir = work / "serverdirs" / server.label
    discard(serverdir)
    serverdir.parent.mkdir(parents=True, exist_ok=True)
    server.prepare(serverdir)
    port = free_port()
    log = work / f"{server.label}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            server.command(serverdir, port),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_server_environment(),
            start_new_session=True,
        )
    try:
        url = f"http://{HOST}:{port}"
        yield Running(url, _wait_ready(url, process, log), log)
    finally:
        _stop(process)
