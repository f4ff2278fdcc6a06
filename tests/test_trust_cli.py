"""The `packyard` server verbs as an operator runs them: a missing server dir is refused (never
created empty), root's password stays out of `ps` and can be reset offline, and `serve`
announces itself only once it listens."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, JSON, ServerProcess, free_port

pytestmark = pytest.mark.e2e

ROOT_PASSWORD_ENV = "PACKYARD_ROOT_PASSWD"


def operator_env(home: Path, **extra: str) -> dict[str, str]:
    """A shell with HOME at `home` and no PACKYARD_* variables of the machine running us."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PACKYARD_")}
    return env | {"HOME": str(home)} | extra


def packyard(
    *args: str | Path, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """No controlling terminal: password prompts read the piped stdin."""
    return subprocess.run(
        [str(BIN / "packyard"), *map(str, args)], env=env, input=stdin, capture_output=True,
        text=True, timeout=60, check=False, start_new_session=True,
    )  # fmt: skip


def login_status(url: str, user: str, password: str) -> int:
    response = httpx.post(f"{url}/+login", json={"user": user, "password": password}, headers=JSON)
    return response.status_code


# --- 4: server verbs never create a server dir ------------------------------------------------


@pytest.mark.parametrize(
    "verb",
    [("export", "EXPORT"), ("drop-cache", "root/pypi"), ("reset-passwd", "root")],
    ids=lambda verb: verb[0],
)
def test_a_server_verb_refuses_a_missing_default_server_dir(
    tmp_path: Path, verb: tuple[str, str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    name, argument = verb
    argument = str(tmp_path / "export") if argument == "EXPORT" else argument
    started = time.monotonic()
    result = packyard(name, argument, env=operator_env(home), stdin="pw\npw\n")
    assert result.returncode == 1, result
    default = home / ".packyard" / "server"
    assert f"no packyard server directory at {default}" in result.stderr
    assert "--serverdir" in result.stderr and "packyard init" in result.stderr
    assert "exported" not in result.stdout
    assert not (home / ".packyard").exists()  # nothing created, not even the parent
    assert not (tmp_path / "export").exists()
    assert time.monotonic() - started < 30


def test_export_refuses_a_directory_that_is_not_a_server_dir(tmp_path: Path) -> None:
    not_a_server = tmp_path / "some-dir"
    not_a_server.mkdir()
    result = packyard(
        "export", "--serverdir", not_a_server, tmp_path / "export", env=operator_env(tmp_path)
    )
    assert result.returncode == 1
    assert f"no packyard server directory at {not_a_server}" in result.stderr
    assert list(not_a_server.iterdir()) == []  # no database, secret or blobs appeared
    assert not (tmp_path / "export").exists()


# --- 7: root's password -----------------------------------------------------------------------


def test_generated_passwords_are_letters_and_digits_only() -> None:
    """A leading `-` makes `devpi login root --password -Xyz` fail in devpi's option parser."""
    from packyard.services import generate_password

    generated = [generate_password() for _ in range(2000)]
    assert all(password.isascii() and password.isalnum() for password in generated)
    assert min(map(len, generated)) >= 16
    assert len(set(generated)) == len(generated)


def test_init_prints_a_generated_password_every_client_accepts(tmp_path: Path) -> None:
    result = packyard("init", "--serverdir", tmp_path / "server", "--no-root-pypi",
                      env=operator_env(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = re.search(r"generated password for user root \(shown once\): (\S+)$", result.stdout)
    assert match, result.stdout
    assert match[1].isalnum(), match[1]


@pytest.fixture
def initialized(tmp_path: Path) -> Path:
    """A server dir whose root password came from the environment, not the command line."""
    serverdir = tmp_path / "server"
    env = operator_env(tmp_path, **{ROOT_PASSWORD_ENV: "from-env"})
    result = packyard("init", "--serverdir", serverdir, "--no-root-pypi", env=env)
    assert result.returncode == 0, result.stderr
    assert "generated password" not in result.stdout
    assert "warning" not in result.stderr
    return serverdir


@pytest.fixture
def serving(initialized: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(initialized, free_port(), tmp_path / "server.log")
    server.start()
    yield server
    server.stop()


def test_reset_passwd_resets_a_lost_password_offline_asking_twice(
    initialized: Path, tmp_path: Path
) -> None:
    env = operator_env(tmp_path)
    mismatch = packyard(
        "reset-passwd", "root", "--serverdir", initialized, env=env, stdin="a1\nb2\n"
    )
    assert mismatch.returncode != 0
    assert "do not match" in mismatch.stderr
    unknown = packyard(
        "reset-passwd", "nobody", "--serverdir", initialized, env=env, stdin="a\na\n"
    )
    assert unknown.returncode == 1
    assert "user 'nobody' does not exist" in unknown.stderr
    assert "password" not in unknown.stderr.split("does not exist")[0].lower()  # never asked
    changed = packyard("reset-passwd", "root", "--serverdir", initialized, env=env,
                       stdin="-New-pw-\n-New-pw-\n")  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert "password of root changed" in changed.stdout
    server = ServerProcess(initialized, free_port(), tmp_path / "server.log")
    server.start()
    try:
        assert login_status(server.url, "root", "-New-pw-") == 200
        assert login_status(server.url, "root", "from-env") != 200
        assert login_status(server.url, "root", "a1") != 200
    finally:
        server.stop()


def test_root_password_from_the_environment_works(serving: ServerProcess) -> None:
    assert login_status(serving.url, "root", "from-env") == 200


def test_serve_initializes_with_the_password_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = operator_env(tmp_path, **{ROOT_PASSWORD_ENV: "env-pw"})
    log_path = tmp_path / "serve.log"
    command = [str(BIN / "packyard"), "serve", "--serverdir", str(tmp_path / "server"),
               "--port", str(port), "--no-root-pypi"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(tmp_path / "server", port, log_path, process=process)
    try:
        wait_until_listening(server)
        assert login_status(server.url, "root", "env-pw") == 200
        assert "generated password" not in server.log()
        assert "warning" not in server.log()
    finally:
        server.stop()


def test_root_passwd_on_the_command_line_still_works_with_a_warning(tmp_path: Path) -> None:
    result = packyard("init", "--serverdir", tmp_path / "server", "--no-root-pypi",
                      "--root-passwd", "visible", env=operator_env(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--root-passwd is visible to every user in `ps`" in result.stderr
    assert ROOT_PASSWORD_ENV in result.stderr


# --- 8: the banner comes once the port is bound -----------------------------------------------


def wait_until_listening(server: ServerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process is not None and server.process.poll() is None, server.log()
        try:
            httpx.get(f"{server.url}/+api", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"server did not start:\n{server.log()}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_is_an_error_without_a_banner(
    initialized: Path, tmp_path: Path, workers: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = packyard("serve", "--serverdir", initialized, "--port", str(port),
                          "--workers", workers, env=operator_env(tmp_path))  # fmt: skip
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "serving" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_banner_appears_once_the_server_listens_and_says_offline(
    initialized: Path, tmp_path: Path, workers: str
) -> None:
    server = ServerProcess(initialized, free_port(), tmp_path / "serve.log")
    command = [str(BIN / "packyard"), "serve", "--serverdir", str(initialized),
               "--port", str(server.port), "--workers", workers, "--offline"]  # fmt: skip
    with server.log_path.open("wb") as log:
        server.process = subprocess.Popen(
            command, env=operator_env(tmp_path), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "serving" not in server.log():
            assert time.monotonic() < deadline, server.log()
            assert server.process.poll() is None, server.log()
            time.sleep(0.01)
        # The moment the banner is out, the port answers.
        assert httpx.get(f"{server.url}/+api", headers=JSON, timeout=5).status_code == 200
        banner = next(line for line in server.log().splitlines() if "serving" in line)
        assert banner.endswith(
            f"serving {initialized} at {server.url}/ (--offline: mirrors never contact their"
            " upstream)"
        )
    finally:
        server.stop()
