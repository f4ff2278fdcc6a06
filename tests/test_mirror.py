"""End to end: packyard as a caching mirror of a real upstream index on loopback.

The upstream (tests/upstream.py) is a small app in a thread serving wheels built here; the
tests flip its switches (stopped, hanging, tampered, slow) and count what it was asked. The
mirror is the real `packyard serve`, driven by real pip and uv processes. One smoke test goes
through `root/pypi` to the real PyPI simple index.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.conftest import (
    BIN,
    JSON,
    LOOPBACK_UPSTREAMS,
    ROOT_PASSWORD,
    ServerProcess,
    basic_auth,
    clean_env,
    free_port,
    tool,
)
from tests.e2e_support import (
    assert_succeeded,
    blob_files,
    print_log_if_failed,
    run_tool,
    temp_files,
    upload,
)
from tests.upstream import Published, Upstream, tamper

pytestmark = pytest.mark.e2e

ROOT_AUTH = basic_auth("root", ROOT_PASSWORD)
SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
# packyard's own wait for an upstream (setting `mirror_timeout`), low so failures come fast.
MIRROR_TIMEOUT = 2
# pip's default network timeout (`--timeout`), which a hanging upstream must stay well within.
PIP_TIMEOUT = 15


def large_payload(seed: int) -> str:
    """Module source that makes a wheel larger than packyard's hold-back window (64 KiB), so
    part of a download streams before its hash is known."""
    return f"DATA = {random.Random(seed).randbytes(300_000).hex()!r}\n"


# --- fixtures ---------------------------------------------------------------------------------


@contextmanager
def packyard(directory: Path) -> Iterator[ServerProcess]:
    """A started `packyard serve` with a short upstream timeout; stopped on exit."""
    server = ServerProcess(directory / "server", free_port(), directory / "server.log")
    server.settings = dict(LOOPBACK_UPSTREAMS)
    server.serverdir.mkdir(parents=True)
    (server.serverdir / "packyard.toml").write_text(f"mirror_timeout = {MIRROR_TIMEOUT}\n")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with packyard(tmp_path_factory.mktemp("mirror")) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels by `name-version`; alpha 2.0 depends on beta."""
    directory = tmp_path_factory.mktemp("dists")
    return {
        "alpha-1.0": build_wheel(directory, "alpha", "1.0"),
        "alpha-2.0": build_wheel(directory, "alpha", "2.0", requires=["beta>=1"]),
        "alpha-3.0": build_wheel(directory, "alpha", "3.0"),
        "beta-1.0": build_wheel(directory, "beta", "1.0"),
        "gamma-1.0": build_wheel(directory, "gamma", "1.0"),
        "tiny-1.0": build_wheel(directory, "tiny", "1.0"),
        "large-1.0": build_wheel(directory, "large", "1.0", payload=large_payload(1)),
        "bulk-1.0": build_wheel(directory, "bulk", "1.0", payload=large_payload(2)),
        "shared-1.0": build_wheel(directory, "shared", "1.0"),
        "shared-5.0": build_wheel(directory, "shared", "5.0"),
        "private-1.0": build_wheel(directory, "private", "1.0"),
    }


@pytest.fixture
def upstream(dists: dict[str, Path]) -> Iterator[Upstream]:
    """A started upstream serving alpha 1.0 and 2.0, beta 1.0 and gamma 1.0."""
    started = Upstream()
    for key in ("alpha-1.0", "alpha-2.0", "beta-1.0", "gamma-1.0"):
        started.publish(dists[key])
    started.start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        print_log_if_failed(request, request.getfixturevalue("server"))


# --- helpers ----------------------------------------------------------------------------------


def create_mirror(client: httpx.Client, name: str, upstream_url: str, expiry: int = 1) -> str:
    """Index root/NAME mirroring `upstream_url`; returns its path."""
    config = {"type": "mirror", "mirror_url": upstream_url, "mirror_cache_expiry": expiry}
    response = client.put(f"/root/{name}", json=config, headers=JSON | ROOT_AUTH)
    assert response.status_code == 200, response.text
    return f"/root/{name}"


