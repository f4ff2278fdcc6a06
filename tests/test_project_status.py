"""Project status (PEP 792): archived, deprecated and quarantined hosted projects, and a
mirror passing its upstream's status through.

Pure rules are table-tested (core/status.py); the rest drives a real `packyard serve` on
loopback over HTTP, the real `packyard` client command and real pip in a fresh venv.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from packyard.core.simple import FileLink, ProjectPage
from packyard.core.status import (
    ACTIVE,
    ProjectStatus,
    ReleasePolicy,
    Status,
    from_upstream,
    parse_status,
    strictest,
)
from packyard.errors import InvalidInput
from tests.builders import build_wheel
from tests.conftest import (
    BIN,
    JSON,
    LOOPBACK_UPSTREAMS,
    ROOT_PASSWORD,
    ServerProcess,
    basic_auth,
    clean_env,
)
from tests.e2e_support import (
    PASSWORD,
    SIMPLE_JSON,
    create_index,
    create_user,
    print_log_if_failed,
    running_server,
    upload,
)
from tests.upstream import Upstream

ALICE = basic_auth("alice", PASSWORD)
ROOT = basic_auth("root", ROOT_PASSWORD)
REASON = "the maintainer token leaked; see the incident report"


# --- the pure rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "reason", "expected"),
    [
        ("quarantined", "why", ProjectStatus(Status.QUARANTINED, "why")),
        (" Archived ", None, ProjectStatus(Status.ARCHIVED, "")),
        ("active", "", ACTIVE),
    ],
)
def test_parse_status_accepts_pep_792_statuses(
    given: str, reason: str | None, expected: ProjectStatus
) -> None:
    assert parse_status(given, reason) == expected


@pytest.mark.parametrize(("given", "reason"), [("frozen", ""), (3, ""), ("archived", 5),
                                               ("archived", "x" * 1001)])  # fmt: skip
def test_parse_status_refuses_anything_else(given: object, reason: object) -> None:
    with pytest.raises(InvalidInput):
        parse_status(given, reason)


def test_unknown_upstream_status_counts_as_active() -> None:
    assert from_upstream({"status": "weird"}) == ACTIVE
    assert from_upstream({"status": "archived", "reason": 7}) == ProjectStatus(Status.ARCHIVED)
    assert from_upstream(None) == ACTIVE


def test_the_strictest_status_wins() -> None:
    found = [ProjectStatus(Status.DEPRECATED), ProjectStatus(Status.QUARANTINED, "x"), ACTIVE]
    assert strictest(found).status == Status.QUARANTINED
    assert strictest([]) == ACTIVE


def _page(*versions: str) -> ProjectPage:
    links = [
        FileLink(f"demo-{v}-py3-none-any.whl", f"u/i/+f/x/demo-{v}.whl", "a" * 64, 1, "u/i")
        for v in versions
    ]
    return ProjectPage("demo", "u/i", links, list(versions))


def test_a_quarantined_page_lists_no_files_and_says_why() -> None:
    policy = ReleasePolicy("demo", ProjectStatus(Status.QUARANTINED, "bad"))
    page = policy.page(_page("1.0", "2.0"))
    assert (page.files, page.versions) == ([], [])
    assert page.status == {"status": "quarantined", "reason": "bad"}
    assert policy.refusal("1.0") == "The project demo is quarantined: bad."


@pytest.mark.parametrize("status", [Status.DEPRECATED, Status.ARCHIVED])
def test_deprecated_and_archived_pages_keep_their_files(status: Status) -> None:
    policy = ReleasePolicy("demo", ProjectStatus(status))
    page = policy.page(_page("1.0"))
    assert [link.filename for link in page.files] == ["demo-1.0-py3-none-any.whl"]
    assert page.status == {"status": str(status)}
    assert policy.refusal("1.0") is None


# --- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("status"), LOOPBACK_UPSTREAMS) as started:
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        print_log_if_failed(request, request.getfixturevalue("server"))


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("wheels")
    return {
        f"{name}-{version}": build_wheel(directory, name, version)
        for name in ("quarry", "relic", "oldie", "upstreamed")
        for version in ("1.0", "2.0", "3.0")
    }


@pytest.fixture(scope="module")
def hosted(client: httpx.Client, wheels: dict[str, Path]) -> str:
    """alice/dev with quarry, relic and oldie 1.0 and 2.0; user bob, who owns nothing."""
    create_user(client, "alice")
    create_user(client, "bob")
    create_index(client, "alice", "dev")
    for name in ("quarry", "relic", "oldie"):
        for version in ("1.0", "2.0"):
            assert _upload(client, wheels[f"{name}-{version}"]).status_code == 200
    return "/alice/dev"


def _upload(client: httpx.Client, wheel: Path) -> httpx.Response:
    name, version = wheel.name.split("-")[:2]
    fields = {"name": name, "version": version}
    return upload(client, "/alice/dev", wheel.name, wheel.read_bytes(), ALICE, fields)


def _set(
    client: httpx.Client, path: str, status: str, reason: str = "", **auth: str
) -> httpx.Response:
    headers = JSON | (auth or ALICE)
    return client.patch(path, json={"status": status, "reason": reason}, headers=headers)


def _file_urls(client: httpx.Client, index: str, project: str) -> list[str]:
    page = client.get(f"{index}/{project}", headers=JSON).json()["result"]
    return [
        link["href"] for data in page.values() for link in data["+links"]
        if link["rel"] == "releasefile"
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pip_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pip") / "venv"
    subprocess.run([sys.executable, "-m", "venv", directory], check=True, timeout=120)
    return directory / "bin" / "python"


def pip_install(python: Path, index_url: str, *wanted: str) -> subprocess.CompletedProcess[str]:
    command = [str(python), "-m", "pip", "install", "--no-cache-dir", "--index-url", index_url]
    return subprocess.run(
        [*command, *wanted], capture_output=True, text=True, timeout=180, env=clean_env(),
        check=False,
    )  # fmt: skip


def test_a_quarantined_project_lists_nothing_and_serves_nothing(
    client: httpx.Client, hosted: str, pip_venv: Path, server: ServerProcess
) -> None:
    files = _file_urls(client, hosted, "quarry")
    assert len(files) == 2
    response = _set(client, f"{hosted}/quarry", "quarantined", REASON)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == {"status": "quarantined", "reason": REASON}

    page = client.get(f"{hosted}/+simple/quarry/", headers=SIMPLE_JSON).json()
    assert page["meta"]["api-version"] == "1.4"
    assert page["project-status"] == {"status": "quarantined", "reason": REASON}
    assert (page["files"], page["versions"]) == ([], [])
    page_html = client.get(f"{hosted}/+simple/quarry/", headers={"Accept": "text/html"}).text
    assert '<meta name="pypi:project-status" content="quarantined">' in page_html
    reason = html.escape(REASON)
    assert f'<meta name="pypi:project-status-reason" content="{reason}">' in page_html
    assert "quarry-1.0" not in page_html

    started = time.monotonic()
    for url in files:  # a lockfile's direct URLs
        refused = client.get(url)
        assert refused.status_code == 403
        assert REASON in refused.text
    assert time.monotonic() - started < 5

    by_name = pip_install(pip_venv, f"{server.url}{hosted}/+simple/", "quarry")
    assert by_name.returncode != 0
    assert "from versions: none" in by_name.stderr
    by_url = pip_install(pip_venv, f"{server.url}{hosted}/+simple/", files[0])
    assert by_url.returncode != 0
    assert "403" in by_url.stderr and "quarantined" in by_url.stderr, by_url.stderr
    print(f"$ pip install quarry\n{by_name.stderr}\n$ pip install {files[0]}\n{by_url.stderr}")


def test_a_quarantined_or_archived_project_takes_no_upload(
    client: httpx.Client, hosted: str, wheels: dict[str, Path]
) -> None:
    assert _set(client, f"{hosted}/relic", "archived", "moved to relic2").status_code == 200
    refused = _upload(client, wheels["relic-3.0"])
    assert refused.status_code == 403
    assert "archived" in refused.text and "moved to relic2" in refused.text
    # Archived: still listed and served.
    page = client.get(f"{hosted}/+simple/relic/", headers=SIMPLE_JSON).json()
    assert page["project-status"] == {"status": "archived", "reason": "moved to relic2"}
    assert len(page["files"]) == 2
    assert client.get(_file_urls(client, hosted, "relic")[0]).status_code == 200

    _set(client, f"{hosted}/quarry", "quarantined", REASON)
    refused = _upload(client, wheels["quarry-3.0"])
    assert refused.status_code == 403 and "quarantined" in refused.text
    versions = client.get(f"{hosted}/quarry", headers=JSON).json()["result"]
    assert set(versions) == {"1.0", "2.0"}  # nothing stored


def test_deprecated_is_listed_and_marked_and_active_clears_it(
    client: httpx.Client, hosted: str, wheels: dict[str, Path]
) -> None:
    assert _set(client, f"{hosted}/oldie", "deprecated", "use newie").status_code == 200
    page = client.get(f"{hosted}/+simple/oldie/", headers=SIMPLE_JSON).json()
    assert page["project-status"] == {"status": "deprecated", "reason": "use newie"}
    assert len(page["files"]) == 2
    assert _upload(client, wheels["oldie-3.0"]).status_code == 200
    assert _set(client, f"{hosted}/oldie", "active").status_code == 200
    page = client.get(f"{hosted}/+simple/oldie/", headers=SIMPLE_JSON).json()
    assert page["project-status"] == {"status": "active"}


def test_only_the_owner_or_root_sets_a_status(client: httpx.Client, hosted: str) -> None:
    bob = basic_auth("bob", PASSWORD)
    assert _set(client, f"{hosted}/oldie", "quarantined", **bob).status_code == 403
    anonymous = client.patch(f"{hosted}/oldie", json={"status": "archived"}, headers=JSON)
    assert anonymous.status_code == 401
    bad = _set(client, f"{hosted}/oldie", "frozen")
    assert bad.status_code == 400 and "status must be one of" in bad.json()["message"]
    assert _set(client, f"{hosted}/nosuch", "archived").status_code == 404
    page = client.get(f"{hosted}/+simple/oldie/", headers=SIMPLE_JSON).json()
    assert page["project-status"] == {"status": "active"}
    assert _set(client, f"{hosted}/oldie", "deprecated", "root says", **ROOT).status_code == 200
    _set(client, f"{hosted}/oldie", "active")


def test_every_status_change_is_in_the_audit_trail(client: httpx.Client, hosted: str) -> None:
    _set(client, f"{hosted}/oldie", "deprecated", "audited")
    entries = client.get("/+audit", headers=JSON | ROOT, params={"limit": "50"}).json()["result"]
    changes = [e for e in entries if e["action"] == "project.status"]
    assert changes and changes[0]["user"] == "alice" and changes[0]["project"] == "oldie"
    assert changes[0]["detail"]["reason"] == "audited"
    _set(client, f"{hosted}/oldie", "active")


def test_the_client_command_sets_a_status_and_list_shows_it(
    client: httpx.Client, hosted: str, server: ServerProcess, tmp_path: Path
) -> None:
    env = clean_env() | {
        "PACKYARD_CLIENTDIR": str(tmp_path / "client"), "PACKYARD_URL": server.url,
        "PACKYARD_USER": "alice", "PACKYARD_PASSWORD": PASSWORD, "NO_COLOR": "1",
        "COLUMNS": "200",
    }  # fmt: skip

    def packyard(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "packyard"), *words], env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip

    done = packyard("project-status", "alice/dev/relic", "quarantined", "--reason", "by cli")
    assert done.returncode == 0, done.stderr
    page = client.get(f"{hosted}/+simple/relic/", headers=SIMPLE_JSON).json()
    assert page["project-status"] == {"status": "quarantined", "reason": "by cli"}
    listed = packyard("list", "relic", "--index", "alice/dev")
    assert listed.returncode == 0, listed.stderr
    assert "refused: The project relic is quarantined: by cli" in re.sub(r"\s+", " ", listed.stdout)
    print(f"$ packyard list relic\n{listed.stdout}")
    ui = client.get(f"{hosted}/relic", headers={"Accept": "text/html"}).text
    assert "quarantined" in ui and "by cli" in ui
    assert packyard("project-status", "alice/dev/relic", "archived").returncode == 0


def test_a_mirror_passes_its_upstreams_status_through(
    client: httpx.Client, wheels: dict[str, Path]
) -> None:
    upstream = Upstream()
    for version in ("1.0", "2.0"):
        upstream.publish(wheels[f"upstreamed-{version}"])
    upstream.project_statuses["upstreamed"] = {"status": "quarantined", "reason": "malware"}
    upstream.start()
    try:
        for name, html_only in (("up-json", False), ("up-html", True)):
            upstream.html_only = html_only
            config = {"type": "mirror", "mirror_url": upstream.simple_url}
            created = client.put(f"/root/{name}", json=config, headers=JSON | ROOT)
            assert created.status_code == 200, created.text
            page = client.get(f"/root/{name}/+simple/upstreamed/", headers=SIMPLE_JSON).json()
            assert page["project-status"] == {"status": "quarantined", "reason": "malware"}
            assert page["files"] == []
            listed = client.get(f"/root/{name}/upstreamed", headers=JSON).json()["result"]
            href = listed["1.0"]["+links"][0]["href"]
            refused = client.get(href)
            assert refused.status_code == 403 and "malware" in refused.text
        # Setting a status on a mirror is refused: it passes its upstream's through.
        assert _set(client, "/root/up-json/upstreamed", "active", **ROOT).status_code == 403
    finally:
        upstream.stop()
