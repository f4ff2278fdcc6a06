"""packyard mounted under `/pypi/` behind a real nginx (Debian's), as devpi's docs set it up.

The test starts nginx on loopback in front of a real `packyard serve`; nginx strips the
`/pypi/` prefix and tells the server where it is mounted with devpi's `X-Outside-Url` header.
Through it: twine uploads, pip and uv install, the devpi client (use, login, upload, list,
install), and Chromium follows every link on the front, index, project and version pages
without leaving `/pypi/` and without a 404.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import BROWSER_ACCEPT, chromium
from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth, clean_env, free_port, tool
from tests.devpi_client import Devpi, devpi_executable  # noqa: F401 (a fixture)
from tests.e2e_support import (
    PASSWORD,
    assert_succeeded,
    create_index,
    create_user,
    print_log_if_failed,
    run_tool,
    running_server,
)

pytestmark = pytest.mark.e2e

MOUNT = "/pypi"
PROJECT = "proxied-demo"
MODULE = "proxied_demo"
# devpi's nginx template: the outside URL for links, the client's address, request bodies
# up to 64 MB, gzip for JSON, a minute for slow answers; plus the mount path in the URL.
NGINX_CONF = """\
daemon off;
worker_processes 1;
user {user};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        gzip on;
        gzip_min_length 2000;
        gzip_proxied any;
        gzip_types application/json;
        proxy_read_timeout 60s;
        client_max_body_size 64M;
        location {mount}/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_set_header X-outside-url http://127.0.0.1:{port}{mount};
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""