def create_stage(client: httpx.Client, name: str, **config: object) -> str:
    response = client.put(f"/root/{name}", json=config, headers=JSON | ROOT_AUTH)
    assert response.status_code == 200, response.text
    return f"/root/{name}"


def upload_wheel(client: httpx.Client, index: str, wheel: Path) -> None:
    name, version = wheel.name.split("-")[:2]
    fields = {"name": name, "version": version}
    response = upload(client, index, wheel.name, wheel.read_bytes(), ROOT_AUTH, fields)
    assert response.status_code == 200, response.text


def project_json(client: httpx.Client, index: str, project: str) -> dict[str, object]:
    response = client.get(f"{index}/+simple/{project}/", headers=SIMPLE_JSON)
    assert response.status_code == 200, response.text
    page: dict[str, object] = response.json()
    return page


def page_files(client: httpx.Client, index: str, project: str) -> dict[str, dict[str, object]]:
    """filename -> the PEP 691 file entry, with `url` made absolute."""
    response = client.get(f"{index}/+simple/{project}/", headers=SIMPLE_JSON)
    assert response.status_code == 200, response.text
    files: dict[str, dict[str, object]] = {}
    for entry in response.json()["files"]:
        entry["url"] = str(response.url.join(entry["url"]))
        files[entry["filename"]] = entry
    return files


def file_url(client: httpx.Client, index: str, published: Published) -> str:
    return str(page_files(client, index, published.project)[published.filename]["url"])


def download(client: httpx.Client, url: str) -> str:
    """The sha256 of what the client received, or 'error' when it got no complete file."""
    try:
        response = client.get(url)
    except httpx.HTTPError:
        return "error"
    if response.status_code != 200:
        return "error"
    return hashlib.sha256(response.content).hexdigest()


def new_venv(directory: Path) -> Path:
    """A fresh, empty venv (no pip inside: pip runs from outside with --python); its python."""
    venv = Path(tempfile.mkdtemp(prefix="venv-", dir=directory))
    assert_succeeded(run_tool([sys.executable, "-m", "venv", "--without-pip", venv]))
    return venv / "bin" / "python"


def pip_install(directory: Path, index_url: str, *requirements: str) -> Path:
    """`pip install` into a fresh venv, without pip's cache; returns the venv's python."""
    python = new_venv(directory)
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir"]
    assert_succeeded(run_tool([*command, "--index-url", index_url, *requirements]))
    return python


def uv_install(directory: Path, index_url: str, *requirements: str) -> Path:
    """`uv pip install` into a fresh venv, without uv's cache; returns the venv's python."""
    python = new_venv(directory)
    command = [tool("uv"), "pip", "install", "--no-config", "--no-cache", "--python", str(python)]
    assert_succeeded(run_tool([*command, "--index-url", index_url, *requirements]))
    return python


def installed(python: Path) -> dict[str, str]:
    """name -> version of every distribution in the venv."""
    code = (
        "import importlib.metadata as m\n"
        "for d in m.distributions(): print(d.metadata['Name'], d.version)"
    )
    result = run_tool([python, "-c", code])
    assert_succeeded(result)
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def blob_names(server: ServerProcess) -> set[str]:
    return {path.name for path in blob_files(server)}


# --- 1, 2: fill the cache, then install with the upstream gone ---------------------------------


