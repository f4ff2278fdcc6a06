"""The real devpi client (7.3.0) against a real packyard: install, push, tox results, mirrors.

Each test names the items of devpi-protocol.md §18 it covers (see test_devpi_client.py).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.conftest import (
    JSON,
    LOOPBACK_UPSTREAMS,
    ROOT_PASSWORD,
    ServerProcess,
    basic_auth,
    clean_env,
    tool,
)
from tests.devpi_client import (
    PIP_ACCEPT,
    Devpi,
    devpi_auth,
    devpi_executable,  # noqa: F401 (a fixture)
    doc_zip,
    hrefs,
    links_by_rel,
    printed_config,
    sha256_of,
    signed_up,
)
from tests.devpi_scenarios import DEVPI_HEADERS
from tests.e2e_support import PASSWORD, create_index, create_user, upload
from tests.upstream import Upstream

pytestmark = pytest.mark.e2e

TOX_RESULT = {
    "reportversion": "1",
    "toxversion": "3.28.0",
    "platform": "linux",
    "host": "labhost",
    "commands": [],
    "testenvs": {
        "py311": {
            "setup": [{"command": ["pip", "install", "demo"], "output": "ok", "retcode": "0"}],
            "test": [{"command": ["pytest"], "output": "1 passed", "retcode": "0"}],
            "python": {"version": "3.11.7 (main) [GCC]", "executable": "/usr/bin/python3"},
        }
    },
}


@pytest.fixture
def devpi(request: pytest.FixtureRequest, tmp_path: Path) -> Devpi:
    return Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")


@pytest.fixture
def live_server(
    server_factory: Callable[..., ServerProcess], request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """conftest's live_server, opted in to what these tests do: mirror another test server
    on loopback and push to one (both off by default)."""
    server = server_factory()
    server.settings = LOOPBACK_UPSTREAMS | {"allow_external_push": "true"}
    server.start()
    yield server
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- server log ---\n{server.log()}")


@pytest.fixture
def http(live_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def start_server(server_factory: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    """Start one more server (`name` names its dir), with extra `packyard serve` flags."""

    def start(name: str, *flags: str) -> ServerProcess:
        server = server_factory(name=name)
        server.start(*flags)
        return server

    return start


# --- helpers ---------------------------------------------------------------------------------


def make_venv(directory: Path) -> Path:
    """A fresh venv with pip (which `devpi install --venv` runs); returns its python."""
    command = [tool("uv"), "venv", "--seed", "-q", "--python", sys.executable, str(directory)]
    subprocess.run(command, check=True, env=clean_env())
    return directory / "bin" / "python"


def imported_version(python: Path, module: str) -> str:
    code = f"import {module}; print({module}.__version__)"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- installing -------------------------------------------------------------------------------


def test_install_into_a_fresh_venv(
    devpi: Devpi, live_server: ServerProcess, http: httpx.Client, tmp_path: Path
) -> None:
    """§18: 31, 32, 34, 35, 36"""
    signed_up(devpi, live_server, "dev", "volatile=True")
    dist = tmp_path / "dist"
    devpi.ok("upload", build_wheel(dist, "demo-app", "1.0"), build_sdist(dist, "demo-app", "1.0"))
    newest = build_wheel(dist, "demo-app", "2.0", requires_python=">=3.8")
    devpi.ok("upload", newest)
    devpi.ok("index", "-c", "child", "bases=alice/dev")
    devpi.ok("use", "alice/child")
    devpi.ok("upload", build_wheel(dist, "child-app", "1.0", requires=["demo-app"]))
    assert devpi.ok("list").split() == ["child-app"], "an index lists its own projects only"

    python = make_venv(tmp_path / "venv")
    printed = devpi.ok("install", "--venv", tmp_path / "venv", "child-app")
    assert f"Looking in indexes: http://alice:****@127.0.0.1:{live_server.port}/" in printed
    assert "Successfully installed child-app-1.0 demo-app-2.0" in printed
    assert imported_version(python, "demo_app") == "2.0"
    assert imported_version(python, "child_app") == "1.0"

    page = http.get("/alice/child/+simple/demo-app/", headers={"Accept": PIP_ACCEPT})
    assert page.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
    assert page.json()["name"] == "demo-app"
    (wheel,) = [f for f in page.json()["files"] if f["filename"] == newest.name]
    assert wheel["hashes"]["sha256"] == sha256_of(newest)
    assert wheel["requires-python"] == ">=3.8"
    html = http.get("/alice/child/+simple/demo-app/", headers={"Accept": "text/html"}).text
    assert f'#sha256={sha256_of(newest)}" data-requires-python="&gt;=3.8"' in html

    file_url = str(page.url.join(wheel["url"])).replace("/+f/", "/%2Bf/")
    assert "%2Bf" in file_url
    for credentials in ({}, basic_auth("alice", devpi.token("alice"))):
        got = http.get(file_url, headers=credentials)
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == sha256_of(newest)
        assert got.headers["Content-Length"] == str(newest.stat().st_size)
        assert got.headers["Last-Modified"].endswith("GMT")

    renamed = http.get("/alice/child/+simple/Demo_App/", headers={"Accept": PIP_ACCEPT})
    assert renamed.status_code in (301, 302)
    assert renamed.headers["Location"] == "/alice/child/+simple/demo-app/"
    assert http.get("/alice/child/+simple/nothing-here/").status_code == 404

    names = http.get("/alice/child/+simple/", headers={"Accept": PIP_ACCEPT}).json()["projects"]
    assert [entry["name"] for entry in names] == ["child-app", "demo-app"]
    listing = http.get("/alice/child/+simple/", headers={"Accept": "text/html"}).text
    assert listing.count(">demo-app</a>") == 1 and ">child-app</a>" in listing


# --- push, tox results, refresh, status --------------------------------------------------------


def test_push_to_an_index_and_to_an_external_upload_url(
    devpi: Devpi,
    live_server: ServerProcess,
    http: httpx.Client,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    """§18: 37, 38"""
    signed_up(devpi, live_server, "dev", "volatile=True")
    wheel = build_wheel(tmp_path, "demo-app", "1.0")
    devpi.ok("upload", wheel, doc_zip(tmp_path / "docs", "demo-app", "1.0"))
    wheel_href = hrefs(devpi.ok("list", "demo-app"))[0]
    posted = http.post(
        wheel_href,
        json=TOX_RESULT,
        headers=DEVPI_HEADERS | devpi_auth("alice", devpi.token("alice")),
    )
    assert posted.status_code == 200, posted.text
    devpi.ok("index", "-c", "prod", "volatile=False")

    printed = devpi.ok("push", "demo-app==1.0", "alice/prod")
    relpath = wheel_href.split("/alice/dev/", 1)[1]
    assert "200 register demo-app 1.0 -> alice/prod" in printed
    assert f"200 store_releasefile alice/prod/{relpath}" in printed
    assert f"200 store_toxresult alice/prod/{relpath}.toxresult-" in printed
    assert "200 store_doczip demo-app 1.0 -> alice/prod" in printed
    pushed = links_by_rel(devpi.getjson("/alice/prod/demo-app/1.0")["result"])
    assert sorted(pushed) == ["doczip", "releasefile", "toxresult"]
    assert pushed["releasefile"][0]["href"] == wheel_href.replace("/alice/dev/", "/alice/prod/")
    assert [entry["what"] for entry in pushed["releasefile"][0]["log"]] == ["upload", "push"]
    refused = devpi.fails("push", "demo-app==1.0", "alice/prod")
    assert f"409 Conflict: {wheel.name} already exists in non-volatile index" in refused
    devpi.ok("index", "-c", "copy")
    body = {"name": "demo-app", "version": "1.0", "targetindex": "alice/copy"}
    alice = DEVPI_HEADERS | devpi_auth("alice", devpi.token("alice"))
    posted_push = http.post("/alice/dev", json=body, headers=alice)
    assert posted_push.status_code == 200 and posted_push.json()["type"] == "actionlog"
    assert all(row[0] == 200 for row in posted_push.json()["result"])

    devpi.ok("user", "-c", "bob", "password=bobpw")
    devpi.ok("login", "bob", "--password", "bobpw")
    devpi.ok("index", "-c", "target")
    devpi.ok("login", "alice", "--password", "alicepw")
    refused = devpi.fails("push", "demo-app==1.0", "bob/target")
    assert "401 Unauthorized: user 'alice' cannot upload to 'bob/target'" in refused

    external = start_server("external")
    with httpx.Client(base_url=external.url, timeout=30) as other:
        create_user(other, "ext")
        create_index(other, "ext", "inbox")
        (devpi.home / ".pypirc").write_text(
            "[distutils]\nindex-servers = inbox\n[inbox]\n"
            f"repository = {external.url}/ext/inbox/\nusername = ext\npassword = {PASSWORD}\n"
        )
        printed = devpi.ok("push", "demo-app==1.0", "pypi:inbox")
        assert f"200 upload alice/dev/{relpath}" in printed
        assert "200 docfile demo-app" in printed
        received = other.get("/ext/inbox/demo-app/1.0", headers=JSON).json()["result"]
        assert links_by_rel(received)["releasefile"][0]["hashes"]["sha256"] == sha256_of(wheel)
        assert "demo-app 1.0 docs" in other.get("/ext/inbox/demo-app/1.0/+doc/index.html").text


def test_tox_results_posted_like_devpi_test(
    devpi: Devpi, live_server: ServerProcess, http: httpx.Client, tmp_path: Path
) -> None:
    """§18: 40"""
    signed_up(devpi, live_server, "dev", "volatile=True")
    devpi.ok("upload", build_wheel(tmp_path, "demo-app", "1.0"))
    (wheel_href,) = hrefs(devpi.ok("list", "demo-app"))
    posted = http.post(
        wheel_href,
        json=TOX_RESULT,
        headers=DEVPI_HEADERS | devpi_auth("alice", devpi.token("alice")),
    )
    assert posted.status_code == 200, posted.text
    assert posted.headers["content-type"] == "application/json"
    assert posted.json()["type"] == "toxresultpath"
    relpath = wheel_href.split(f"{live_server.url}/", 1)[1]
    assert posted.json()["result"].startswith(f"{relpath}.toxresult-")

    assert "labhost    linux   py311      3.11.7 tests passed" in devpi.ok("list", "-t", "demo-app")
    links = links_by_rel(devpi.getjson("/alice/dev/demo-app/1.0")["result"])
    (result,) = links["toxresult"]
    assert result["for_href"] == wheel_href
    assert http.get(result["href"]).json() == TOX_RESULT

    anonymous = http.post(wheel_href, json=TOX_RESULT, headers=DEVPI_HEADERS)
    assert anonymous.status_code == 401, "the :ANONYMOUS: default means: who may upload"
    devpi.ok("index", "dev", "acl_toxresult_upload=bob")
    alice = DEVPI_HEADERS | devpi_auth("alice", devpi.token("alice"))
    refused = http.post(wheel_href, json=TOX_RESULT, headers=alice)
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("No permission to upload tox results.")


def test_version_reads_the_server_status(
    devpi: Devpi, live_server: ServerProcess, http: httpx.Client
) -> None:
    """§18: 42"""
    devpi.ok("use", live_server.url)
    status = http.get("/+status", headers=JSON)
    assert status.headers["content-type"] == "application/json"
    assert status.json()["type"] == "status"
    versioninfo = status.json()["result"]["versioninfo"]
    printed = devpi.ok("--version")
    assert "devpi-client 7.3.0" in printed
    assert f"current devpi server: {live_server.url}/" in printed
    for name, version in versioninfo.items():
        assert f"{name} {version}" in printed


# --- mirrors and the whitelist -----------------------------------------------------------------


def test_mirror_whitelist_refresh_and_offline_files(
    devpi: Devpi,
    live_server: ServerProcess,
    http: httpx.Client,
    start_server: Callable[..., ServerProcess],
    tmp_path: Path,
) -> None:
    """§18: 12, 24, 25, 33, 34, 41"""
    url = live_server.url
    upstream = start_server("upstream")
    dist = tmp_path / "upstream"
    published = {
        "shared-0.5": build_wheel(dist / "a", "shared-app", "0.5", payload="# upstream"),
        "shared-1.0": build_wheel(dist, "shared-app", "1.0"),
        "shared-2.0": build_wheel(dist, "shared-app", "2.0"),
        "public-1.0": build_wheel(dist, "public-app", "1.0"),
        "shared-3.0": build_wheel(dist, "shared-app", "3.0"),
    }
    auth = basic_auth("up", PASSWORD)

    def publish(wheel: Path) -> None:
        response = upload(up, "/up/pub", wheel.name, wheel.read_bytes(), auth, {})
        assert response.status_code == 200, response.text

    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        create_user(up, "up")
        create_index(up, "up", "pub")
        for key in ("shared-0.5", "shared-1.0", "shared-2.0", "public-1.0"):
            publish(published[key])

        devpi.ok("use", url)
        devpi.ok("login", "root", "--password", ROOT_PASSWORD)
        mirror_url = f"mirror_url={upstream.url}/up/pub/+simple/"
        created = devpi.ok("index", "-c", "root/pypi", "type=mirror", mirror_url, "volatile=False")
        assert printed_config(created)[:2] == ["type=mirror", "volatile=False"]
        devpi.ok("user", "-c", "alice", "password=alicepw")
        devpi.ok("login", "alice", "--password", "alicepw")
        devpi.ok("index", "-c", "dev", "bases=root/pypi", "volatile=True")
        devpi.ok("use", "alice/dev")
        private = build_wheel(tmp_path / "private", "shared-app", "0.5")
        devpi.ok("upload", private)

        venv = tmp_path / "venv"
        python = make_venv(venv)
        assert "Successfully installed shared-app-0.5" in devpi.ok(
            "install", "--venv", venv, "shared-app"
        )
        listed = hrefs(devpi.ok("list", "--all", "shared-app"))
        assert listed == [
            f"{url}/alice/dev/+f/{sha256_of(private)[:3]}/{sha256_of(private)[3:16]}/{private.name}"
        ]
        assert "Successfully installed public-app-1.0" in devpi.ok(
            "install", "--venv", venv, "public-app"
        )
        assert all(
            href.startswith(f"{url}/root/pypi/+f/")
            for href in hrefs(devpi.ok("list", "public-app"))
        )

        whitelisted = devpi.ok("index", "dev", "mirror_whitelist+=shared-app")
        assert "mirror_whitelist=shared-app" in printed_config(whitelisted)
        printed = devpi.ok("install", "--venv", venv, "shared-app")
        assert "Successfully installed shared-app-2.0" in printed
        assert imported_version(python, "shared_app") == "2.0"
        page = http.get("/alice/dev/+simple/shared-app/", headers={"Accept": PIP_ACCEPT}).json()
        assert [(f["filename"], f["url"].split("/+f/")[0]) for f in page["files"]] == [
            (private.name, "../../../../alice/dev"),
            (published["shared-1.0"].name, "../../../../root/pypi"),
            (published["shared-2.0"].name, "../../../../root/pypi"),
        ]
        versions = devpi.getjson("/alice/dev/shared-app")["result"]
        assert sorted(versions) == ["0.5", "1.0", "2.0"]
        (shadowed,) = versions["0.5"]["+shadowing"]
        assert shadowed["+links"][0]["href"].startswith(f"{url}/root/pypi/+f/")
        own = devpi.getjson("/alice/dev/shared-app?ignore_bases=")["result"]
        assert sorted(own) == ["0.5"]
        shown = {href.rsplit("/", 1)[-1] for href in hrefs(devpi.ok("list", "--all", "shared-app"))}
        assert shown == {private.name, published["shared-1.0"].name, published["shared-2.0"].name}

        publish(published["shared-3.0"])
        assert "3.0" not in devpi.getjson("/alice/dev/shared-app")["result"], "page still fresh"
        assert "Refreshed shared-app" in devpi.ok("refresh", "shared-app")
        assert "3.0" in devpi.getjson("/alice/dev/shared-app")["result"]

    upstream.stop()
    cached = versions["2.0"]["+links"][0]["href"]
    got = http.get(cached.replace("/+f/", "/%2Bf/"))
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == sha256_of(published["shared-2.0"])
    never_fetched = versions["1.0"]["+links"][0]["href"]
    failed = http.get(never_fetched)
    assert failed.status_code == 502
    # Our words, not the upstream's: an error text must not tell an open port from a closed one.
    assert "no usable answer from the upstream" in failed.text
    assert str(upstream.port) not in failed.text
    assert http.get("/alice/dev/+simple/shared-app/").status_code == 200, "cached page served"


def test_file_metadata_of_a_mirror_file_not_cached_yet(http: httpx.Client, tmp_path: Path) -> None:
    """§18: 34"""
    upstream = Upstream()
    published = upstream.publish(build_wheel(tmp_path, "remote-app", "1.0"))
    upstream.start()
    try:
        config = {"type": "mirror", "mirror_url": upstream.simple_url}
        created = http.put(
            "/root/pypi", json=config, headers=JSON | basic_auth("root", ROOT_PASSWORD)
        )
        assert created.status_code == 200, created.text
        page = http.get("/root/pypi/+simple/remote-app/", headers={"Accept": PIP_ACCEPT})
        (listed,) = page.json()["files"]
        meta = http.get(page.url.join(listed["url"]), headers=JSON)
        assert meta.status_code == 200, meta.text
        assert meta.json()["type"] == "releasefilemeta"
        assert meta.json()["result"]["hashes"] == {"sha256": published.sha256}
    finally:
        upstream.stop()
