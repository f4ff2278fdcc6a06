"""OSV advisories: an export zip built here in OSV's format, imported through the API, the
server command and a bundle; `MAL-` versions quarantined on hosted and mirror indexes alike;
known vulnerabilities shown and, past an index's severity threshold, refused; hostile zips
refused whole.

Pure rules are table-tested (core/advisories.py); the rest drives real `packyard serve`
processes on loopback, real pip in a fresh venv and the real `packyard` command.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.core.advisories import Advisory, Severity, affects, parse_record, refusal
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
MAL_HOSTED = "MAL-2026-1001"
MAL_MIRROR = "MAL-2026-1002"
GHSA = "GHSA-abcd-efgh-ijkl"


# --- OSV records, as OSV publishes them -------------------------------------------------------


def osv(
    advisory_id: str,
    name: str,
    versions: list[str] | None = None,
    events: list[dict[str, str]] | None = None,
    severity: str | None = None,
    summary: str = "",
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if versions is not None:
        affected["versions"] = versions
    if events is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    record: dict[str, Any] = {
        "schema_version": "1.6.0", "id": advisory_id, "modified": "2026-11-01T00:00:00Z",
        "summary": summary or f"{advisory_id} in {name}", "affected": [affected],
    }  # fmt: skip
    if severity:
        record["database_specific"] = {"severity": severity}
    return record


def export_zip(records: list[dict[str, Any]], extra: dict[str, bytes] | None = None) -> bytes:
    """OSV's export format: a zip of `<ID>.json` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


RECORDS = [
    osv(MAL_HOSTED, "Tainted", versions=["1.1"], summary="exfiltrates credentials"),
    osv(MAL_MIRROR, "mirrored", events=[{"introduced": "1.1"}, {"fixed": "1.2"}]),
    osv(GHSA, "tainted", events=[{"introduced": "0"}, {"fixed": "1.1"}], severity="HIGH",
        summary="path traversal"),
    osv("GHSA-gone-gone-gone", "tainted", versions=["1.0"]) | {"withdrawn": "2026-01-01"},
]  # fmt: skip


# --- the pure rules --------------------------------------------------------------------------


def _one(record: dict[str, Any]) -> Advisory:
    [advisory] = parse_record(record)
    return advisory


@pytest.mark.parametrize(
    ("events", "inside", "outside"),
    [
        ([{"introduced": "0"}, {"fixed": "1.1"}], ["0.1", "1.0", "1.1rc1"], ["1.1", "2.0"]),
        ([{"introduced": "1.1"}, {"fixed": "1.2"}], ["1.1", "1.1.5"], ["1.0", "1.2"]),
        ([{"introduced": "1.0"}, {"last_affected": "1.3"}], ["1.0", "1.3"], ["0.9", "1.3.1"]),
        ([{"introduced": "2.0"}], ["2.0", "9.9"], ["1.9"]),
    ],
)
def test_ecosystem_ranges(
    events: list[dict[str, str]], inside: list[str], outside: list[str]
) -> None:
    advisory = _one(osv("GHSA-x", "demo", events=events))
    assert [v for v in inside if affects(advisory, v)] == inside
    assert [v for v in outside if affects(advisory, v)] == []


def test_listed_versions_compare_as_versions() -> None:
    advisory = _one(osv("MAL-1", "Demo_Pkg", versions=["1.0"]))
    assert advisory.project == "demo-pkg" and advisory.malicious
    assert affects(advisory, "1.0.0") and not affects(advisory, "1.0.1")


def test_withdrawn_and_other_ecosystems_make_no_advisory() -> None:
    assert parse_record(RECORDS[3]) == []
    npm = osv("GHSA-n", "left-pad", versions=["1.0"])
    npm["affected"][0]["package"]["ecosystem"] = "npm"
    assert parse_record(npm) == []


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (osv("G-1", "d", ["1"], severity="CRITICAL"), Severity.CRITICAL),
        (osv("G-2", "d", ["1"], severity="moderate"), Severity.MODERATE),
        (osv("G-3", "d", ["1"]) | {"severity": [{"type": "CVSS_V3", "score": "7.5"}]},
         Severity.HIGH),
        (osv("G-4", "d", ["1"]) | {"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]},
         None),
    ],
)  # fmt: skip
def test_severity_from_the_database_or_a_cvss_score(
    record: dict[str, Any], expected: Severity | None
) -> None:
    assert _one(record).severity == expected