def test_pip_and_uv_fill_the_cache_then_install_without_the_upstream_across_a_restart(
    tmp_path: Path, upstream: Upstream, dists: dict[str, Path]
) -> None:
    with packyard(tmp_path / "own") as own:
        try:
            with httpx.Client(base_url=own.url, timeout=30) as http:
                index = create_mirror(http, "up", upstream.simple_url)
            index_url = f"{own.url}{index}/+simple/"
            expected = {"alpha": "2.0", "beta": "1.0", "gamma": "1.0"}

            python = pip_install(tmp_path, index_url, "alpha")
            assert installed(python) == {"alpha": "2.0", "beta": "1.0"}
            python = uv_install(tmp_path, index_url, "gamma")
            assert installed(python) == {"gamma": "1.0"}
            keys = ("alpha-2.0", "beta-1.0", "gamma-1.0")
            fetched = [upstream.files[dists[key].name] for key in keys]
            for published in fetched:
                assert upstream.count(f"/files/{published.filename}") == 1, published.filename
            assert {published.sha256 for published in fetched} <= blob_names(own)

            upstream.stop()
            with httpx.Client(base_url=own.url, timeout=30) as http:
                never = http.get(f"{index}/+simple/never-fetched/", headers=SIMPLE_JSON)
                assert never.status_code == 502, never.text
            time.sleep(1.2)  # past mirror_cache_expiry: every page is stale and revalidated
            assert installed(pip_install(tmp_path, index_url, "alpha", "gamma")) == expected
            assert installed(uv_install(tmp_path, index_url, "alpha", "gamma")) == expected

            own.stop()
            own.start()
            assert installed(pip_install(tmp_path, index_url, "alpha", "gamma")) == expected
            assert installed(uv_install(tmp_path, index_url, "alpha", "gamma")) == expected
        except BaseException:
            print(f"--- server log ---\n{own.log()}")
            raise


# --- 3: an upstream that accepts connections and never answers --------------------------------


def test_hanging_upstream_cached_projects_install_quickly_and_unknown_ones_are_5xx(
    tmp_path: Path, server: ServerProcess, client: httpx.Client, upstream: Upstream
) -> None:
    index = create_mirror(client, "hang", upstream.simple_url)
    index_url = f"{server.url}{index}/+simple/"
    assert installed(pip_install(tmp_path, index_url, "alpha")) == {"alpha": "2.0", "beta": "1.0"}

    upstream.hanging = True
    time.sleep(1.2)  # past mirror_cache_expiry
    started = time.monotonic()
    response = client.get(f"{index}/+simple/alpha/", headers=SIMPLE_JSON, timeout=PIP_TIMEOUT)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 3, "a stale page must not wait for the upstream"
    assert upstream.count("/simple/alpha/") >= 2, "the stale page was revalidated"

    started = time.monotonic()
    assert installed(pip_install(tmp_path, index_url, "alpha")) == {"alpha": "2.0", "beta": "1.0"}
    assert time.monotonic() - started < PIP_TIMEOUT, "the whole install, within one timeout"

    started = time.monotonic()
    never = client.get(f"{index}/+simple/never-fetched/", headers=SIMPLE_JSON, timeout=30)
    assert 500 <= never.status_code < 600, never.text
    assert time.monotonic() - started < MIRROR_TIMEOUT + 3
    assert upstream.count("/simple/never-fetched/") == 1
    # Asked again at once, it fails without waiting for the upstream again.
    started = time.monotonic()
    again = client.get(f"{index}/+simple/never-fetched/", headers=SIMPLE_JSON, timeout=30)
    assert 500 <= again.status_code < 600, again.text
    assert time.monotonic() - started < MIRROR_TIMEOUT
    assert upstream.count("/simple/never-fetched/") == 1


def cached_files(client: httpx.Client, file_url: str) -> list[str]:
    """Names of the files the mirror that serves `file_url` holds locally."""
    index_url = file_url.split("/+f/", 1)[0]
    response = client.get(f"{index_url}/+cached", headers=JSON)
    assert response.status_code == 200, response.text
    return [entry["filename"] for entry in response.json()["result"]]


