"""devpi compatibility, second pass (issue 14, items 5-6): mirrors as devpi's tests use them.

- 5: `devpi index -c NAME type=mirror` with no mirror_url mirrors the index pip is
  configured with (what root/pypi mirrors), and the index JSON shows it.
- 6: an upstream (tests/upstream.py, on loopback) that lists files without a hash (kept,
  their hash trusted on first use), names files by URL while the link text says something
  else, or has a project page with no files (200, empty).

Everything runs against the real `packyard serve`, driven by the real devpi client, pip and
plain HTTP; the upstream is hostile where it can be (link texts, URLs, bodies).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from packyard.core.mirror import MirrorLink, keep_known_hashes, trusted_directory
from packyard.core.models import FileRecord
from tests.builders import build_wheel
from tests.conftest import JSON, ROOT_PASSWORD, ServerProcess
from tests.devpi_client import (
    Devpi,
    devpi_executable,  # noqa: F401 (a fixture)
    printed_config,
)
from tests.e2e_support import print_log_if_failed
from tests.test_mirror import (
    ROOT_AUTH,
    SIMPLE_JSON,
    blob_names,
    create_mirror,
    installed,
    packyard,
    page_files,
    pip_install,
)
from tests.upstream import Upstream, tamper

pytestmark = pytest.mark.e2e

TOFU_REFUSAL = "differs from the copy this mirror first fetched"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with packyard(tmp_path_factory.mktemp("compat-mirror")) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    started = Upstream()
    started.start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        print_log_if_failed(request, request.getfixturevalue("server"))


def simple_html(client: httpx.Client, index: str, project: str) -> str:
    response = client.get(f"{index}/+simple/{project}/", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    return response.text


def devpi_links(client: httpx.Client, index: str, project: str, version: str) -> list[dict]:  # type: ignore[type-arg]
    response = client.get(f"{index}/{project}/{version}", headers=JSON)
    assert response.status_code == 200, response.text
    links: list[dict] = response.json()["result"]["+links"]  # type: ignore[type-arg]
    return links


def refresh_page(client: httpx.Client, index: str, project: str) -> None:
    """devpi's refresh: the mirror asks its upstream for the page again now."""
    response = client.post(f"{index}/+simple/{project}/refresh")
    assert response.status_code in (200, 302), response.text


# --- item 5: a mirror without mirror_url -------------------------------------------------------


@pytest.fixture
def devpi(request: pytest.FixtureRequest, tmp_path: Path) -> Devpi:
    return Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")