@dataclass
class Proxy:
    """nginx in front of `server`; `url` is where packyard is mounted (no trailing slash)."""

    server: ServerProcess
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{MOUNT}"

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for path in (self.directory / "error.log", self.directory / "access.log")
            if path.exists()
        )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "nginx exited at start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {port} in {timeout:g} s")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """packyard, and nginx mounting it at /pypi/ (both stopped at the end)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "Debian's nginx is not installed (.ci/run installs it)"
    directory = tmp_path_factory.mktemp("proxy")
    with running_server(directory) as server:
        proxy = Proxy(server, free_port(), directory / "nginx")
        proxy.directory.mkdir()
        conf = proxy.directory / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            user=getpass.getuser(), dir=proxy.directory, port=proxy.port, mount=MOUNT,
            upstream=server.port,
        ))  # fmt: skip
        command = [nginx, "-p", str(proxy.directory), "-c", str(conf), "-e", "stderr"]
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            _wait_for_port(proxy.port, process)
            yield proxy
        finally:
            process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest, proxy: Proxy) -> Iterator[None]:
    yield
    print_log_if_failed(request, proxy.server)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- nginx log ---\n{proxy.log()}")


@pytest.fixture(scope="module")
def http(proxy: Proxy) -> Iterator[httpx.Client]:
    """An API client that, like a user's, only knows the proxy's URL."""
    with httpx.Client(base_url=proxy.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def published(proxy: Proxy, http: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """alice/dev made through the proxy and PROJECT 1.0 uploaded by twine through it."""
    create_user(http, "alice")
    create_index(http, "alice", "dev", volatile=True)
    dist = tmp_path_factory.mktemp("dist")
    files = [build_wheel(dist, PROJECT, "1.0"), build_sdist(dist, PROJECT, "1.0")]
    twine = [tool("twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    target = ["--repository-url", f"{proxy.url}/alice/dev/", "-u", "alice", "-p", PASSWORD]
    assert_succeeded(run_tool([*twine, *target, *files]))
    return files[0]


# --- installers and uploaders ------------------------------------------------------------------


def test_twine_uploads_through_the_proxy(http: httpx.Client, published: Path) -> None:
    result = http.get(f"/alice/dev/{PROJECT}", headers=JSON).json()["result"]
    links = result["1.0"]["+links"]
    assert sorted(link["href"].rsplit("/", 1)[-1] for link in links) == sorted(
        [published.name, f"{MODULE}-1.0.tar.gz"]
    )
    # Absolute links under the mount, which download through it.
    assert all(link["href"].startswith(f"{http.base_url}alice/dev/+f/") for link in links)
    assert all(http.get(link["href"]).status_code == 200 for link in links)


def test_pip_and_uv_install_through_the_proxy(
    proxy: Proxy, published: Path, tmp_path: Path
) -> None:
    index = ["--index-url", f"{proxy.url}/alice/dev/+simple/"]
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps"]
    assert_succeeded(run_tool([*pip, *index, "--target", tmp_path / "pip", PROJECT]))
    assert (tmp_path / "pip" / MODULE / "__init__.py").read_text().startswith("__version__")
    uv = [tool("uv"), "pip", "install", "--no-config", "--no-cache", "--python", sys.executable]
    assert_succeeded(run_tool([*uv, *index, "--target", tmp_path / "uv", PROJECT]))
    assert (tmp_path / "uv" / MODULE / "__init__.py").exists()
    # devpi's installer shortcut, without +simple/, works under the mount too.
    shortcut = ["--index-url", f"{proxy.url}/alice/dev/"]
    assert_succeeded(run_tool([*pip, *shortcut, "--target", tmp_path / "short", PROJECT]))


def test_the_devpi_client_works_through_the_proxy(
    proxy: Proxy,
    published: Path,
    tmp_path: Path,
    devpi_executable: Path,  # noqa: F811
) -> None:
    devpi = Devpi(devpi_executable, tmp_path / "home")
    devpi.ok("use", proxy.url)
    devpi.ok("login", "alice", "--password", PASSWORD)
    devpi.ok("use", "alice/dev")
    used = devpi.ok("use")
    assert f"current devpi index: {proxy.url}/alice/dev" in used, used
    wheel = build_wheel(tmp_path / "dist", PROJECT, "2.0")
    uploaded = devpi.ok("upload", wheel)
    assert f"file_upload of {wheel.name} to {proxy.url}/alice/dev/" in uploaded
    assert devpi.ok("list").split() == [PROJECT]
    listed = devpi.ok("list", PROJECT)
    assert f"{proxy.url}/alice/dev/+f/" in listed and wheel.name in listed, listed
    venv = tmp_path / "venv"
    seed = [tool("uv"), "venv", "--seed", "-q", "--python", sys.executable, str(venv)]
    subprocess.run(seed, check=True, env=clean_env())
    installed = devpi.ok("install", "--venv", venv, f"{PROJECT}==2.0")
    assert f"Successfully installed {PROJECT}-2.0" in installed, installed


# --- the web UI in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _targets(page: Page) -> list[tuple[str, str]]:
    """(method, URL) of every link, form and stylesheet of the page, resolved as the browser
    does (the attribute: `form.action` can be a field named "action", as yank's is)."""
    found: list[list[str]] = page.eval_on_selector_all(
        "a[href], form[action], link[rel=stylesheet]",
        """els => els.map(e => e.tagName == 'FORM'
            ? [(e.getAttribute('method') || 'get').toUpperCase(), e.getAttribute('action')]
            : ['GET', e.getAttribute('href')]
        ).map(([method, target]) => [method, new URL(target, document.baseURI).href])""",
    )
    return [(method, url) for method, url in found]


def test_a_browser_walk_never_leaves_the_mount(
    proxy: Proxy, published: Path, browser: Browser
) -> None:
    context = browser.new_context(extra_http_headers={"Accept": BROWSER_ACCEPT})
    context.set_default_timeout(15_000)  # the machine is shared: more than Playwright's 5 s
    try:
        page = context.new_page()
        page.goto(f"{proxy.url}/")
        # Log in through the proxy: the form, its pre-session cookie and the redirect back.
        page.click("text=Log in")
        page.fill("#login-user", "alice")
        page.fill("#login-password", PASSWORD)
        page.click("button:text('Log in')")
        assert page.url == f"{proxy.url}/"
        assert "Logged in as" in page.content()
        targets: set[tuple[str, str]] = set()
        for path in ("/", "/alice/dev", f"/alice/dev/{PROJECT}", f"/alice/dev/{PROJECT}/1.0"):
            response = page.goto(proxy.url + path)
            assert response is not None and response.status == 200, path
            targets |= set(_targets(page))
        urls = sorted(url for _, url in targets)
        assert any("/alice/dev/+f/" in url for url in urls), urls
        outside = [url for url in urls if not url.startswith(f"{proxy.url}/")]
        assert outside == [], outside
        # Every target is there: links answer, forms reach their handler (which refuses a
        # post without its CSRF token, 403, rather than not knowing the place, 404).
        statuses = {
            (method, url): context.request.fetch(url, method=method, form={}).status
            for method, url in sorted(targets)
        }
        missing = {target: status for target, status in statuses.items() if status == 404}
        assert missing == {}, missing
        assert len(statuses) >= 15, statuses
    finally:
        context.close()


def test_redirects_stay_under_the_mount(proxy: Proxy, published: Path) -> None:
    page = {"Accept": BROWSER_ACCEPT}
    with httpx.Client(timeout=30) as client:
        listing = client.get(f"{proxy.url}/alice/dev/+simple", headers=page)
        assert listing.status_code == 301
        assert listing.headers["location"] == f"{MOUNT}/alice/dev/+simple/"
        assert (
            client.get(
                f"{proxy.url}/alice/dev/+simple", headers=page, follow_redirects=True
            ).status_code
            == 200
        )
        renamed = client.get(f"{proxy.url}/alice/dev/+simple/Proxied_Demo/")
        assert renamed.headers["location"] == f"{MOUNT}/alice/dev/+simple/{PROJECT}/"
        auth = basic_auth("alice", PASSWORD)
        discovery = client.get(f"{proxy.url}/alice/dev/+api", headers=JSON | auth).json()
        assert discovery["result"]["simpleindex"] == f"{proxy.url}/alice/dev/+simple/"