@pytest.mark.parametrize("record", [[], {"no": "id"}, {"id": "X", "affected": "nope"},
                                    osv("X", "d", events=[{"introduced": 1}])])  # fmt: skip
def test_malformed_records_are_refused(record: object) -> None:
    with pytest.raises(InvalidInput):
        parse_record(record)


def test_refusal_malicious_always_others_from_the_threshold() -> None:
    found = [a for record in RECORDS for a in parse_record(record)]
    assert MAL_HOSTED in (refusal(found, "tainted", "1.1", None) or "")
    assert refusal(found, "tainted", "1.0", None) is None
    assert GHSA in (refusal(found, "tainted", "1.0", Severity.HIGH) or "")
    assert refusal(found, "tainted", "1.0", Severity.CRITICAL) is None


# --- real servers ---------------------------------------------------------------------------------

SMALL_LIMITS = {"advisories_max_records": "20", "advisories_max_record_size": "4096"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("wheels")
    return {
        f"{name}-{version}": build_wheel(directory, name, version)
        for name in ("tainted", "mirrored")
        for version in ("1.0", "1.1")
    }


@pytest.fixture(scope="module")
def upstream(wheels: dict[str, Path]) -> Iterator[Upstream]:
    started = Upstream()
    for version in ("1.0", "1.1"):
        started.publish(wheels[f"mirrored-{version}"])
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = LOOPBACK_UPSTREAMS | SMALL_LIMITS
    with running_server(tmp_path_factory.mktemp("advisories"), settings) as started:
        yield started


@pytest.fixture(autouse=True)
def _server_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("server", "offline"):
        if name in request.fixturenames:
            print_log_if_failed(request, request.getfixturevalue(name))


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _upload(client: httpx.Client, index: str, wheel: Path) -> httpx.Response:
    name, version = wheel.name.split("-")[:2]
    fields = {"name": name, "version": version}
    return upload(client, index, wheel.name, wheel.read_bytes(), ALICE, fields)


@pytest.fixture(scope="module")
def indexes(client: httpx.Client, upstream: Upstream, wheels: dict[str, Path]) -> None:
    """alice/dev hosts tainted 1.0 and 1.1; alice/strict (bases alice/dev) blocks HIGH;
    root/up mirrors the loopback upstream (mirrored 1.0 and 1.1). All before the import."""
    create_user(client, "alice")
    create_index(client, "alice", "dev")
    create_index(client, "alice", "strict", bases=["alice/dev"], advisories_block_severity="high")
    for version in ("1.0", "1.1"):
        assert _upload(client, "/alice/dev", wheels[f"tainted-{version}"]).status_code == 200
    config = {"type": "mirror", "mirror_url": upstream.simple_url}
    assert client.put("/root/up", json=config, headers=JSON | ROOT).status_code == 200


def _import(client: httpx.Client, data: bytes, auth: dict[str, str] = ROOT) -> httpx.Response:
    headers = JSON | auth | {"Content-Type": "application/zip"}
    return client.post("/+advisories", content=data, headers=headers)


@pytest.fixture(scope="module")
def imported(client: httpx.Client, indexes: None) -> dict[str, Any]:
    response = _import(client, export_zip(RECORDS))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


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


def installed(python: Path, project: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({project!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _href(client: httpx.Client, index: str, project: str, version: str) -> str:
    versions = client.get(f"{index}/{project}", headers=JSON).json()["result"]
    return str(versions[version]["+links"][0]["href"])


def test_the_import_counts_what_it_stored(imported: dict[str, Any]) -> None:
    assert imported == {"records": 4, "advisories": 3, "malicious": 2}


@pytest.mark.parametrize(
    ("index", "project", "bad", "advisory"),
    [("/alice/dev", "tainted", "1.1", MAL_HOSTED), ("/root/up", "mirrored", "1.1", MAL_MIRROR)],
)
def test_a_malicious_version_cannot_be_installed_and_the_next_one_can(
    client: httpx.Client, imported: dict[str, Any], server: ServerProcess, pip_venv: Path,
    index: str, project: str, bad: str, advisory: str,
) -> None:  # fmt: skip
    page = client.get(f"{index}/+simple/{project}/", headers=SIMPLE_JSON).json()
    assert page["versions"] == ["1.0"]
    assert [f["filename"] for f in page["files"]] == [f"{project}-1.0-py3-none-any.whl"]

    started = time.monotonic()
    refused = client.get(_href(client, index, project, bad))
    assert refused.status_code == 403 and advisory in refused.text
    assert time.monotonic() - started < 5

    simple = f"{server.url}{index}/+simple/"
    pinned = pip_install(pip_venv, simple, f"{project}=={bad}")
    assert pinned.returncode != 0 and "from versions: 1.0" in pinned.stderr, pinned.stderr
    by_url = pip_install(pip_venv, simple, _href(client, index, project, bad))
    assert by_url.returncode != 0 and advisory in by_url.stderr, by_url.stderr
    print(f"$ pip install {project}=={bad}\n{pinned.stderr}\n$ pip install <url>\n{by_url.stderr}")
    done = pip_install(pip_venv, simple, project)
    assert done.returncode == 0, done.stderr
    assert installed(pip_venv, project) == "1.0"

    ui = client.get(f"{index}/{project}/{bad}", headers={"Accept": "text/html"}).text
    assert advisory in ui and "refused" in ui


def test_known_vulnerabilities_are_shown_and_refused_past_the_threshold(
    client: httpx.Client, imported: dict[str, Any]
) -> None:
    data = client.get("/alice/dev/tainted/1.0", headers=JSON).json()["result"]
    assert data["+advisories"] == [
        {"id": GHSA, "summary": "path traversal", "severity": "HIGH", "malicious": False}
    ]
    assert "+refused" not in data
    ui = client.get("/alice/dev/tainted/1.0", headers={"Accept": "text/html"}).text
    assert GHSA in ui and "path traversal" in ui
    # alice/strict refuses HIGH and above: nothing of tainted is left on its page.
    page = client.get("/alice/strict/+simple/tainted/", headers=SIMPLE_JSON).json()
    assert page["files"] == []
    strict = client.get("/alice/strict/tainted/1.0", headers=JSON).json()["result"]
    assert GHSA in strict["+refused"] and "HIGH" in strict["+refused"]
    bad = client.patch("/alice/strict", json=["advisories_block_severity=dire"],
                       headers=JSON | ALICE)  # fmt: skip
    assert bad.status_code == 400 and "unknown severity" in bad.json()["message"]


def test_a_malicious_version_takes_no_upload(
    client: httpx.Client, imported: dict[str, Any], wheels: dict[str, Path]
) -> None:
    create_index(client, "alice", "other")
    refused = _upload(client, "/alice/other", wheels["tainted-1.1"])
    assert refused.status_code == 403 and MAL_HOSTED in refused.text
    assert _upload(client, "/alice/other", wheels["tainted-1.0"]).status_code == 200


def test_the_status_page_counts_what_is_held_back(
    client: httpx.Client, imported: dict[str, Any]
) -> None:
    held = client.get("/+status", headers=JSON).json()["result"]["held-back"]
    assert held["advisories"] == 3 and held["malicious"] == 2


def _big_record() -> dict[str, Any]:
    return osv("GHSA-big", "tainted", versions=["1.0"], summary="x" * 300) | {"details": "y" * 5000}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (export_zip([osv(f"MAL-{n}", "tainted", ["1.0"]) for n in range(21)]), "too many members"),
        (export_zip([_big_record()]), "larger than 4096"),
        (export_zip([], {"MAL-bad.json": b"{not json"}), "is not JSON"),
        (export_zip([osv("MAL-x", "tainted", ["1.0"])], {"MAL-y.json": b"[1]"}),
         "not an OSV record"),
        (b"PK\x05\x06 not a zip at all", "not a readable zip"),
    ],
)  # fmt: skip
def test_a_hostile_zip_is_refused_whole(
    client: httpx.Client, imported: dict[str, Any], data: bytes, says: str
) -> None:
    before = client.get("/+status", headers=JSON).json()["result"]
    started = time.monotonic()
    response = _import(client, data)
    assert response.status_code == 400, response.text
    assert says in response.json()["message"]
    assert time.monotonic() - started < 5
    after = client.get("/+status", headers=JSON).json()["result"]
    assert after["held-back"] == before["held-back"] and after["serial"] == before["serial"]
    page = client.get("/alice/dev/+simple/tainted/", headers=SIMPLE_JSON).json()
    assert page["versions"] == ["1.0"]  # MAL-x was not imported


def test_only_root_imports(client: httpx.Client, imported: dict[str, Any]) -> None:
    assert _import(client, export_zip(RECORDS), ALICE).status_code == 403
    assert client.post("/+advisories", content=b"x", headers=JSON).status_code == 401


# --- through a bundle, into a closed network --------------------------------------------------


def _packyard(env: dict[str, str], *words: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "packyard"), *map(str, words)], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_a_bundle_carries_the_advisories_into_an_offline_server(
    tmp_path: Path, server_factory: Any, wheels: dict[str, Path], pip_venv: Path
) -> None:
    """Outside: a bundle of tainted 1.1 resolved from a loopback upstream, carrying the OSV
    export. Inside: an `--offline` server already holding tainted 1.0; `bundle push` imports
    the advisories first, so 1.1 is refused and only 1.0 installs."""
    source = Upstream()
    source.publish(wheels["tainted-1.1"])
    source.start()
    env = clean_env() | {
        "PACKYARD_CLIENTDIR": str(tmp_path / "client"), "UV_CACHE_DIR": str(tmp_path / "uv"),
        "NO_COLOR": "1",
    }  # fmt: skip
    (tmp_path / "requirements.txt").write_text("tainted==1.1\n")
    (tmp_path / "osv.zip").write_bytes(export_zip(RECORDS))
    try:
        created = _packyard(
            env, "bundle", "create", "-r", tmp_path / "requirements.txt",
            "--target", "manylinux2014_x86_64-cp311", "--index", source.simple_url,
            "-o", tmp_path / "bundle", "--advisories", tmp_path / "osv.zip",
        )  # fmt: skip
    finally:
        source.stop()
    assert created.returncode == 0, created.stdout + created.stderr
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["advisories"]["file"] == "advisories.zip"

    offline: ServerProcess = server_factory(name="closed")
    offline.start("--offline")
    with httpx.Client(base_url=offline.url, timeout=30) as http:
        create_user(http, "alice")
        create_index(http, "alice", "closed", acl_upload=["alice", "root"])
        assert _upload(http, "/alice/closed", wheels["tainted-1.0"]).status_code == 200
    inside = env | {"PACKYARD_URL": offline.url, "PACKYARD_USER": "root",
                    "PACKYARD_PASSWORD": ROOT_PASSWORD}  # fmt: skip
    pushed = _packyard(inside, "bundle", "push", tmp_path / "bundle", "alice/closed")
    print(f"$ packyard bundle push\n{pushed.stdout}{pushed.stderr}")
    assert "imported 3 advisories" in pushed.stdout
    assert pushed.returncode == 1 and MAL_HOSTED in pushed.stdout  # 1.1 refused, and said why

    simple = f"{offline.url}/alice/closed/+simple/"
    assert pip_install(pip_venv, simple, "tainted==1.1").returncode != 0
    done = pip_install(pip_venv, simple, "--force-reinstall", "tainted")
    assert done.returncode == 0, done.stderr
    assert installed(pip_venv, "tainted") == "1.0"
    data = httpx.get(f"{offline.url}/alice/closed/tainted/1.0", headers=JSON).json()["result"]
    assert data["+advisories"][0]["id"] == GHSA


def test_the_server_command_imports_on_the_server_dir(tmp_path: Path) -> None:
    """`packyard advisories import` on a stopped server's dir (no network needed)."""
    serverdir = tmp_path / "server"
    env = clean_env()
    init = _packyard(env, "init", "--serverdir", serverdir, "--no-root-pypi")
    assert init.returncode == 0, init.stderr
    (tmp_path / "osv.zip").write_bytes(export_zip(RECORDS))
    done = _packyard(env, "advisories", "import", "--serverdir", serverdir, tmp_path / "osv.zip")
    assert done.returncode == 0, done.stderr
    assert "imported 3 advisories (2 malicious) from 4 records" in done.stdout
    (tmp_path / "bad.zip").write_bytes(export_zip([], {"MAL-bad.json": b"{"}))
    bad = _packyard(env, "advisories", "import", "--serverdir", serverdir, tmp_path / "bad.zip")
    assert bad.returncode != 0 and "is not JSON" in bad.stderr