def test_devpi_creates_a_mirror_without_mirror_url_mirroring_pips_index(
    tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch, devpi: Devpi
) -> None:
    upstream.publish(build_wheel(tmp_path, "fromdefault", "1.0"))
    # The server process reads pip's configuration, as root/pypi does: here PIP_INDEX_URL.
    monkeypatch.setenv("PIP_INDEX_URL", upstream.simple_url)
    with packyard(tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        devpi.ok("use", server.url)
        devpi.ok("login", "root", "--password", ROOT_PASSWORD)
        started = time.monotonic()
        created = devpi.ok("index", "-c", "mirror", "type=mirror")
        assert time.monotonic() - started < 30
        assert f"mirror_url={upstream.simple_url}" in printed_config(created), created
        config = http.get("/root/mirror", headers=JSON).json()["result"]
        assert config["type"] == "mirror"
        assert config["mirror_url"] == upstream.simple_url
        assert "fromdefault" in page_files(http, "/root/mirror", "fromdefault").popitem()[0]

        # Who may create a mirror stays as it was: only root (users_create_mirrors is off).
        devpi.ok("user", "-c", "alice", "password=alicepw")
        devpi.ok("login", "alice", "--password", "alicepw")
        refused = devpi.fails("index", "-c", "alice/mine", "type=mirror")
        assert "403" in refused and "only root may create a mirror index" in refused
        assert http.get("/alice/mine", headers=JSON).status_code == 404
        assert "Traceback" not in server.log()


# --- item 6: files without a hash, trusted on first use ------------------------------------------


def test_pip_installs_a_file_the_upstream_lists_without_a_hash_whose_hash_is_then_kept(
    client: httpx.Client, server: ServerProcess, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.html_only = True  # an older or simpler index: PEP 503 HTML, no hash fragments
    wheel = upstream.publish(build_wheel(tmp_path, "nohash", "1.0"))
    upstream.hashless.add(wheel.filename)
    index = create_mirror(client, "tofu-install", upstream.simple_url, expiry=3600)

    # Listed before any download, with no hash anywhere (there is none to tell).
    (entry,) = page_files(client, index, "nohash").values()
    assert entry["filename"] == wheel.filename and entry["hashes"] == {}
    html = simple_html(client, index, "nohash")
    assert wheel.filename in html and "#sha256=" not in html
    (link,) = devpi_links(client, index, "nohash", "1.0")
    assert link["trusted_on_first_use"] is True and "hash_spec" not in link

    python = pip_install(tmp_path, f"{server.url}{index}/+simple/", "nohash")
    assert installed(python)["nohash"] == "1.0"
    assert upstream.count(f"/files/{wheel.filename}") == 1

    # From now on the hash of that first download is the file's hash, everywhere.
    (entry,) = page_files(client, index, "nohash").values()
    assert entry["hashes"] == {"sha256": wheel.sha256}
    assert f"#sha256={wheel.sha256}" in simple_html(client, index, "nohash")
    (link,) = devpi_links(client, index, "nohash", "1.0")
    assert link["hash_spec"] == f"sha256={wheel.sha256}" and link["trusted_on_first_use"]
    assert wheel.sha256 in blob_names(server)
    ui = client.get(f"{index}/nohash/1.0", headers={"Accept": "text/html"})
    assert ui.status_code == 200 and "trusted on first use" in ui.text
    assert wheel.sha256 in ui.text
    # The link stayed the same across the first download: pip's cached page still works.
    assert str(entry["url"]).endswith(f"/{wheel.filename}")
    assert client.get(str(entry["url"])).content == wheel.data
    assert upstream.count(f"/files/{wheel.filename}") == 1, "served from the cache"


def test_other_bytes_for_a_file_trusted_on_first_use_are_refused_and_the_first_copy_served(
    client: httpx.Client, server: ServerProcess, upstream: Upstream, tmp_path: Path
) -> None:
    wheel = upstream.publish(build_wheel(tmp_path, "swapped", "1.0"))
    upstream.hashless.add(wheel.filename)
    index = create_mirror(client, "tofu-swap", upstream.simple_url, expiry=3600)
    (entry,) = page_files(client, index, "swapped").values()
    url = str(entry["url"])
    assert client.get(url).content == wheel.data  # the first download: trusted

    # The upstream now serves other bytes under the same name and URL.
    other = tamper(wheel.data)
    upstream.replaced[wheel.filename] = other
    assert client.get(url).content == wheel.data, "the stored copy is served"
    assert upstream.count(f"/files/{wheel.filename}") == 1

    # With the cached copy dropped, the mirror fetches again, and refuses what it gets.
    dropped = client.delete(f"{index}/swapped", headers=ROOT_AUTH)
    assert dropped.status_code == 200, dropped.text
    assert "dropped 1 cached file(s)" in dropped.text, dropped.text
    started = time.monotonic()
    refused = client.get(url)
    assert time.monotonic() - started < 10
    assert refused.status_code == 502
    assert TOFU_REFUSAL in refused.text and wheel.sha256 in refused.text
    assert hashlib.sha256(other).hexdigest() not in blob_names(server), "nothing kept"

    # Declaring the new bytes' hash upstream changes nothing: the first copy stays trusted.
    upstream.hashless.discard(wheel.filename)
    refresh_page(client, index, "swapped")
    (entry,) = page_files(client, index, "swapped").values()
    assert entry["hashes"] == {"sha256": wheel.sha256} and str(entry["url"]) == url
    refused = client.get(url)
    assert refused.status_code == 502 and TOFU_REFUSAL in refused.text

    # When the upstream serves the first bytes again, they are cached and served again.
    del upstream.replaced[wheel.filename]
    assert client.get(url).content == wheel.data
    assert client.get(url).content == wheel.data
    assert upstream.count(f"/files/{wheel.filename}") == 4
    assert hashlib.sha256(other).hexdigest() not in blob_names(server)


def test_a_cached_file_is_not_swapped_by_an_upstream_declaring_another_hash(
    client: httpx.Client, server: ServerProcess, upstream: Upstream, tmp_path: Path
) -> None:
    wheel = upstream.publish(build_wheel(tmp_path, "redeclared", "1.0"))
    index = create_mirror(client, "redeclare", upstream.simple_url, expiry=3600)
    (entry,) = page_files(client, index, "redeclared").values()
    url = str(entry["url"])
    assert client.get(url).content == wheel.data  # cached

    # The upstream swaps the file under the same name and declares the new bytes' hash.
    other = tamper(wheel.data)
    upstream.replaced[wheel.filename] = other
    refresh_page(client, index, "redeclared")
    (entry,) = page_files(client, index, "redeclared").values()
    assert entry["hashes"] == {"sha256": wheel.sha256} and str(entry["url"]) == url
    assert client.get(url).content == wheel.data
    assert hashlib.sha256(other).hexdigest() not in blob_names(server)
    assert upstream.count(f"/files/{wheel.filename}") == 1


# --- item 6: the file name is the URL's, not the link text's ---------------------------------


def test_a_file_is_named_by_its_url_not_by_the_link_text(
    client: httpx.Client, server: ServerProcess, upstream: Upstream, tmp_path: Path
) -> None:
    upstream.html_only = True
    local = upstream.publish(build_wheel(tmp_path, "named", "1.0+local"))
    plain = upstream.publish(build_wheel(tmp_path, "named", "2.0"))
    # Percent-encoded in the URL (`+` as %2B), and a link text naming another file.
    upstream.url_names[local.filename] = local.filename.replace("+", "%2B")
    upstream.link_texts[local.filename] = local.filename.replace("+", "%2B")
    upstream.link_texts[plain.filename] = "named-9.9-py3-none-any.whl"
    # A URL whose decoded name would leave its directory is no file name at all.
    hostile = upstream.publish(build_wheel(tmp_path, "named", "3.0"))
    upstream.url_names[hostile.filename] = f"..%2F..%2F{hostile.filename}"
    index = create_mirror(client, "by-url", upstream.simple_url, expiry=3600)

    files = page_files(client, index, "named")
    assert sorted(files) == sorted([local.filename, plain.filename])
    html = simple_html(client, index, "named")
    assert "9.9" not in html and "%2B" not in html and hostile.filename not in html
    for published in (local, plain):
        assert client.get(str(files[published.filename]["url"])).content == published.data
    python = pip_install(tmp_path, f"{server.url}{index}/+simple/", "named==1.0+local")
    assert installed(python)["named"] == "1.0+local"


# --- item 6: a project page with no files -----------------------------------------------------


@pytest.mark.parametrize("html_only", [False, True], ids=["json-upstream", "html-upstream"])
def test_an_upstream_project_without_files_is_an_empty_page_not_a_404(
    client: httpx.Client, upstream: Upstream, html_only: bool
) -> None:
    upstream.html_only = html_only
    upstream.empty_projects.add("nofiles")
    index = create_mirror(client, f"empty-{html_only}", upstream.simple_url, expiry=3600)

    page = client.get(f"{index}/+simple/nofiles/", headers=SIMPLE_JSON)
    assert page.status_code == 200, page.text
    assert page.json()["files"] == [] and page.json()["name"] == "nofiles"
    html = client.get(f"{index}/+simple/nofiles/", headers={"Accept": "text/html"})
    assert html.status_code == 200, html.text
    assert "<a " not in html.text
    # devpi's project JSON (what `devpi list NAME` reads): no versions, not "no project".
    listed = client.get(f"{index}/nofiles", headers=JSON)
    assert listed.status_code == 200, listed.text
    assert listed.json()["result"] == {}
    # A project the upstream does not have stays a 404, in both.
    assert client.get(f"{index}/+simple/nosuchproject/", headers=SIMPLE_JSON).status_code == 404
    assert client.get(f"{index}/nosuchproject", headers=JSON).status_code == 404


# --- the rule that keeps a trusted hash, as a table ---------------------------------------------

A, B = "a" * 64, "b" * 64
NAME = "demo-1.0-py3-none-any.whl"


def _link(sha256: str, trusted: bool) -> MirrorLink:
    return MirrorLink(NAME, "http://up.example/demo.whl", sha256, trusted_on_first_use=trusted)


def _cached(sha256: str, trusted: bool) -> FileRecord:
    directory = trusted_directory(NAME) if trusted else None
    return FileRecord(
        id=1, index_id=1, project="demo", version="1.0", filename=NAME, kind="releasefile",
        sha256=sha256, size=1, uploaded_at=0.0, yanked=None, metadata_sha256=None,
        requires_python=None, for_file=None, log=[], dir_sha256=directory,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fresh", "stored", "cached", "kept"),
    [
        # hash-less, never fetched: stays unknown, to be trusted on first use
        (_link("", True), [], [], _link("", True)),
        # hash-less, first download recorded on the stored page: that hash stays
        (_link("", True), [_link(A, True)], [], _link(A, True)),
        # ... or known from the cached file (the page was lost, e.g. a 404 in between)
        (_link("", True), [], [_cached(A, True)], _link(A, True)),
        # the upstream now declares another hash for a trusted file: the trusted one stays
        (_link(B, False), [_link(A, True)], [], _link(A, True)),
        # the upstream drops a hash it once declared: the declared one stays, not "trusted"
        (_link("", True), [_link(A, False)], [], _link(A, False)),
        # a declared hash replaces a declared hash of a file never fetched (the upstream's word)
        (_link(B, False), [_link(A, False)], [], _link(B, False)),
        # ... but never the hash of a file already cached: a release never changes
        (_link(B, False), [_link(A, False)], [_cached(A, False)], _link(A, False)),
        (_link(B, False), [], [_cached(A, False)], _link(A, False)),
    ],
    ids=[
        "unknown",
        "recorded",
        "from-cache",
        "redeclared",
        "dropped-hash",
        "declared",
        "cached-stays",
        "cached-stays-page-lost",
    ],
)
def test_known_hashes_are_kept_for_links_without_one(
    fresh: MirrorLink, stored: list[MirrorLink], cached: list[FileRecord], kept: MirrorLink
) -> None:
    assert keep_known_hashes([fresh], stored, cached) == [kept]
    assert kept.relpath == _link(kept.sha256, kept.trusted_on_first_use).relpath
    if kept.trusted_on_first_use:  # one link before and after the first download
        assert kept.relpath == _link("", True).relpath
