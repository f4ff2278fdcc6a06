"""Mirror cooldowns, `mirror_exclude_newer` and exemptions (issue 18, part 1).

Pure rules first (core/cooldown.py), then the policy through the app in process with an
injected clock (time moves, nothing sleeps; upstream requests are counted), then the real
server process driven by pip, uv and the packyard client against a loopback upstream serving
`calm` 1.0 (uploaded 30 days ago) and 2.0 (uploaded an hour ago).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from packyard.config import Settings
from packyard.core.cooldown import (
    CooldownPolicy,
    Exemption,
    judge,
    moment_text,
    parse_duration,
    parse_moment,
)
from packyard.errors import InvalidInput
from packyard.services import initialize, open_services
from packyard.web.app import create_app
from packyard.web.auth import SESSION_COOKIE
from tests.builders import build_wheel
from tests.conftest import (
    JSON,
    LOOPBACK_UPSTREAMS,
    ROOT_PASSWORD,
    ServerProcess,
    basic_auth,
    free_port,
    tool,
)
from tests.devpi_client import Devpi, devpi_executable  # noqa: F401 (a fixture)
from tests.e2e_support import run_tool
from tests.inprocess import (
    ENGINES,
    SIMPLE_JSON_ACCEPT,
    engine_url,
    password_hash,
    services_of,
)
from tests.packyard_cli import Packyard
from tests.upstream import Published, Upstream

ROOT_AUTH = basic_auth("root", ROOT_PASSWORD)
DAY = 86400.0
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# --- the pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800), ("12h", 43200), ("90m", 5400), ("45s", 45), ("3600", 3600), ("2w", 1209600)],
)
def test_durations_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "7 days", "-1d", "1.5d", "", "99999999d", True])
def test_nonsense_durations_are_refused_with_a_hint(text: object) -> None:
    with pytest.raises(InvalidInput, match="mirror_cooldown"):
        parse_duration(text)


def test_cutoffs_are_utc_dates_or_datetimes() -> None:
    assert parse_moment("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_moment("2026-11-01T12:30:00Z") == datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    assert parse_moment("2026-11-01T14:30+02:00") == datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="ISO date"):
        parse_moment("last tuesday")


def test_a_version_is_as_young_as_its_newest_file() -> None:
    policy = CooldownPolicy("root/pypi", cooldown=7 * 86400)
    old, young = T0 - timedelta(days=30), T0 - timedelta(hours=1)
    holds = judge(policy, {"1.0": [old], "2.0": [old, young]})
    held = holds.held_at(T0)
    assert list(held) == ["2.0"], "a late file holds its whole version back"
    until = young + timedelta(days=7)
    assert held["2.0"].until == until
    assert held["2.0"].reason == (
        f"held back by root/pypi's 7-day cooldown until {moment_text(until)}"
    )
    assert holds.changes_after(T0) == until
    assert holds.held_at(until) == {}


def test_exemptions_allow_a_version_or_a_project_until_they_expire() -> None:
    policy = CooldownPolicy("root/pypi", cooldown=7 * 86400)
    young = T0 - timedelta(hours=1)
    times = {"1.0": [young], "2.0": [young]}
    one = Exemption("calm", "2.0", "hotfix", expires=T0 + timedelta(hours=2))
    assert list(judge(policy, times, [one]).held_at(T0)) == ["1.0"]
    assert judge(policy, times, [one]).changes_after(T0) == T0 + timedelta(hours=2)
    assert list(judge(policy, times, [one]).held_at(T0 + timedelta(hours=3))) == ["1.0", "2.0"]
    every = Exemption("calm", None, "vetted")
    assert judge(policy, times, [every]).held_at(T0) == {}


def test_exclude_newer_and_unknown_upload_times() -> None:
    cutoff = T0 - timedelta(days=2)
    policy = CooldownPolicy("root/pypi", exclude_newer=cutoff)
    times = {"1.0": [T0 - timedelta(days=30)], "2.0": [T0 - timedelta(hours=1)], "3.0": [None]}
    held = judge(policy, times).held_at(T0)
    assert sorted(held) == ["2.0", "3.0"]
    assert held["2.0"].until is None and "mirror_exclude_newer" in held["2.0"].reason
    assert "no upload time" in held["3.0"].reason
    allowing = CooldownPolicy("root/pypi", exclude_newer=cutoff, hold_unknown=False)
    assert sorted(judge(allowing, times).held_at(T0)) == ["2.0"]
    assert judge(CooldownPolicy("root/pypi"), times).held_at(T0) == {}, "no policy, no holds"


# --- in process, with an injected clock ---------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def calm_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("dists")
    return {v: build_wheel(directory, "calm", v) for v in ("1.0", "2.0")}


@pytest.fixture
def upstream(calm_wheels: dict[str, Path]) -> Iterator[Upstream]:
    """`calm` 1.0 uploaded 30 days before T0, 2.0 one hour before."""
    started = Upstream()
    started.publish(calm_wheels["1.0"], upload_time=T0 - timedelta(days=30))
    started.publish(calm_wheels["2.0"], upload_time=T0 - timedelta(hours=1))
    started.start()
    yield started
    started.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture(params=ENGINES)
def app(tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    settings = Settings(
        serverdir=tmp_path / "server", storage=engine_url(request), log_requests=False,
        outbound_allowed_networks=("127.0.0.0/8",),
    )  # fmt: skip
    services = open_services(settings, clock=clock)
    initialize(services, root_pwhash=password_hash(ROOT_PASSWORD), root_pypi=False)
    with TestClient(create_app(services), base_url="http://testserver") as client:
        yield client
    services.close()


def make_mirror(client: TestClient, upstream: Upstream, **config: object) -> str:
    body = {
        "type": "mirror", "mirror_url": upstream.simple_url,
        "mirror_cache_expiry": 10**8, **config,
    }  # fmt: skip
    response = client.put("/root/up", json=body, headers=JSON | ROOT_AUTH)
    assert response.status_code == 200, response.text
    return "/root/up"


def page_versions(client: TestClient, index: str, project: str = "calm") -> list[str]:
    response = client.get(f"{index}/+simple/{project}/", headers=SIMPLE_JSON_ACCEPT)
    assert response.status_code == 200, response.text
    document = response.json()
    assert sorted({f["filename"].split("-")[1] for f in document["files"]}) == document["versions"]
    return list(document["versions"])


def test_index_settings_are_validated_and_normalised(app: TestClient, upstream: Upstream) -> None:
    index = make_mirror(app, upstream)
    for operation, shown in [
        (["mirror_cooldown=7d"], {"mirror_cooldown": 604800}),
        (["mirror_exclude_newer=2026-11-01"], {"mirror_exclude_newer": "2026-11-01T00:00Z"}),
        (["mirror_cooldown_unknown=allow"], {"mirror_cooldown_unknown": "allow"}),
    ]:
        response = app.patch(index, json=operation, headers=JSON | ROOT_AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["result"].items() >= shown.items()
    for nonsense, words in [
        ("mirror_cooldown=a week", "like 7d, 12h"),
        ("mirror_exclude_newer=yesterday", "ISO date"),
        ("mirror_cooldown_unknown=maybe", "hold or allow"),
    ]:
        response = app.patch(index, json=[nonsense], headers=JSON | ROOT_AUTH)
        assert response.status_code == 400, response.text
        assert words in response.json()["message"]
    response = app.put("/root/dev", json={"mirror_cooldown": "7d"}, headers=JSON | ROOT_AUTH)
    assert response.status_code == 400, "a stage inherits its mirrors' policy, it has none"


def test_moving_the_clock_releases_the_young_version_without_asking_the_upstream(
    app: TestClient, upstream: Upstream, clock: FakeClock
) -> None:
    index = make_mirror(app, upstream, mirror_cooldown="7d")
    stage = "/root/dev"
    response = app.put(stage, json={"bases": ["root/up"]}, headers=JSON | ROOT_AUTH)
    assert response.status_code == 200, response.text
    assert page_versions(app, index) == ["1.0"]
    assert page_versions(app, stage) == ["1.0"], "a stage inherits its mirror's holds"
    assert sorted(app.get(f"{index}/calm", headers=JSON).json()["result"]) == ["1.0"]
    html = app.get(f"{index}/+simple/calm/", headers={"Accept": "text/html"}).text
    assert "calm-1.0" in html and "calm-2.0" not in html
    fetched = upstream.count("/simple/calm/")
    clock.now += 7 * DAY - 3601  # one second before 2.0's cooldown ends
    assert page_versions(app, index) == ["1.0"]
    clock.now += 2
    assert page_versions(app, index) == ["1.0", "2.0"], "released by the clock alone"
    assert page_versions(app, stage) == ["1.0", "2.0"]
    assert sorted(app.get(f"{index}/calm", headers=JSON).json()["result"]) == ["1.0", "2.0"]
    assert upstream.count("/simple/calm/") == fetched, "no refetch"


def test_a_held_file_is_refused_saying_why_until_an_exemption_allows_it(
    app: TestClient, upstream: Upstream, clock: FakeClock
) -> None:
    index = make_mirror(app, upstream, mirror_cooldown="7d")
    assert page_versions(app, index) == ["1.0"]
    held = app.get(f"{index}/+held/calm", headers=JSON).json()["result"]
    until = "2026-12-08T11:00Z"
    assert held == {"2.0": {"reason": f"held back by root/up's 7-day cooldown until {until}",
                            "until": until}}  # fmt: skip
    young = upstream.files["calm-2.0-py3-none-any.whl"]
    relpath = f"+f/{young.sha256[:3]}/{young.sha256[3:16]}/{young.filename}"
    refused = app.get(f"{index}/{relpath}")
    assert refused.status_code == 403
    assert until in refused.text and "7-day cooldown" in refused.text
    assert app.get(f"{index}/{relpath}.metadata").status_code == 403
    assert upstream.count(f"/files/{young.filename}") == 0, "nothing fetched for it"

    expires = moment_text(T0 + timedelta(hours=2))
    body = {"project": "Calm", "version": "2.0", "reason": "INC-7 hotfix", "expires": expires}
    assert app.post(f"{index}/+exemptions", json=body, headers=JSON).status_code in (401, 403)
    made = app.post(f"{index}/+exemptions", json=body, headers=JSON | ROOT_AUTH)
    assert made.status_code == 201, made.text
    assert made.json()["result"]["project"] == "calm"
    assert page_versions(app, index) == ["1.0", "2.0"]
    assert app.get(f"{index}/{relpath}").content == young.data
    assert app.get(f"{index}/+exemptions", headers=JSON).status_code in (401, 403)
    listed = app.get(f"{index}/+exemptions", headers=JSON | ROOT_AUTH).json()["result"]
    assert [(e["version"], e["reason"], e["created_by"]) for e in listed] == [
        ("2.0", "INC-7 hotfix", "root")
    ]
    audit = app.get("/+audit", headers=JSON | ROOT_AUTH).json()["result"]
    recorded = [entry for entry in audit if entry["action"] == "exemption.add"]
    assert len(recorded) == 1 and recorded[0]["user"] == "root", audit
    assert "INC-7 hotfix" in str(recorded[0]), recorded

    clock.now += 3 * 3600  # the exemption expired
    assert page_versions(app, index) == ["1.0"]
    assert app.get(f"{index}/{relpath}").status_code == 403
    removed = app.delete(f"{index}/+exemptions/{made.json()['result']['id']}", headers=ROOT_AUTH)
    assert removed.status_code == 200, removed.text
    assert app.get(f"{index}/+exemptions", headers=JSON | ROOT_AUTH).json()["result"] == []


def test_exemptions_need_a_reason_and_a_mirror(app: TestClient, upstream: Upstream) -> None:
    index = make_mirror(app, upstream, mirror_cooldown="7d")
    for body, words in [
        ({"project": "calm"}, "needs a reason"),
        ({"project": "calm", "reason": "x", "version": "not a version"}, "not a valid version"),
        ({"project": "calm", "reason": "x", "expires": "never"}, "ISO date"),
    ]:
        response = app.post(f"{index}/+exemptions", json=body, headers=JSON | ROOT_AUTH)
        assert response.status_code == 400, response.text
        assert words in response.json()["message"]
    app.put("/root/dev", json={}, headers=JSON | ROOT_AUTH)
    body = {"project": "calm", "reason": "x"}
    response = app.post("/root/dev/+exemptions", json=body, headers=JSON | ROOT_AUTH)
    assert response.status_code == 400 and "not a mirror" in response.json()["message"]


def test_unknown_upload_times_are_held_unless_allowed(app: TestClient, upstream: Upstream) -> None:
    upstream.html_only = True  # PEP 503 HTML carries no upload time
    index = make_mirror(app, upstream, mirror_cooldown="7d")
    assert page_versions(app, index) == []
    held = app.get(f"{index}/+held/calm", headers=JSON).json()["result"]
    assert sorted(held) == ["1.0", "2.0"] and "no upload time" in held["1.0"]["reason"]
    response = app.patch(index, json=["mirror_cooldown_unknown=allow"], headers=JSON | ROOT_AUTH)
    assert response.status_code == 200
    assert page_versions(app, index) == ["1.0", "2.0"]


def test_status_counts_what_was_held_back(app: TestClient, upstream: Upstream) -> None:
    index = make_mirror(app, upstream, mirror_cooldown="7d")
    page_versions(app, index)
    young = upstream.files["calm-2.0-py3-none-any.whl"]
    app.get(f"{index}/+f/{young.sha256[:3]}/{young.sha256[3:16]}/{young.filename}")
    status = app.get("/+status", headers=JSON | ROOT_AUTH).json()["result"]
    assert status["held-back"]["root/up"] == {
        "projects-held": 1, "versions-held": 1, "files-refused": 1,
    }  # fmt: skip
    login = services_of(app).accounts.issue_token("root")
    app.cookies.set(SESSION_COOKIE, f"root:{login.token}")
    html = app.get("/+status", headers={"Accept": "text/html"}).text
    app.cookies.clear()
    assert "Held back by mirror cooldowns" in html and '<th scope="row">root/up</th>' in html


# --- the real server, pip, uv and the clients ------------------------------------------------


@pytest.fixture
def live_upstream(calm_wheels: dict[str, Path]) -> Iterator[Upstream]:
    """`calm` 1.0 uploaded 30 days ago, 2.0 an hour ago (by the real clock)."""
    now = datetime.now(UTC)
    started = Upstream()
    started.publish(calm_wheels["1.0"], upload_time=now - timedelta(days=30))
    started.publish(calm_wheels["2.0"], upload_time=now - timedelta(hours=1))
    started.start()
    yield started
    started.stop()


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    started = ServerProcess(tmp_path / "server", free_port(), tmp_path / "server.log")
    started.settings = dict(LOOPBACK_UPSTREAMS)
    started.start()
    yield started
    started.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- server log ---\n{started.log()}")


def install(installer: str, tmp_path: Path, index_url: str, *requirements: str) -> CompletedRun:
    """`pip install` or `uv pip install` into a fresh target directory, no cache."""
    target = tmp_path / f"target-{free_port()}"
    if installer == "pip":
        command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps"]
    else:
        command = [tool("uv"), "pip", "install", "--no-config", "--no-cache", "--no-deps"]
        command += ["--python", sys.executable]
    result = run_tool([*command, "--target", target, "--index-url", index_url, *requirements])
    return CompletedRun(result, sorted(p.name for p in target.glob("calm-*.dist-info")))


@dataclasses.dataclass(frozen=True)
class CompletedRun:
    result: subprocess.CompletedProcess[str]
    installed: list[str]  # the dist-info directories it left

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def file_url(server: ServerProcess, published: Published, index: str = "root/up") -> str:
    sha = published.sha256
    return f"{server.url}/{index}/+f/{sha[:3]}/{sha[3:16]}/{published.filename}"


def test_pip_and_uv_get_the_aged_version_and_an_exemption_lets_the_young_one_through(
    server: ServerProcess, live_upstream: Upstream, tmp_path: Path
) -> None:
    client = Packyard(tmp_path / "client")
    client.ok("use", server.url)
    client.ok("login", "root", "--password", ROOT_PASSWORD)
    config = ["type=mirror", f"mirror_url={live_upstream.simple_url}", "mirror_cache_expiry=3600"]
    client.ok("index", "-c", "root/up", *config)
    client.ok("use", "root/up")
    shown = client.ok("index", "root/up", "mirror_cooldown=7d")
    assert "mirror_cooldown" in shown and "604800" in shown
    index_url = f"{server.url}/root/up/+simple/"
    for installer in ("pip", "uv"):
        got = install(installer, tmp_path, index_url, "calm")
        assert got.result.returncode == 0, got.output
        assert got.installed == ["calm-1.0.dist-info"], got.output
        pinned = install(installer, tmp_path, index_url, "calm==2.0")
        assert pinned.result.returncode != 0 and pinned.installed == []
        says = {"pip": "(from versions: 1.0)", "uv": "there is no version of calm==2.0"}
        assert says[installer] in pinned.output, pinned.output

    young = live_upstream.files["calm-2.0-py3-none-any.whl"]
    refused = httpx.get(file_url(server, young), timeout=30)
    until = moment_text(young.upload_time + timedelta(days=7))
    assert refused.status_code == 403
    assert f"held back by root/up's 7-day cooldown until {until}" in refused.text
    by_url = install("pip", tmp_path, index_url, file_url(server, young))
    assert by_url.result.returncode != 0
    assert "held back by root/up's 7-day cooldown" in by_url.output, by_url.output
    listed = client.ok("list", "calm")
    assert "held back" in listed and "7-day cooldown" in listed, listed

    made = client.ok("exempt", "add", "calm==2.0", "--reason", "INC-7 hotfix", "--expires", "6s")
    assert "calm==2.0" in made and "INC-7 hotfix" in made
    pinned = install("pip", tmp_path, index_url, "calm==2.0")
    assert pinned.installed == ["calm-2.0.dist-info"], pinned.output
    assert "INC-7 hotfix" in client.ok("exempt", "list")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and httpx.get(file_url(server, young)).status_code == 200:
        time.sleep(0.5)  # the real clock: the exemption expires six seconds after it was made
    again = install("uv", tmp_path, index_url, "calm==2.0")
    assert again.result.returncode != 0 and again.installed == [], again.output


def test_the_devpi_client_sets_the_cooldown(
    server: ServerProcess, live_upstream: Upstream, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    devpi = Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "devpi")
    devpi.ok("use", server.url)
    devpi.ok("login", "root", "--password", ROOT_PASSWORD)
    devpi.ok("index", "-c", "up", "type=mirror", f"mirror_url={live_upstream.simple_url}")
    assert "mirror_cooldown=43200" in devpi.ok("index", "root/up", "mirror_cooldown=12h")
    assert "400" in devpi.fails("index", "root/up", "mirror_cooldown=someday")
    devpi.ok("use", "root/up")
    assert "calm-2.0" not in devpi.ok("list", "calm")


def test_uv_exclude_newer_agrees_with_mirror_exclude_newer(
    server: ServerProcess, live_upstream: Upstream, tmp_path: Path
) -> None:
    cutoff = moment_text(datetime.now(UTC) - timedelta(days=2))
    auth = basic_auth("root", ROOT_PASSWORD)
    config = {
        "type": "mirror", "mirror_url": live_upstream.simple_url,
        "mirror_exclude_newer": cutoff,
    }  # fmt: skip
    response = httpx.put(f"{server.url}/root/up", json=config, headers=JSON | auth)
    assert response.status_code == 200, response.text
    direct = install("uv", tmp_path, live_upstream.simple_url, "calm", "--exclude-newer", cutoff)
    through = install("uv", tmp_path, f"{server.url}/root/up/+simple/", "calm")
    assert direct.installed == through.installed == ["calm-1.0.dist-info"], (
        direct.output + through.output
    )


def test_the_web_pages_say_what_is_held_and_list_exemptions_for_the_owner(
    app: TestClient, upstream: Upstream
) -> None:
    index = make_mirror(app, upstream, mirror_cooldown="7d")
    page_versions(app, index)
    browser = {"Accept": "text/html"}
    project = app.get(f"{index}/calm", headers=browser)
    assert project.status_code == 200
    assert "held back by root/up&#39;s 7-day cooldown until 2026-12-08T11:00Z" in project.text
    version = app.get(f"{index}/calm/2.0", headers=browser)
    assert "Not served: held back by root/up&#39;s 7-day cooldown" in version.text
    body = {"project": "calm", "version": "2.0", "reason": "INC-7 hotfix"}
    assert app.post(f"{index}/+exemptions", json=body, headers=JSON | ROOT_AUTH).status_code == 201
    assert "INC-7 hotfix" not in app.get(index, headers=browser).text, "the owner's list only"
    login = services_of(app).accounts.issue_token("root")
    app.cookies.set(SESSION_COOKIE, f"root:{login.token}")
    assert "INC-7 hotfix" in app.get(index, headers=browser).text
    app.cookies.clear()
    assert "held back" not in app.get(f"{index}/calm", headers=browser).text
