"""packyard's own client, end to end: devpi's verbs against a real packyard server and a real
devpi-server 6, CI-style environment credentials, wheelhouse re-uploads, errors with hints,
and `use --set-cfg` making plain pip and uv use the index.

Every command is a real `packyard` process with its own client dir and config home; what it
did is checked from its exit code, its output (`--json` where it has one) and the server's
own HTTP answers.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess, clean_env, tool
from tests.packyard_cli import DevpiServer, Packyard, ensure_devpi_server_venv

pytestmark = pytest.mark.e2e

PROJECT_TOML = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyproj"
version = "1.0"
description = "a tiny project packyard builds and uploads"

[tool.setuptools]
packages = ["tinyproj"]
"""


# --- servers -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def devpi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevpiServer]:
    """One devpi-server 6 for the session; tests use their own users and indexes on it."""
    server = DevpiServer(ensure_devpi_server_venv(), tmp_path_factory.mktemp("devpi-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["packyard", "devpi-server"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a real server: `packyard serve`, or devpi-server 6."""
    server: ServerProcess | DevpiServer
    if request.param == "packyard":
        server = request.getfixturevalue("live_server")
    else:
        server = request.getfixturevalue("devpi_server")
    yield server.url
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- {request.param} log ---\n{server.log()}")


def get_json(url: str, path: str) -> tuple[int, Any]:
    """(status, result) of a JSON API GET, the way the server itself answers it."""
    response = httpx.get(f"{url}/{path.lstrip('/')}", headers=JSON, timeout=30)
    body = response.json() if response.headers.get("content-type", "").startswith("app") else {}
    return response.status_code, body.get("result") if isinstance(body, dict) else None


# --- projects and distributions ------------------------------------------------------------


def tiny_project(directory: Path, version: str = "1.0") -> Path:
    """A pyproject.toml project with one module saying its version."""
    (directory / "tinyproj").mkdir(parents=True)
    (directory / "tinyproj" / "__init__.py").write_text(f"VERSION = {version!r}\n")
    (directory / "pyproject.toml").write_text(PROJECT_TOML.replace("1.0", version))
    return directory


def installed_version(venv: Path, module: str = "tinyproj") -> str:
    code = f"import {module}; print(getattr({module}, 'VERSION', None) or {module}.__version__)"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def file_names(url: str, index: str, project: str) -> dict[str, list[str]]:
    """version -> file names, from the server's JSON for the project on `index` alone."""
    status, versions = get_json(url, f"{index}/{project}?ignore_bases")
    assert status == 200, versions
    return {
        version: sorted(link["href"].rsplit("/", 1)[-1] for link in data["+links"])
        for version, data in versions.items()
    }


def logged_in(home: Path, url: str, user: str, password: str) -> Packyard:
    """A client that has selected `url` and logged in as `user`."""
    client = Packyard(home)
    client.ok("use", url)
    client.ok("login", user, "--password", password)
    return client


# --- the devpi scenarios, with `packyard` for `devpi` --------------------------------------


def test_scenario_user_index_upload_list_remove_install(server_url: str, tmp_path: Path) -> None:
    client = Packyard(tmp_path / "home")
    assert client.json("use", server_url)["url"] == server_url

    # users
    client.ok("login", "root", "--password", ROOT_PASSWORD)
    assert "index created: root/prod" in client.ok("index", "-c", "root/prod", "volatile=False")
    assert "user created: alice" in client.ok(
        "user", "-c", "alice", "password=alicepw", "email=alice@example.org"
    )
    assert {"alice", "root"} <= set(client.json("user", "-l"))
    assert "logged in as alice" in client.ok("login", "alice", "--password", "alicepw")
    assert client.json("user", "alice")["email"] == "alice@example.org"

    # an index with bases and settings; listed; shown as JSON; modified
    client.ok("index", "-c", "dev", "bases=root/prod", "volatile=True", "title=Alice dev")
    listed = client.json("use", "-l")
    assert listed["alice/dev"]["bases"] == ["root/prod"]
    assert "root/prod" in listed
    assert "alice/dev" in client.ok("use", "-l")
    assert list(client.json("index", "-l")) == ["alice/dev"]
    shown = client.json("index", "alice/dev")
    assert (shown["bases"], shown["volatile"], shown["title"]) == (["root/prod"], True, "Alice dev")
    client.ok("index", "-c", "staging")
    modified = client.ok("index", "alice/dev", "bases+=alice/staging", "title=Alice's dev")
    assert "index modified: alice/dev" in modified
    status, config = get_json(server_url, "alice/dev")
    assert status == 200
    assert (config["bases"], config["title"]) == (["root/prod", "alice/staging"], "Alice's dev")

    # upload: a project dir (built by `python -m build`), then dist/*.whl
    assert client.json("use", "alice/dev")["index"] == "alice/dev"
    by_url = client.json("use", f"{server_url}/alice/dev")  # devpi's other form
    assert (by_url["url"], by_url["index"], by_url["user"]) == (server_url, "alice/dev", "alice")
    project = tiny_project(tmp_path / "tinyproj")
    built = client.ok("upload", cwd=project)
    assert f"building {project}" in built
    assert "uploaded 2, skipped 0 (already on alice/dev), failed 0" in built
    wheel = build_wheel(project / "dist", "tinyproj", "2.0")
    assert "uploaded 1, skipped 0" in client.ok("upload", wheel)
    assert file_names(server_url, "alice/dev", "tinyproj") == {
        "1.0": ["tinyproj-1.0-py3-none-any.whl", "tinyproj-1.0.tar.gz"],
        "2.0": ["tinyproj-2.0-py3-none-any.whl"],
    }

    # list
    assert client.json("list") == ["tinyproj"]
    versions = client.json("list", "tinyproj")
    assert list(versions) == ["2.0", "1.0"]
    assert "tinyproj-1.0.tar.gz" in client.ok("list", "tinyproj")

    # install into fresh venvs: pip (the venv is created), uv
    pip_venv, uv_venv = tmp_path / "venv-pip", tmp_path / "venv-uv"
    installed = client.ok("install", "--venv", pip_venv, "tinyproj==1.0")
    assert f"created virtualenv {pip_venv}" in installed
    assert installed_version(pip_venv) == "1.0"
    client.ok("install", "--uv", "--venv", uv_venv, "tinyproj")
    assert installed_version(uv_venv) == "2.0"

    # remove a version, then the project
    assert "removed tinyproj 2.0 from alice/dev" in client.ok("remove", "-y", "tinyproj==2.0")
    assert list(file_names(server_url, "alice/dev", "tinyproj")) == ["1.0"]
    assert "removed tinyproj (all versions)" in client.ok("remove", "-y", "tinyproj")
    assert get_json(server_url, "alice/dev/tinyproj")[0] == 404
    assert client.json("list") == []

    # delete the index
    assert "index deleted: alice/dev" in client.ok("index", "--delete", "-y", "alice/dev")
    assert get_json(server_url, "alice/dev")[0] == 404
    assert "alice/dev" not in client.json("use", "-l")


# --- wheelhouses ---------------------------------------------------------------------------


def upload_posts(server: ServerProcess, index: str) -> int:
    """Upload POSTs to `index` in the server's request log, once the log has caught up: a
    request is logged just after its response, so a marker request is sent and awaited."""
    marker = f"/+log-marker-{uuid.uuid4().hex}"
    httpx.get(server.url + marker, timeout=10)
    deadline = time.monotonic() + 10
    while marker not in server.log():
        assert time.monotonic() < deadline, f"{marker} never logged:\n{server.log()}"
        time.sleep(0.05)
    return sum(1 for line in server.log().splitlines() if f" POST /{index}/ " in line)


def test_a_wheelhouse_uploaded_twice_uploads_nothing_the_second_time(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    for number in range(200):
        build_wheel(wheelhouse, f"house-{number % 20}", f"1.{number // 20}")
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/wh", "volatile=False")
    client.ok("use", "root/wh")

    first = client.ok("upload", wheelhouse)
    assert "uploaded 200, skipped 0 (already on root/wh), failed 0" in first
    assert upload_posts(live_server, "root/wh") == 200
    assert len(client.json("list")) == 20

    second = client.ok("upload", wheelhouse)
    assert "uploaded 0, skipped 200 (already on root/wh), failed 0" in second
    assert "  uploaded house" not in second
    assert upload_posts(live_server, "root/wh") == 200  # not one POST more


# --- CI, credentials, dry runs, failures ---------------------------------------------------


def test_environment_credentials_upload_without_saved_state(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    admin = logged_in(tmp_path / "admin", live_server.url, "root", ROOT_PASSWORD)
    admin.ok("user", "-c", "ci", "password=cipw")
    ci_user = logged_in(tmp_path / "ci-setup", live_server.url, "ci", "cipw")
    ci_user.ok("index", "-c", "ci/builds")
    wheel = build_wheel(tmp_path / "dist", "from-ci", "0.1")

    environment = {
        "PACKYARD_URL": live_server.url,
        "PACKYARD_INDEX": "ci/builds",
        "PACKYARD_USER": "ci",
        "PACKYARD_PASSWORD": "cipw",
    }
    ci = Packyard(tmp_path / "ci", **environment)
    assert "uploaded 1, skipped 0 (already on ci/builds), failed 0" in ci.ok("upload", wheel)
    assert file_names(live_server.url, "ci/builds", "from-ci") == {
        "0.1": ["from_ci-0.1-py3-none-any.whl"]
    }
    assert not ci.clientdir.exists()  # nothing saved, least of all the password

    token = json.loads((ci_user.clientdir / "client.json").read_text())["tokens"]
    with_token = environment | {"PACKYARD_TOKEN": token[live_server.url]["ci"]}
    del with_token["PACKYARD_PASSWORD"]
    by_token = Packyard(tmp_path / "ci-token", **with_token)
    assert "uploaded 1," in by_token.ok("upload", build_wheel(tmp_path / "dist", "from-ci", "0.3"))

    wrong = Packyard(tmp_path / "ci-wrong", **(environment | {"PACKYARD_PASSWORD": "nope"}))
    output = wrong.fails("upload", build_wheel(tmp_path / "dist", "from-ci", "0.2"))
    # A wrong password is refused on the first request, not taken for an anonymous one.
    assert "401 Unauthorized: user 'ci' could not be authenticated" in output
    assert "packyard login" in output


def test_login_keeps_the_token_in_a_file_only_the_user_can_read(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    state_file = client.clientdir / "client.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    text = state_file.read_text()
    assert ROOT_PASSWORD not in text
    assert '"root"' in text
    assert "user:   root" in client.ok("use")
    assert "logged off root" in client.ok("logoff")
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert "user:   (not logged in)" in client.ok("use")


def test_an_expired_login_is_named_and_not_sent(live_server: ServerProcess, tmp_path: Path) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/late")
    client.ok("use", "root/late")
    state_file = client.clientdir / "client.json"
    state = json.loads(state_file.read_text())
    assert state["expires"][live_server.url]["root"] > time.time() + 9 * 3600  # ten hours
    state["expires"][live_server.url]["root"] = time.time() - 1
    state_file.write_text(json.dumps(state))

    assert client.json("use")["login_expired"] is True
    assert "root (login expired: `packyard login root` again)" in client.ok("use")
    assert client.json("list") == []  # reads work: the stale token is not sent
    refused = client.fails("upload", build_wheel(tmp_path / "dist", "late-demo", "1.0"))
    assert "hint: your login as root has expired: `packyard login root` again" in refused
    assert upload_posts(live_server, "root/late") == 0

    state_file.write_text("{not json")
    broken = client.fails("use")
    assert f"{state_file} is not valid JSON" in broken
    assert "fix or delete it" in broken


def test_passwd_changes_the_password_and_keeps_the_login(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    assert "password changed for root" in client.ok("passwd", stdin="newpw\nnewpw\n")
    assert client.json("user", "root")["username"] == "root"  # still logged in
    other = Packyard(tmp_path / "other")
    other.ok("use", live_server.url)
    assert "check the user name and the password" in other.fails(
        "login", "root", "--password", ROOT_PASSWORD
    )
    other.ok("login", "root", "--password", "newpw")


def test_dry_run_uploads_nothing_and_says_what_it_would(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/dry")
    client.ok("use", "root/dry")
    first = build_wheel(tmp_path / "dist", "dry-demo", "1.0")
    client.ok("upload", first)
    second = build_wheel(tmp_path / "dist", "dry-demo", "2.0")

    output = client.ok("upload", "--dry-run", tmp_path / "dist")
    assert f"would upload {second.name}" in output
    assert f"would upload {first.name}" not in output
    assert "dry run: would upload 1, skip 1 (already on root/dry)" in output
    assert list(file_names(live_server.url, "root/dry", "dry-demo")) == ["1.0"]
    assert upload_posts(live_server, "root/dry") == 1


def test_a_failed_upload_exits_non_zero_and_is_named_in_the_summary(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/release", "volatile=False")
    client.ok("use", "root/release")
    client.ok("upload", build_wheel(tmp_path / "first", "rel-demo", "1.0"))
    # Same file name, other bytes: a non-volatile index refuses to replace a released file.
    clash = build_wheel(tmp_path / "second", "rel-demo", "1.0", payload="CHANGED = True\n")
    fresh = build_wheel(tmp_path / "second", "rel-demo", "1.1")

    result = client.run("upload", tmp_path / "second")
    assert result.returncode == 1, str(result)
    summary = [line for line in result.output.splitlines() if line.startswith("uploaded ")]
    assert summary == [
        f"uploaded 1, skipped 0 (already on root/release), failed 1: {clash.name} (409 "
        f"{clash.name} already exists in non-volatile index)"
    ], str(result)
    assert "hint: a non-volatile index keeps released files: bump the version" in result.output
    assert file_names(live_server.url, "root/release", "rel-demo")["1.1"] == [fresh.name]


def test_errors_say_what_to_do(live_server: ServerProcess, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", "hint-demo", "1.0")
    fresh = Packyard(tmp_path / "fresh")
    assert "packyard use URL" in fresh.fails("upload", wheel)
    assert "packyard use URL" in fresh.fails("login", "root", "--password", "x")

    unreachable = fresh.fails("use", "http://127.0.0.1:9")
    assert "cannot reach http://127.0.0.1:9/+api" in unreachable
    assert "is the server running?" in unreachable

    fresh.ok("use", live_server.url)
    no_index = fresh.fails("upload", wheel)
    assert "no index selected" in no_index
    assert "packyard use USER/INDEX" in no_index

    admin = logged_in(tmp_path / "admin", live_server.url, "root", ROOT_PASSWORD)
    output = admin.fails("upload", "--index", "root/nothing", wheel)
    assert "404" in output
    assert "packyard use -l" in output
    admin.ok("index", "-c", "root/hints")
    fresh.ok("use", "root/hints")
    not_logged_in = fresh.fails("upload", wheel)
    assert "nothing uploaded" in not_logged_in
    assert "hint: you are not logged in: log in with `packyard login USER`" in not_logged_in
    assert upload_posts(live_server, "root/hints") == 0

    wrong = fresh.fails("login", "root", "--password", "wrong")
    assert "401" in wrong
    assert "check the user name and the password" in wrong
    admin.ok("use", "root/hints")
    admin.ok("upload", wheel)  # a project exists; a missing one is a 404 before any login
    removing = fresh.fails("remove", "-y", "hint-demo")
    assert "you are not logged in" in removing

    missing = admin.fails("remove", "-y", "no-such-project")
    assert "404" in missing
    assert "`packyard list` shows the projects" in missing
    notes = tmp_path / "notes.txt"
    notes.write_text("not a distribution\n")
    assert "is neither a distribution" in admin.fails("upload", notes)
    nothing = admin.fails("upload", cwd=tmp_path)
    assert "this directory has no pyproject.toml or setup.py" in nothing


# --- use --set-cfg: plain pip and uv use the index -------------------------------------------


def test_set_cfg_points_plain_pip_and_uv_at_the_index(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/cfg")
    client.ok("use", "root/cfg")
    client.ok("upload", build_wheel(tmp_path / "dist", "cfg-demo", "3.0"))

    output = client.ok("use", "--set-cfg")
    pip_conf = client.config_home / "pip" / "pip.conf"
    uv_toml = client.config_home / "uv" / "uv.toml"
    assert f"wrote {pip_conf}" in output
    assert f"wrote {uv_toml}" in output
    simple = f"{live_server.url}/root/cfg/+simple/"
    assert f"index-url = {simple}" in pip_conf.read_text()
    client.ok("use", "--set-cfg")  # again: the uv block is replaced, not repeated
    assert uv_toml.read_text().count("[[index]]") == 1

    # Plain pip and uv, reading only the config under this XDG_CONFIG_HOME (clean_env's
    # PIP_CONFIG_FILE=/dev/null would switch config files off: it is left out here).
    env = {k: v for k, v in clean_env().items() if k != "PIP_CONFIG_FILE"}
    env |= {"HOME": str(client.home), "XDG_CONFIG_HOME": str(client.config_home)}
    env.pop("VIRTUAL_ENV", None)
    downloads = tmp_path / "downloads"
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(downloads), "cfg-demo"]
    result = subprocess.run(pip, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Looking in indexes: {simple}" in result.stdout
    assert [p.name for p in downloads.iterdir()] == ["cfg_demo-3.0-py3-none-any.whl"]

    uv = [tool("uv"), "pip", "compile", "--no-header", "--python-version", "3.11", "-"]
    result = subprocess.run(
        uv, env=env, cwd=tmp_path, input="cfg-demo\n", capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cfg-demo==3.0" in result.stdout


# --- push, yank, unyank, getjson -----------------------------------------------------------


def simple_files(url: str, index: str, project: str) -> list[dict[str, Any]]:
    headers = {"Accept": "application/vnd.pypi.simple.v1+json"}
    response = httpx.get(f"{url}/{index}/+simple/{project}/", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    files: list[dict[str, Any]] = response.json()["files"]
    return files


def test_yank_unyank_push_and_getjson(live_server: ServerProcess, tmp_path: Path) -> None:
    client = logged_in(tmp_path / "home", live_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/stage")
    client.ok("index", "-c", "root/prod", "volatile=False")
    client.ok("use", "root/stage")
    wheel = build_wheel(tmp_path / "dist", "yank-demo", "1.0")
    client.ok("upload", wheel)

    client.ok("yank", "yank-demo==1.0", "--reason", "broken build")
    assert [f["yanked"] for f in simple_files(live_server.url, "root/stage", "yank-demo")] == [
        "broken build"
    ]
    assert "yanked" in client.ok("list", "yank-demo")
    client.ok("unyank", "yank-demo==1.0")
    files = simple_files(live_server.url, "root/stage", "yank-demo")
    assert [f.get("yanked", False) for f in files] == [False]

    assert "pushed yank-demo 1.0 to root/prod" in client.ok("push", "yank-demo==1.0", "root/prod")
    assert file_names(live_server.url, "root/prod", "yank-demo") == {"1.0": [wheel.name]}
    shown = json.loads(client.ok("getjson", "/root/prod/yank-demo"))
    assert list(shown["result"]) == ["1.0"]
    assert "push needs NAME==VERSION" in client.fails("push", "yank-demo", "root/prod")


def test_yank_on_a_server_without_it_says_so(devpi_server: DevpiServer, tmp_path: Path) -> None:
    client = logged_in(tmp_path / "home", devpi_server.url, "root", ROOT_PASSWORD)
    client.ok("index", "-c", "root/noyank")
    client.ok("use", "root/noyank")
    client.ok("upload", build_wheel(tmp_path / "dist", "noyank-demo", "1.0"))
    output = client.fails("yank", "noyank-demo==1.0")
    assert f"{devpi_server.url} cannot yank" in output
    assert "hint: yanking (PEP 592) needs" in output
