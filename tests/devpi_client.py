"""The real devpi client for tests: a venv holding it, and a runner with a private HOME.

The venv is made once (per devpi-client version and Python) under the user's cache dir and
reused by later sessions; a lock keeps parallel sessions from building it twice. Every runner
gets its own HOME, XDG config dir and devpi client dir, so no real configuration is read or
touched, and the machine's pip configuration is kept out of the pip runs devpi starts.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CommandResult, ServerProcess, clean_env, run_command

DEVPI_CLIENT = "devpi-client==7.3.0"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1,"
    " text/html; q=0.01"
)
# For `devpi upload --no-isolation`, which builds with what the client's venv holds.
BUILD_BACKEND = "setuptools>=70.1"

# `devpi upload --with-docs` runs `sphinx-build -E SOURCE BUILD` and zips BUILD. This stand-in
# writes one page instead of pulling in Sphinx: what is tested is the client and the server.
FAKE_SPHINX_BUILD = """\
#!/usr/bin/env python3
import pathlib, sys
build = pathlib.Path(sys.argv[-1])
build.mkdir(parents=True, exist_ok=True)
(build / "index.html").write_text("<html><body>docs of the demo</body></html>\\n")
"""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "packyard-tests"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_devpi_venv() -> Path:
    """The venv with DEVPI_CLIENT installed (made now if missing); returns its `devpi`."""
    tag = f"{DEVPI_CLIENT.replace('==', '-')}-py{sys.version_info[0]}{sys.version_info[1]}"
    venv = cache_root() / tag
    done = venv / "installed.txt"
    wanted = f"{DEVPI_CLIENT}\n{BUILD_BACKEND}\n"
    with _locked(cache_root() / f"{tag}.lock"):
        if not done.exists() or done.read_text() != wanted:
            shutil.rmtree(venv, ignore_errors=True)
            _run_checked([sys.executable, "-m", "venv", str(venv)])
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
            _run_checked([*pip, DEVPI_CLIENT, BUILD_BACKEND])
            done.write_text(wanted)
    return venv / "bin" / "devpi"


def _run_checked(command: list[str]) -> None:
    result = subprocess.run(
        command, env=clean_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def devpi_executable() -> Path:
    return ensure_devpi_venv()


class Devpi:
    """Runs `devpi ARGS` as a user would, with its own HOME, config and client dir."""

    def __init__(self, executable: Path, home: Path, keep_pip_config_out: bool = True) -> None:
        self.executable = executable
        self.home = home
        self.keep_pip_config_out = keep_pip_config_out
        self.bin = home / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        sphinx = self.bin / "sphinx-build"
        sphinx.write_text(FAKE_SPHINX_BUILD)
        sphinx.chmod(0o755)

    @property
    def clientdir(self) -> Path:
        return self.home / "devpi-client"

    def env(self) -> dict[str, str]:
        env = clean_env()
        for key in list(env):
            if key.startswith(("DEVPI_", "XDG_")) or key in ("VIRTUAL_ENV", "PYTHONPATH"):
                del env[key]
        if not self.keep_pip_config_out:
            del env["PIP_CONFIG_FILE"]
        env |= {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(cache_root() / "xdg-cache"),
            "DEVPI_CLIENTDIR": str(self.clientdir),
            "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
        }
        return env

    def run(
        self, *args: str | Path, cwd: Path | None = None, stdin: str = "", timeout: float = 180
    ) -> CommandResult:
        words = tuple(str(arg) for arg in args)
        return run_command(self.executable, words, self.env(), cwd or self.home, stdin, timeout)

    def ok(self, *args: str | Path, cwd: Path | None = None, stdin: str = "") -> str:
        """Run, insist on exit code 0, return what the client printed."""
        result = self.run(*args, cwd=cwd, stdin=stdin)
        assert result.returncode == 0, str(result)
        return result.output

    def fails(self, *args: str | Path, cwd: Path | None = None) -> str:
        """Run, insist on a non-zero exit code, return what the client printed."""
        result = self.run(*args, cwd=cwd)
        assert result.returncode != 0, str(result)
        return result.output

    def getjson(self, path: str) -> dict[str, Any]:
        """`devpi getjson PATH`, parsed (the client prints the body verbatim)."""
        document: dict[str, Any] = json.loads(self.ok("getjson", path))
        return document

    def token(self, user: str) -> str:
        """The login token the client stored for `user`."""
        auth = json.loads((self.clientdir / "auth.json").read_text())["auth"]
        (pairs,) = auth.values()
        return str(dict(pairs)[user])


# --- helpers for tests that drive the client -------------------------------------------------


def signed_up(devpi: Devpi, server: ServerProcess, index: str = "dev", *config: str) -> None:
    """alice registers, logs in, creates alice/INDEX with `config` and uses it."""
    devpi.ok("use", server.url)
    devpi.ok("user", "-c", "alice", "password=alicepw")
    devpi.ok("login", "alice", "--password", "alicepw")
    devpi.ok("index", "-c", index, *config)
    devpi.ok("use", f"alice/{index}")


def devpi_auth(user: str, token: str) -> dict[str, str]:
    return {"X-Devpi-Auth": base64.b64encode(f"{user}:{token}".encode()).decode()}


def hrefs(output: str) -> list[str]:
    return re.findall(r"https?://\S+", output)


def printed_config(output: str) -> list[str]:
    """The `key=value` lines `devpi index` prints under the index URL."""
    return [line.strip() for line in output.splitlines() if line.startswith("  ")]


def doc_zip(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.doc.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("index.html", f"<html><body>{name} {version} docs</body></html>\n")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def links_by_rel(version_data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for link in version_data["+links"]:
        found.setdefault(link["rel"], []).append(link)
    return found