@pytest.mark.parametrize("failure", ["stopped", "hanging", "missing"])
def test_an_uncached_file_the_upstream_cannot_deliver_is_an_error_status_not_a_broken_200(
    client: httpx.Client, upstream: Upstream, failure: str
) -> None:
    index = create_mirror(client, f"undelivered-{failure}", upstream.simple_url, expiry=60)
    wheel = upstream.files["alpha-1.0-py3-none-any.whl"]
    url = file_url(client, index, wheel)  # the page is kept; the file was never fetched
    if failure == "stopped":
        upstream.stop()
    elif failure == "hanging":
        upstream.hanging = True
    else:
        del upstream.files[wheel.filename]

    started = time.monotonic()
    response = client.get(url)  # a 200 whose body breaks off raises RemoteProtocolError
    assert time.monotonic() - started < MIRROR_TIMEOUT + 3
    expected = {404} if failure == "missing" else set(range(500, 600))
    assert response.status_code in expected, response.text
    assert cached_files(client, url) == [], "nothing cached"


# --- 4: a tampered file -----------------------------------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "large"])
def test_tampered_file_is_an_error_nothing_is_cached_and_the_next_good_fetch_works(
    server: ServerProcess,
    client: httpx.Client,
    upstream: Upstream,
    dists: dict[str, Path],
    size: str,
) -> None:
    wheel = upstream.publish(dists[f"{size}-1.0"])
    index = create_mirror(client, f"tamper-{size}", upstream.simple_url, expiry=60)
    url = file_url(client, index, wheel)
    path = f"/files/{wheel.filename}"

    upstream.tampered.add(wheel.filename)
    if size == "tiny":  # held back whole until verified: refused before any byte
        assert client.get(url).status_code == 502
    else:  # part streamed before the hash is known: the transfer breaks off before the end
        assert download(client, url) == "error"
    assert upstream.count(path) == 1
    assert cached_files(client, url) == [], "no file record"
    tampered = hashlib.sha256(tamper(wheel.data)).hexdigest()
    assert not {wheel.sha256, tampered} & blob_names(server)
    assert temp_files(server) == []

    upstream.tampered.clear()
    assert download(client, url) == wheel.sha256
    assert upstream.count(path) == 2
    assert download(client, url) == wheel.sha256
    assert upstream.count(path) == 2, "the good file is served from the cache"
    assert wheel.sha256 in blob_names(server)


def test_tampered_core_metadata_is_an_error_and_is_not_kept(
    server: ServerProcess, client: httpx.Client, upstream: Upstream, dists: dict[str, Path]
) -> None:
    wheel = upstream.publish(dists["shared-5.0"])
    assert wheel.metadata is not None
    index = create_mirror(client, "tamper-metadata", upstream.simple_url, expiry=60)
    url = f"{file_url(client, index, wheel)}.metadata"

    upstream.tampered.add(f"{wheel.filename}.metadata")
    assert client.get(url).status_code == 502
    assert hashlib.sha256(tamper(wheel.metadata)).hexdigest() not in blob_names(server)

    upstream.tampered.clear()
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.content == wheel.metadata


# --- 5: one upstream request for many concurrent downloads ------------------------------------


def test_twenty_concurrent_downloads_of_one_uncached_file_make_one_upstream_request(
    client: httpx.Client, upstream: Upstream, dists: dict[str, Path]
) -> None:
    bulk = upstream.publish(dists["bulk-1.0"])
    index = create_mirror(client, "flight", upstream.simple_url, expiry=60)
    # The +f path of a mirror file follows from its sha256 (devpi-protocol.md §8.2); asked for
    # before its page was ever fetched, the page is fetched first, once for all.
    sha = bulk.sha256
    url = f"{client.base_url}{index}/+f/{sha[:3]}/{sha[3:16]}/{bulk.filename}"
    upstream.file_delay = 1.0  # every request arrives while the one download is under way

    async def download_all() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as http:

            async def one() -> str:
                response = await http.get(url)
                assert response.status_code == 200, response.text
                return hashlib.sha256(response.content).hexdigest()

            return await asyncio.gather(*(one() for _ in range(20)))

    assert asyncio.run(download_all()) == [bulk.sha256] * 20
    assert upstream.count(f"/files/{bulk.filename}") == 1
    assert upstream.count(f"/simple/{bulk.project}/") == 1


