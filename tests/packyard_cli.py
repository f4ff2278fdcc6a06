"""The packyard client for tests: a runner with a private client dir, and devpi-server 6.

Every `packyard` run gets its own PACKYARD_CLIENTDIR, XDG_CONFIG_HOME and HOME, so no real
configuration is read or touched; the machine's pip configuration is kept out of the pip and
`python -m build` runs it starts. devpi-server is installed once into a venv under the user's
cache dir (a lock keeps parallel sessions from building it twice), like the devpi client.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import BIN, ROOT_PASSWORD, CommandResult, clean_env, free_port, run_command

DEVPI_SERVER = "devpi-server<7"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "packyard-tests"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run_checked(command: list[str], timeout: float = 600) -> None:
    result = subprocess.run(
        command, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def ensure_devpi_server_venv() -> Path:
    """The venv's bin dir with DEVPI_SERVER installed (made now if missing)."""
    tag = f"devpi-server-6-py{sys.version_info[0]}{sys.version_info[1]}"
    venv = cache_root() / tag
    done = venv / "installed.txt"
    with _locked(cache_root() / f"{tag}.lock"):
        if not done.exists() or done.read_text() != DEVPI_SERVER:
            shutil.rmtree(venv, ignore_errors=True)
            _run_checked([sys.executable, "-m", "venv", str(venv)])
            _run_checked([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", DEVPI_SERVER])
            done.write_text(DEVPI_SERVER)
    return venv / "bin"


@dataclass
class DevpiServer:
    """A real devpi-server 6 on loopback, initialized with root's password ROOT_PASSWORD."""

    bin: Path
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "devpi-server.log"

    def start(self, timeout: float = 60) -> None:
        serverdir, secret = self.directory / "serverdir", self.directory / "secret"
        init = [str(self.bin / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"]
        _run_checked([*init, "--root-passwd", ROOT_PASSWORD], timeout=120)
        _run_checked([str(self.bin / "devpi-gen-secret"), "--secretfile", str(secret)])
        command = [
            *(str(self.bin / "devpi-server"), "--serverdir", str(serverdir)),
            *("--host", "127.0.0.1", "--port", str(self.port), "--secretfile", str(secret)),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=clean_env()
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"devpi-server exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"devpi-server did not come up:\n{self.log()}"
            try:
                if httpx.get(f"{self.url}/+api", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Packyard:
    """Runs `packyard ARGS` as a user would, with its own HOME, config and client dir."""

    def __init__(self, home: Path, **environment: str) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.environment = environment

    @property
    def clientdir(self) -> Path:
        return self.home / "packyard-client"

    @property
    def config_home(self) -> Path:
        return self.home / ".config"

    def env(self) -> dict[str, str]:
        env = clean_env()
        for key in list(env):
            if key.startswith(("PACKYARD_", "XDG_")) or key in ("VIRTUAL_ENV", "PYTHONPATH"):
                del env[key]
        env |= {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.config_home),
            "XDG_CACHE_HOME": str(cache_root() / "xdg-cache"),
            "PACKYARD_CLIENTDIR": str(self.clientdir),
            **self.environment,
        }
        return env

    def run(
        self, *args: str | Path, cwd: Path | None = None, stdin: str = "", timeout: float = 240
    ) -> CommandResult:
        words = tuple(str(arg) for arg in args)
        return run_command(BIN / "packyard", words, self.env(), cwd or self.home, stdin, timeout)

    def ok(self, *args: str | Path, cwd: Path | None = None, stdin: str = "") -> str:
        """Run, insist on exit code 0 and no traceback, return what the client printed."""
        result = self.run(*args, cwd=cwd, stdin=stdin)
        assert result.returncode == 0, str(result)
        assert "Traceback" not in result.output, str(result)
        return result.output

    def fails(self, *args: str | Path, cwd: Path | None = None) -> str:
        """Run, insist on a non-zero exit code and no traceback, return what it printed."""
        result = self.run(*args, cwd=cwd)
        assert result.returncode != 0, str(result)
        assert "Traceback" not in result.output, str(result)
        return result.output

    def json(self, *args: str | Path) -> Any:
        """`packyard ARGS --json`, parsed (stdout only: notes go to stderr)."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, str(result)
        return json.loads(result.stdout)
