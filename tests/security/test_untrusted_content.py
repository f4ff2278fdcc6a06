"""Untrusted content against the real server: hosted docs, archive bombs, hostile READMEs, search.

Each test plays the attacker over loopback (a self-registered user, or anyone) and asserts what
they and the other users see: statuses, bodies, time bounds, and that nothing was stored.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import signal
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.browser import BROWSER_ACCEPT, CHROMIUM_ARGS
from tests.builders import build_wheel
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess, basic_auth
from tests.e2e_support import PASSWORD, create_index, create_user, running_server, upload

pytestmark = pytest.mark.e2e

ATTACKER = "mallory"

# Run as root's browser: flip root/prod to volatile through the UI's own settings form, and
# read same-origin JSON. Either side effect shows the script ran with root's session.
ATTACK_SCRIPT = """
window.ran = true;
fetch("/root/prod", {headers: {Accept: "text/html"}, credentials: "include"})
  .then(r => r.text()).then(html => {
    const csrf = (html.match(/name="csrf" value="([^"]+)"/) || [])[1] || "";
    const form = new URLSearchParams({csrf, index: "root/prod", title: "owned",
                                      description: "", volatile: "true", bases: ""});
    return fetch("/+ui/index-settings", {method: "POST", body: form, credentials: "include"});
  });
fetch("/+api", {credentials: "include"}).then(r => r.text())
  .then(t => { document.title = "leaked " + t.length; });