def test_concurrent_requests_for_a_never_fetched_page_make_one_upstream_request(
    client: httpx.Client, upstream: Upstream
) -> None:
    """Twenty requests at once, twenty times: requests that read the (empty) store while the
    one fetch lands must not start a second."""

    async def get_pages(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            responses = await asyncio.gather(*(http.get(url) for _ in range(20)))
        return [response.status_code for response in responses]

    fetches = []
    for attempt in range(20):
        index = create_mirror(client, f"pages-{attempt}", upstream.simple_url, expiry=60)
        before = upstream.count("/simple/gamma/")
        assert asyncio.run(get_pages(f"{client.base_url}{index}/+simple/gamma/")) == [200] * 20
        fetches.append(upstream.count("/simple/gamma/") - before)
    assert fetches == [1] * 20


def test_requests_arriving_while_a_download_lands_make_no_second_upstream_request(
    client: httpx.Client, upstream: Upstream
) -> None:
    """Twenty requests 2 ms apart, thirty times: some arrive just as the one download lands."""
    wheel = upstream.files["gamma-1.0-py3-none-any.whl"]
    path = f"/files/{wheel.filename}"
    urls = [
        file_url(client, create_mirror(client, f"landing-{n}", upstream.simple_url, 60), wheel)
        for n in range(30)
    ]

    async def download_each() -> list[int]:
        fetches = []
        async with httpx.AsyncClient(timeout=30) as http:

            async def one(url: str, delay: float) -> int:
                await asyncio.sleep(delay)
                return (await http.get(url)).status_code

            for url in urls:
                before = upstream.count(path)
                statuses = await asyncio.gather(*(one(url, n * 0.002) for n in range(20)))
                assert statuses == [200] * 20
                fetches.append(upstream.count(path) - before)
        return fetches

    fetches = asyncio.run(download_each())
    assert fetches == [1] * 30, " ".join(map(str, fetches))


# --- 6: a mirror of a packyard index ----------------------------------------------------------


def test_a_mirror_of_a_packyard_index_installs_mirrored_and_uploaded_projects(
    tmp_path: Path,
    server: ServerProcess,
    client: httpx.Client,
    upstream: Upstream,
    dists: dict[str, Path],
) -> None:
    mirror = create_mirror(client, "chain-up", upstream.simple_url)
    stage = create_stage(client, "chain-dev", bases=mirror.lstrip("/"))
    upload_wheel(client, stage, dists["private-1.0"])
    with packyard(tmp_path / "downstream") as downstream:
        try:
            with httpx.Client(base_url=downstream.url, timeout=30) as http:
                chained = create_mirror(http, "chain", f"{server.url}{stage}/+simple/")
                index_url = f"{downstream.url}{chained}/+simple/"
                python = pip_install(tmp_path, index_url, "alpha", "private")
                assert installed(python) == {"alpha": "2.0", "beta": "1.0", "private": "1.0"}
                files = page_files(http, chained, "alpha")
            assert {name for name in files} == {dists["alpha-1.0"].name, dists["alpha-2.0"].name}
            for name, entry in files.items():
                assert entry["hashes"] == {"sha256": upstream.files[name].sha256}
                assert "core-metadata" in entry
            assert upstream.count(f"/files/{dists['alpha-2.0'].name}") == 1

            # The chain keeps installing with the upstream gone.
            upstream.stop()
            python = uv_install(tmp_path, index_url, "alpha", "private")
            assert installed(python) == {"alpha": "2.0", "beta": "1.0", "private": "1.0"}
        except BaseException:
            print(f"--- downstream log ---\n{downstream.log()}")
            raise


# --- the mirror whitelist (devpi-protocol.md §6) ----------------------------------------------


def test_a_stage_project_hides_the_mirrors_files_of_that_name_unless_whitelisted(
    tmp_path: Path,
    server: ServerProcess,
    client: httpx.Client,
    upstream: Upstream,
    dists: dict[str, Path],
) -> None:
    upstream.publish(dists["shared-5.0"])
    mirror = create_mirror(client, "wl-up", upstream.simple_url)
    closed = create_stage(client, "wl-closed", bases=mirror.lstrip("/"))
    upload_wheel(client, closed, dists["shared-1.0"])
    opened = create_stage(client, "wl-open", bases=closed.lstrip("/"), mirror_whitelist=["Shared"])

    assert list(page_files(client, closed, "shared")) == [dists["shared-1.0"].name]
    assert upstream.count("/simple/shared/") == 0, "the mirror is not even asked"
    python = uv_install(tmp_path, f"{server.url}{closed}/+simple/", "shared")
    assert installed(python) == {"shared": "1.0"}
    # Projects the stages do not have still come from the mirror.
    assert set(page_files(client, closed, "gamma")) == {dists["gamma-1.0"].name}

    assert list(page_files(client, opened, "shared")) == [
        dists["shared-1.0"].name,
        dists["shared-5.0"].name,
    ]
    assert project_json(client, opened, "shared")["versions"] == ["1.0", "5.0"]
    python = uv_install(tmp_path, f"{server.url}{opened}/+simple/", "shared")
    assert installed(python) == {"shared": "5.0"}


# --- what the upstream says about files is carried through ------------------------------------


@pytest.mark.parametrize("html_only", [False, True], ids=["json-upstream", "html-upstream"])
def test_upstream_file_details_are_carried_to_the_json_page(
    client: httpx.Client, dists: dict[str, Path], html_only: bool
) -> None:
    upstream = Upstream()
    upstream.html_only = html_only
    moment = datetime(2023, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    old = upstream.publish(
        dists["alpha-1.0"], yanked="broken build", requires_python=">=3.8", upload_time=moment
    )
    plain = upstream.publish(dists["alpha-2.0"], yanked="")
    current = upstream.publish(dists["alpha-3.0"])
    upstream.start()
    try:
        name = "details-html" if html_only else "details-json"
        index = create_mirror(client, name, upstream.simple_url, expiry=60)
        page = project_json(client, index, "alpha")
        files = {str(entry["filename"]): entry for entry in page["files"]}  # type: ignore[attr-defined]
    finally:
        upstream.stop()

    assert page["versions"] == ["1.0", "2.0", "3.0"]
    assert files[old.filename]["yanked"] == "broken build"
    assert files[plain.filename]["yanked"] is True
    assert "yanked" not in files[current.filename]
    assert files[old.filename]["requires-python"] == ">=3.8"
    for published in (old, plain, current):
        entry = files[published.filename]
        assert entry["hashes"] == {"sha256": published.sha256}
        assert published.metadata is not None
        assert entry["core-metadata"] == {"sha256": hashlib.sha256(published.metadata).hexdigest()}
        if html_only:  # PEP 503 HTML has no size or upload time
            assert "upload-time" not in entry
        else:
            assert entry["size"] == len(published.data)
            assert _parse_time(entry["upload-time"]) == published.upload_time


def _parse_time(text: object) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


# --- revalidation -----------------------------------------------------------------------------


def test_a_stale_page_is_revalidated_with_if_none_match(
    client: httpx.Client, upstream: Upstream, dists: dict[str, Path]
) -> None:
    page_path = "/simple/alpha/"
    etag = httpx.get(f"{upstream.url}{page_path}", headers=SIMPLE_JSON).headers["etag"]
    index = create_mirror(client, "reval", upstream.simple_url, expiry=1)

    first = client.get(f"{index}/+simple/alpha/", headers=SIMPLE_JSON)
    assert first.status_code == 200, first.text
    time.sleep(1.2)
    second = client.get(f"{index}/+simple/alpha/", headers=SIMPLE_JSON)
    assert second.status_code == 200, second.text
    assert second.content == first.content
    assert upstream.if_none_match(page_path) == [None, None, etag]

    upstream.publish(dists["alpha-3.0"])
    time.sleep(1.2)
    assert dists["alpha-3.0"].name in page_files(client, index, "alpha")
    assert upstream.if_none_match(page_path) == [None, None, etag, etag]


# --- 7: root/pypi against the real PyPI -------------------------------------------------------


def test_root_pypi_downloads_small_packages_from_the_real_pypi(
    tmp_path: Path, server_factory: object
) -> None:
    from pip._internal.models.index import PyPI

    server: ServerProcess = server_factory()  # type: ignore[operator]
    serve_with_root_pypi(server)
    try:
        configured = subprocess.run(
            [sys.executable, "-c", "from packyard.services import pip_index_url as u; print(u())"],
            env=clean_env(), capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert configured == PyPI.simple_url
        with httpx.Client(base_url=server.url, timeout=60) as http:
            config = http.get("/root/pypi", headers=JSON).json()["result"]
            assert config["type"] == "mirror"
            assert config["mirror_url"] == configured

            index_url = f"{server.url}/root/pypi/+simple/"
            destination = tmp_path / "downloads"
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
            command += [
                "--only-binary",
                ":all:",
                "--dest",
                str(destination),
                "--index-url",
                index_url,
            ]
            assert_succeeded(run_tool([*command, "six", "idna", "packaging"], timeout=180))
            downloaded = sorted(destination.iterdir())
            assert [path.name.split("-")[0] for path in downloaded] == ["idna", "packaging", "six"]
            for path in downloaded:
                project = path.name.split("-")[0]
                entry = page_files(http, "/root/pypi", project)[path.name]
                assert entry["hashes"] == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
                assert "upload-time" in entry and "size" in entry
                assert http.get(str(entry["url"]), headers=JSON).status_code == 200, "cached"
    except BaseException:
        print(f"--- server log ---\n{server.log()}")
        raise


def serve_with_root_pypi(server: ServerProcess) -> None:
    """`packyard serve` without --no-root-pypi, in a clean environment (pip's default index)."""
    command = [
        str(BIN / "packyard"), "serve", "--serverdir", str(server.serverdir),
        "--port", str(server.port), "--root-passwd", ROOT_PASSWORD,
    ]  # fmt: skip
    with server.log_path.open("ab") as log:
        server.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=clean_env()
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/+api", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not come up:\n{server.log()}")


# --- dropping cached files -------------------------------------------------------------------


def test_dropping_cached_files_keeps_pages_and_fetches_again_on_demand(
    server: ServerProcess, client: httpx.Client, upstream: Upstream, tmp_path: Path
) -> None:
    # A wheel of its own: blobs are shared by content, and other tests cache gamma too.
    gamma = upstream.publish(build_wheel(tmp_path, "dropme", "1.0"))
    index = create_mirror(client, "dropping", upstream.simple_url, expiry=3600)
    url = file_url(client, index, gamma)
    assert download(client, url) == gamma.sha256
    assert cached_files(client, url) == [gamma.filename]

    unused = subprocess.run(
        [str(BIN / "packyard"), "drop-cache", "--serverdir", str(server.serverdir),
         index.strip("/"), "--unused-days", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unused.returncode == 0, unused.stderr
    assert "dropped 0 cached file(s)" in unused.stdout, "a file used today is kept"

    dropped = subprocess.run(
        [str(BIN / "packyard"), "drop-cache", "--serverdir", str(server.serverdir),
         index.strip("/"), "--project", "DropMe"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert dropped.returncode == 0, dropped.stderr
    assert f"dropped 1 cached file(s), {len(gamma.data)} bytes" in dropped.stdout
    assert cached_files(client, url) == []
    assert gamma.sha256 not in blob_names(server), "the blob left the disk"
    page = client.get(f"{index}/+simple/dropme/", headers=SIMPLE_JSON).json()
    assert [f["filename"] for f in page["files"]] == [gamma.filename], "the page stays"

    # Served again on demand (from the upstream, or a transfer verified moments ago).
    assert download(client, url) == gamma.sha256


def test_drop_cache_refuses_a_stage_index_with_a_clear_message(
    server: ServerProcess, client: httpx.Client
) -> None:
    stage = create_stage(client, "not-a-mirror")
    result = subprocess.run(
        [str(BIN / "packyard"), "drop-cache", "--serverdir", str(server.serverdir),
         stage.strip("/")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is not a mirror index" in result.stderr
    assert "Traceback" not in result.stderr


# --- an imported mirror is served like any cached one ------------------------------------------


def devpi_export_with_mirrored_files(directory: Path, wheels: list[Path]) -> Path:
    """A devpi-server export of `root/pypi` with mirrored files (devpi-protocol.md §13), as
    `devpi-export --include-mirrored-files` writes it; its upstream is long gone."""
    export = directory / "export"
    files, projects = [], {}
    for wheel in wheels:
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        project, version = wheel.name.split("-")[:2]
        relpath = f"root/pypi/+f/{sha[:3]}/{sha[3:16]}/{wheel.name}"
        (export / relpath).parent.mkdir(parents=True)
        (export / relpath).write_bytes(wheel.read_bytes())
        projects.setdefault(project, {})[version] = {"name": project, "version": version}
        mapping = {
            "last_modified": "Mon, 06 May 2024 07:08:09 GMT", "hash_spec": f"sha256={sha}",
            "hashes": {"sha256": sha}, "project": project, "version": version,
            "url": f"http://127.0.0.1:9/files/{wheel.name}",
        }  # fmt: skip
        files.append({"type": "releasefile", "projectname": project, "version": version,
                      "relpath": relpath, "entrymapping": mapping, "log": []})  # fmt: skip
    config = {"type": "mirror", "mirror_url": "http://127.0.0.1:9/simple/", "volatile": False}
    dataindex = {
        "dumpversion": "2", "pythonversion": [3, 11, 7], "devpi_server": "6.20.3",
        "users": {"root": {"username": "root", "created": "2024-05-06T07:08:09Z"}},
        "indexes": {"root/pypi": {"indexconfig": config, "projects": projects, "files": files}},
    }  # fmt: skip
    (export / "dataindex.json").write_text(json.dumps(dataindex))
    return export


def test_an_imported_mirror_installs_with_pip_from_an_offline_server(
    tmp_path: Path, dists: dict[str, Path]
) -> None:
    export = devpi_export_with_mirrored_files(tmp_path, [dists["alpha-2.0"], dists["beta-1.0"]])
    serverdir = tmp_path / "imported"
    imported = subprocess.run(
        [str(BIN / "packyard"), "import", "--serverdir", str(serverdir),
         "--root-passwd", ROOT_PASSWORD, str(export)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    server = ServerProcess(serverdir, free_port(), tmp_path / "imported.log")
    server.start("--offline")
    try:
        page = httpx.get(f"{server.url}/root/pypi/+simple/alpha/", headers=SIMPLE_JSON)
        assert page.status_code == 200, page.text
        python = pip_install(tmp_path, f"{server.url}/root/pypi/+simple/", "alpha")
        assert installed(python) == {"alpha": "2.0", "beta": "1.0"}
    except BaseException:
        print(f"--- server log ---\n{server.log()}")
        raise
    finally:
        server.stop()