"""
ATTACK_HTML = (
    f"<!doctype html><html><head><title>docs</title></head><body><h1>Docs</h1>"
    f"<script>{ATTACK_SCRIPT}</script><img src=x onerror='window.ran2=true'></body></html>"
)
ATTACK_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" onload="window.ran=true">'
    f"<script>{ATTACK_SCRIPT}</script><circle r='5'/></svg>"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("content")) as started:
        with httpx.Client(base_url=started.url) as api:
            create_user(api, ATTACKER)
            create_index(api, ATTACKER, "dev", volatile=True)
            root = JSON | basic_auth("root", ROOT_PASSWORD)
            response = api.put("/root/prod", json={"volatile": False}, headers=root)
            assert response.status_code == 200, response.text
        yield started


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def doc_upload(api: httpx.Client, project: str, version: str, zip_bytes: bytes) -> httpx.Response:
    form = {":action": "doc_upload", "name": project, "version": version}
    return api.post(
        f"/{ATTACKER}/dev/", data=form, files={"content": (f"{project}.zip", zip_bytes)},
        headers=basic_auth(ATTACKER, PASSWORD),
    )  # fmt: skip


def release_upload(api: httpx.Client, path: Path, name: str, version: str) -> httpx.Response:
    return upload(
        api, f"/{ATTACKER}/dev", path.name, path.read_bytes(),
        basic_auth(ATTACKER, PASSWORD), {"name": name, "version": version},
    )  # fmt: skip


def vm_rss_kib(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


# --- hosted docs run no script as the site ----------------------------------------------------


def test_hosted_docs_script_does_not_run_in_roots_browser(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", ATTACK_HTML)
        archive.writestr("logo.svg", ATTACK_SVG)
    assert release_upload(api, build_wheel(tmp_path, "evil-docs", "1.0"), "evil-docs", "1.0")
    assert doc_upload(api, "evil-docs", "1.0", buffer.getvalue()).status_code == 200

    base = f"/{ATTACKER}/dev/evil-docs/1.0/+doc"
    for member in ("index.html", "logo.svg"):
        response = api.get(f"{base}/{member}")
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert csp.startswith("sandbox;") and "default-src 'none'" in csp
        assert "script-src" not in csp and "allow-scripts" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=server.url)
            page = context.new_page()
            page.goto("/+login")
            page.get_by_label("User").fill("root")
            page.get_by_label("Password").fill(ROOT_PASSWORD)
            page.get_by_role("main").get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r".*/$"))
            for member in ("index.html", "logo.svg"):
                page.goto(f"{base}/{member}")
                page.wait_for_timeout(1500)  # time for the script's fetches, had it run
                assert page.evaluate("window.ran === undefined && window.ran2 === undefined")
                assert not page.title().startswith("leaked")
        finally:
            browser.close()

    prod = api.get("/root/prod", headers=JSON).json()["result"]
    assert prod["volatile"] is False and prod.get("title", "") != "owned"


# --- archive bombs ----------------------------------------------------------------------------


def test_doc_zip_with_a_huge_member_streams_with_bounded_memory(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    size = 256 * 1024 * 1024  # zeros: 256 KiB deflated
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.html", "<p>hi</p>")
        with archive.open("big.html", "w", force_zip64=True) as member:
            chunk = bytes(1024 * 1024)
            for _ in range(size // len(chunk)):
                member.write(chunk)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    assert release_upload(api, build_wheel(tmp_path, "bomb-docs", "1.0"), "bomb-docs", "1.0")
    assert doc_upload(api, "bomb-docs", "1.0", bomb.read_bytes()).status_code == 200

    before, peak, received = vm_rss_kib(server), 0, 0
    started = time.monotonic()
    with api.stream("GET", f"/{ATTACKER}/dev/bomb-docs/1.0/+doc/big.html") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(size)
        for chunk in response.iter_bytes():
            received += len(chunk)
            peak = max(peak, vm_rss_kib(server)) if received % (32 << 20) < len(chunk) else peak
    assert received == size
    assert time.monotonic() - started < 60
    # The old code read the whole member into memory (and copied it): +256 MiB or more.
    assert max(peak, vm_rss_kib(server)) - before < 64 * 1024, (before, peak)


def test_doc_zip_member_over_the_cap_is_refused_at_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACKYARD_MAX_ARCHIVE_UNPACKED", str(16 * 1024 * 1024))
    monkeypatch.setenv("PACKYARD_MAX_ARCHIVE_MEMBERS", "1000")
    with running_server(tmp_path) as server, httpx.Client(base_url=server.url) as api:
        create_user(api, ATTACKER)
        create_index(api, ATTACKER, "dev", volatile=True)
        wheel = build_wheel(tmp_path / "w", "capped", "1.0")
        assert release_upload(api, wheel, "capped", "1.0").status_code == 200
        big = io.BytesIO()
        with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("big.html", bytes(32 * 1024 * 1024))
        response = doc_upload(api, "capped", "1.0", big.getvalue())
        assert response.status_code == 400
        assert "big.html" in response.text and "the limit is 16777216" in response.text
        many = io.BytesIO()
        with zipfile.ZipFile(many, "w") as archive:
            for number in range(1001):
                archive.writestr(f"p{number}.html", "")
        response = doc_upload(api, "capped", "1.0", many.getvalue())
        assert response.status_code == 400
        assert "archive has too many members" in response.text
        assert api.get(f"/{ATTACKER}/dev/capped/1.0/+doc/index.html").status_code == 404


def many_member_sdist(path: Path, members: int) -> Path:
    """A gzipped tar of `members` empty files with PKG-INFO last, its headers made by patching
    one template (tarfile would take tens of seconds for 200k members)."""
    template = bytearray(tarfile.TarInfo("x").tobuf(format=tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    blank_name = sum(template) - template[0]  # the checksum, less the name's bytes
    raw = io.BytesIO()
    for number in range(members):
        name = f"many-1.0/f{number}".encode()
        header = bytearray(template)
        header[0:100] = name.ljust(100, b"\0")
        header[148:156] = b"%06o\0 " % (blank_name + sum(name))
        raw.write(header)
    info = b"Metadata-Version: 2.1\nName: many\nVersion: 1.0\n"
    last = tarfile.TarInfo("many-1.0/PKG-INFO")
    last.size = len(info)
    raw.write(last.tobuf(format=tarfile.USTAR_FORMAT) + info.ljust(512, b"\0") + bytes(1024))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=1))
    return path


def test_sdist_with_many_members_is_refused_fast_and_does_not_block_others(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    bomb = many_member_sdist(tmp_path / "many-1.0.tar.gz", 200_000)
    innocent = build_wheel(tmp_path / "innocent", "innocent", "1.0")
    other: dict[str, float] = {}

    def upload_by_someone_else() -> None:
        time.sleep(0.5)  # while the bomb is being inspected
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = release_upload(client, innocent, "innocent", "1.0")
        other["status"], other["seconds"] = response.status_code, time.monotonic() - started
        other["done"] = time.monotonic()

    thread = threading.Thread(target=upload_by_someone_else)
    started = time.monotonic()
    thread.start()
    response = release_upload(api, bomb, "many", "1.0")
    done = time.monotonic()
    thread.join(60)
    assert response.status_code == 400
    assert "archive has too many members (the limit is 50000)" in response.text
    assert done - started < 30, done - started  # 50k members walked at most, then refused
    # Before, the other user's upload queued behind the bomb's inspection in the shared
    # batch, and finished after it.
    assert other["status"] == 200 and other["seconds"] < 5, other
    assert other["done"] < done, (other, done)
    assert "many" not in api.get(f"/{ATTACKER}/dev", headers=JSON).json()["result"]["projects"]


def test_gzip_bomb_sdist_is_refused_without_unpacking_it(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    """A pax header of 64 MiB (tarfile reads one whole) and then data to skip: both capped."""
    raw = io.BytesIO()
    header = tarfile.TarInfo("bomb-1.0/././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 64 * 1024 * 1024
    raw.write(header.tobuf(format=tarfile.USTAR_FORMAT))
    compressor = gzip.compress(raw.getvalue() + bytes(header.size) + bytes(1024))
    path = tmp_path / "bomb-1.0.tar.gz"
    path.write_bytes(compressor)
    started = time.monotonic()
    response = release_upload(api, path, "bomb", "1.0")
    assert response.status_code == 400, response.text
    assert "metadata too large" in response.text
    assert time.monotonic() - started < 5


# --- a hostile description --------------------------------------------------------------------


def test_pathological_description_does_not_freeze_the_server(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    huge = "> " * 800_000  # 1.6 MB: over the render cap, shown as plain text
    nested = ">" * 40_000  # under the cap; its render takes a minute (quadratic sanitising)
    for version, description in (("1.0", huge), ("2.0", nested)):
        wheel = build_wheel(tmp_path / version, "slowdoc", version, description=description)
        assert release_upload(api, wheel, "slowdoc", version).status_code == 200

    browser = {"Accept": BROWSER_ACCEPT}
    started = time.monotonic()
    response = api.get(f"/{ATTACKER}/dev/slowdoc/1.0", headers=browser)
    assert response.status_code == 200
    assert time.monotonic() - started < 3
    assert "only the first 200000 are shown, as plain text" in response.text

    # Probes the API while the render runs. A server frozen by the render answers none of them
    # before the render's own answer, however fast the machine; a live one answers some.
    answered: list[tuple[int, float]] = []
    rendered = threading.Event()

    def probe_api() -> None:
        time.sleep(0.2)
        while not rendered.is_set():
            status = httpx.get(f"{server.url}/+api", timeout=30).status_code
            answered.append((status, time.monotonic()))

    thread = threading.Thread(target=probe_api)
    thread.start()
    started = time.monotonic()
    response = api.get(f"/{ATTACKER}/dev/slowdoc/2.0", headers=browser)
    render_done = time.monotonic()
    rendered.set()
    thread.join(30)
    elapsed = render_done - started
    assert response.status_code == 200
    assert "took too long to render: shown as plain text" in response.text
    assert elapsed < 2 + 30, elapsed  # the deadline, plus a new worker's start-up under load
    assert {status for status, _ in answered} == {200}
    assert any(when < render_done for _, when in answered), answered
    # Cached: the second view costs no render.
    started = time.monotonic()
    assert api.get(f"/{ATTACKER}/dev/slowdoc/2.0", headers=browser).status_code == 200
    assert time.monotonic() - started < 1
    assert api.get(f"/{ATTACKER}/dev/slowdoc", headers=browser).status_code == 200


def test_server_stops_promptly_on_sigterm_during_a_render(tmp_path: Path) -> None:
    with running_server(tmp_path) as server, httpx.Client(base_url=server.url) as api:
        create_user(api, ATTACKER)
        create_index(api, ATTACKER, "dev", volatile=True)
        wheel = build_wheel(tmp_path / "w", "slow", "1.0", description=">" * 40_000)
        assert release_upload(api, wheel, "slow", "1.0").status_code == 200
        viewer = threading.Thread(
            target=lambda: httpx.get(
                f"{server.url}/{ATTACKER}/dev/slow/1.0", headers={"Accept": BROWSER_ACCEPT},
                timeout=60,
            )
        )  # fmt: skip
        viewer.start()
        time.sleep(2.5)  # the worker has started and is rendering
        assert server.process is not None
        workers = _children_named(server.process.pid, b"readme_worker")
        assert workers
        started = time.monotonic()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10
        viewer.join(30)
        assert not [pid for pid in workers if _running(pid)]


def _children_named(parent: int, word: bytes) -> list[int]:
    children = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if word in cmdline.read_bytes() and _parent(cmdline.parent.name) == parent:
                children.append(int(cmdline.parent.name))
        except OSError:
            continue
    return children


def _parent(pid: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"PPid:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


# --- search -----------------------------------------------------------------------------------


def test_a_20000_term_search_is_refused_quickly(api: httpx.Client) -> None:
    browser = {"Accept": BROWSER_ACCEPT}
    started = time.monotonic()
    response = api.get("/+search", params={"q": " ".join("a" * 20_000)}, headers=browser)
    # 400 from the search cap; a request-line cap in front of the app may answer first.
    assert response.status_code in (400, 414), response.status_code
    assert time.monotonic() - started < 2
    response = api.get("/+search", params={"q": "x" * 201}, headers=browser)
    assert response.status_code == 400 and "the limit is 200" in response.text
    response = api.get("/+search", params={"q": " ".join("ab" for _ in range(11))})
    assert response.status_code == 400 and "at most 10 words" in response.text
    assert api.get("/+search", params={"q": "slowdoc evil"}).status_code == 200
