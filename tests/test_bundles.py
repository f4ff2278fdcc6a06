"""End to end: bundles for closed networks (`packyard bundle create|push`, `packyard check`).

A loopback upstream (tests/upstream.py) serves generated wheels with platform tags and
markers; the real `packyard` CLI resolves them with real uv and pip, and real `packyard serve`
processes (one of them `--offline`, with no mirror base) take the bundles in. What a closed
network needs is then proven with pip itself: `pip install --dry-run --report` for each
target's platform, against the offline index alone.

The upstream's projects:

- alpha 1.0 (pure) requires beta
- beta 1.0 has a Windows, a manylinux2014 and a macOS wheel, and requires
  `gamma; sys_platform == "win32"`
- gamma 1.0 has only Windows wheels, for CPython 3.11 and 3.12
- delta 1.0 exists only as a macOS wheel
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

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
from tests.e2e_support import PASSWORD, create_index, create_user, print_log_if_failed
from tests.upstream import Upstream

pytestmark = pytest.mark.e2e

WIN = "win_amd64-cp311"
LINUX = "manylinux2014_x86_64-cp311"
MAC = "macosx_11_0_arm64-cp311"
PIP_PLATFORM = {WIN: "win_amd64", LINUX: "manylinux2014_x86_64", MAC: "macosx_11_0_arm64"}

ALPHA = "alpha-1.0-py3-none-any.whl"
ALPHA_2 = "alpha-2.0-py3-none-any.whl"
BETA_WIN = "beta-1.0-py3-none-win_amd64.whl"
BETA_LINUX = "beta-1.0-py3-none-manylinux2014_x86_64.whl"
BETA_MAC = "beta-1.0-py3-none-macosx_11_0_arm64.whl"
GAMMA_311 = "gamma-1.0-cp311-cp311-win_amd64.whl"
GAMMA_312 = "gamma-1.0-cp312-cp312-win_amd64.whl"
DELTA = "delta-1.0-py3-none-macosx_11_0_arm64.whl"

EXPECTED = {WIN: {ALPHA, BETA_WIN, GAMMA_311}, LINUX: {ALPHA, BETA_LINUX}}
BOTH = ("--target", WIN, "--target", LINUX)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every wheel of the scenario by filename (alpha 2.0 is published by one test only)."""
    directory = tmp_path_factory.mktemp("wheels")
    beta_requires = ['gamma; sys_platform == "win32"']
    built = [
        build_wheel(directory, "alpha", "1.0", requires=["beta"]),
        build_wheel(directory, "alpha", "2.0", requires=["beta>=1"]),
        build_wheel(directory, "beta", "1.0", beta_requires, tag="py3-none-win_amd64"),
        build_wheel(directory, "beta", "1.0", beta_requires, tag="py3-none-manylinux2014_x86_64"),
        build_wheel(directory, "beta", "1.0", beta_requires, tag="py3-none-macosx_11_0_arm64"),
        build_wheel(directory, "gamma", "1.0", tag="cp311-cp311-win_amd64"),
        build_wheel(directory, "gamma", "1.0", tag="cp312-cp312-win_amd64"),
        build_wheel(directory, "delta", "1.0", tag="py3-none-macosx_11_0_arm64"),
    ]
    return {path.name: path for path in built}


@pytest.fixture(scope="module")
def requirements(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("requirements") / "requirements.txt"
    path.write_text("alpha\n")
    return path


class BundleUpstream(Upstream):
    """The mirror tests' upstream, plus one switch: `withheld` files are listed (with their
    PEP 658 metadata) but their bytes answer 404."""

    def __init__(self) -> None:
        super().__init__()
        self.withheld: set[str] = set()

    async def _file(self, request: Request) -> Response:
        if request.path_params["filename"] in self.withheld:
            return Response("gone", status_code=404)
        return await super()._file(request)


def started_upstream(wheels: dict[str, Path], *, with_alpha_2: bool = False) -> BundleUpstream:
    upstream = BundleUpstream()
    for name, path in wheels.items():
        if name != ALPHA_2 or with_alpha_2:
            upstream.publish(path)
    upstream.start()
    return upstream


@pytest.fixture
def upstream(wheels: dict[str, Path]) -> Iterator[BundleUpstream]:
    started = started_upstream(wheels)
    yield started
    started.stop()


@dataclass
class Cli:
    """The `packyard` command with an isolated client dir (and uv cache)."""

    env: dict[str, str]

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "packyard"), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def ok(self, *args: str | Path) -> str:
        result = self(*args)
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def login(self, server: ServerProcess, user: str = "alice") -> Cli:
        """The same CLI pointed at `server` as `user` through the CI variables."""
        extra = {"PACKYARD_URL": server.url, "PACKYARD_USER": user, "PACKYARD_PASSWORD": PASSWORD}
        return Cli(self.env | extra)


def make_cli(directory: Path) -> Cli:
    env = clean_env() | {
        "PACKYARD_CLIENTDIR": str(directory / "client"),
        "UV_CACHE_DIR": str(directory / "uv-cache"),
        "NO_COLOR": "1",
    }
    return Cli(env)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


@dataclass(frozen=True)
class Created:
    bundle: Path
    stdout: str


@pytest.fixture(scope="module")
def full_bundle(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path], requirements: Path
) -> Created:
    """A bundle of alpha for Windows and Linux, made while the upstream ran; it is stopped
    afterwards, so everything using this bundle works without it."""
    directory = tmp_path_factory.mktemp("full")
    upstream = started_upstream(wheels)
    try:
        stdout = make_cli(directory).ok(
            "bundle", "create", "-r", requirements, *BOTH,
            "--index", upstream.simple_url, "-o", directory / "bundle",
        )  # fmt: skip
    finally:
        upstream.stop()
    return Created(directory / "bundle", stdout)


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def closed_server(
    server_factory: ServerFactory, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """An `--offline` packyard with user alice and index alice/closed (no bases at all)."""
    server = server_factory(name="closed")
    server.start("--offline")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        create_user(http, "alice")
        create_index(http, "alice", "closed")
        assert http.get("/alice/closed", headers=JSON).json()["result"]["bases"] == []
    yield server
    print_log_if_failed(request, server)


# --- helpers ----------------------------------------------------------------------------------


def bundle_files(bundle: Path) -> set[str]:
    files = bundle / "files"
    return {path.name for path in files.iterdir()} if files.exists() else set()


def manifest(bundle: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((bundle / "manifest.json").read_text())
    return data


def target_files(bundle: Path) -> dict[str, set[str]]:
    targets = manifest(bundle)["targets"]
    assert isinstance(targets, dict)
    return {name: {entry["filename"] for entry in pins} for name, pins in targets.items()}


def file_requests(upstream: Upstream, names: set[str]) -> int:
    """How often the upstream was asked for these files' bytes (PEP 658 metadata not counted)."""
    return sum(upstream.count(f"/files/{name}") for name in names)


def target_pins(bundle: Path) -> dict[str, list[str]]:
    """NAME==VERSION of every file of each target, from the manifest."""
    targets = manifest(bundle)["targets"]
    assert isinstance(targets, dict)
    return {
        name: [f"{entry['name']}=={entry['version']}" for entry in pins]
        for name, pins in targets.items()
    }


def pip_would_install(tmp_path: Path, index_url: str, target: str, *requirements: str) -> set[str]:
    """The files real pip picks for `target` from `index_url` alone (installs nothing)."""
    report = tmp_path / f"report-{target}.json"
    command = [
        sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "install",
        "--dry-run", "--report", str(report), "--ignore-installed",
        "--target", str(tmp_path / f"target-{target}"), "--no-cache-dir",
        "--only-binary=:all:", "--platform", PIP_PLATFORM[target], "--python-version", "3.11",
        "--implementation", "cp", "--index-url", index_url, *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, env=clean_env(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{target}:\n{result.stdout}\n{result.stderr}"
    items = json.loads(report.read_text())["install"]
    return {item["download_info"]["url"].rsplit("/", 1)[-1] for item in items}


def index_links(server: ServerProcess, index: str, projects: list[str]) -> dict[str, str]:
    """filename -> sha256 of what `index` itself holds for these projects."""
    links = {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for project in projects:
            response = http.get(f"/{index}/{project}", headers=JSON)
            if response.status_code == 404:
                continue
            for version in response.json()["result"].values():
                for link in version["+links"]:
                    links[link["href"].rsplit("/", 1)[-1]] = link["hashes"]["sha256"]
    return links


def uploads(server: ServerProcess, at_least: int = 0) -> int:
    """Upload requests the server has logged (waiting a little for `at_least` of them: a
    request is logged as its response goes out)."""
    deadline = time.monotonic() + 5
    while True:
        count = sum(" POST /alice/closed/ " in line for line in server.log().splitlines())
        if count >= at_least or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- creating ---------------------------------------------------------------------------------


def test_bundle_for_two_targets_holds_exactly_each_targets_wheels(full_bundle: Created) -> None:
    assert bundle_files(full_bundle.bundle) == EXPECTED[WIN] | EXPECTED[LINUX]
    assert {BETA_MAC, GAMMA_312, DELTA}.isdisjoint(bundle_files(full_bundle.bundle))
    assert target_files(full_bundle.bundle) == EXPECTED
    files = manifest(full_bundle.bundle)["files"]
    assert isinstance(files, dict)
    assert set(files) == EXPECTED[WIN] | EXPECTED[LINUX]
    for name, entry in files.items():
        assert entry["sha256"] == sha256(full_bundle.bundle / "files" / name), name
    assert f"{WIN}: 3 files" in full_bundle.stdout
    assert f"{LINUX}: 2 files" in full_bundle.stdout


def test_a_target_without_a_wheel_is_reported_before_any_transfer(
    upstream: Upstream, cli: Cli, tmp_path: Path
) -> None:
    wanted = tmp_path / "with-delta.txt"
    wanted.write_text("alpha\ndelta\n")
    bundle = tmp_path / "bundle"
    result = cli(
        "bundle", "create", "-r", wanted, "--target", WIN, "--target", MAC,
        "--index", upstream.simple_url, "-o", bundle,
    )  # fmt: skip
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    assert f"{WIN}: cannot be satisfied (missing: delta)" in report
    assert f"{MAC}: cannot be satisfied" not in report
    assert "nothing was downloaded" in report
    assert bundle_files(bundle) == set()
    assert not (bundle / "manifest.json").exists()
    assert file_requests(upstream, set(upstream.files)) == 0


def test_creating_again_into_the_same_dir_downloads_nothing(
    upstream: Upstream, cli: Cli, requirements: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    create = ("bundle", "create", "-r", requirements, *BOTH, "--index", upstream.simple_url)
    cli.ok(*create, "-o", bundle)
    carried = EXPECTED[WIN] | EXPECTED[LINUX]
    assert file_requests(upstream, carried) == len(carried)
    first = {path.name: path.stat().st_mtime_ns for path in (bundle / "files").iterdir()}

    cli.ok(*create, "-o", bundle)
    assert file_requests(upstream, carried) == len(carried)
    assert {path.name: path.stat().st_mtime_ns for path in (bundle / "files").iterdir()} == first
    assert target_files(bundle) == EXPECTED

    # A damaged (say, half-written) file is fetched again, and only that one.
    damaged = bundle / "files" / BETA_WIN
    damaged.write_bytes(damaged.read_bytes()[:100])
    cli.ok(*create, "-o", bundle)
    assert file_requests(upstream, carried) == len(carried) + 1
    assert upstream.count(f"/files/{BETA_WIN}") == 2
    assert sha256(damaged) == upstream.files[BETA_WIN].sha256


def test_bytes_that_do_not_match_the_index_are_never_carried(
    upstream: BundleUpstream, cli: Cli, requirements: Path, tmp_path: Path
) -> None:
    upstream.tampered.add(BETA_LINUX)
    bundle = tmp_path / "bundle"
    create = ("bundle", "create", "-r", requirements, "--target", LINUX)
    result = cli(*create, "--index", upstream.simple_url, "-o", bundle)
    assert result.returncode != 0, result.stdout
    assert f"{BETA_LINUX}: downloaded bytes do not match the index's sha256" in result.stderr
    assert "Traceback" not in result.stderr
    assert BETA_LINUX not in bundle_files(bundle)
    assert not (bundle / "manifest.json").exists()

    # The index lists the file (and its metadata) but cannot deliver its bytes.
    upstream.tampered.clear()
    upstream.withheld.add(BETA_LINUX)
    result = cli(*create, "--index", upstream.simple_url, "-o", bundle)
    assert result.returncode != 0, result.stdout
    assert f"{BETA_LINUX}: download from " in result.stderr
    assert "404 Not Found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (bundle / "manifest.json").exists()


def test_since_an_old_manifest_carries_only_the_new_files(
    wheels: dict[str, Path], full_bundle: Created, cli: Cli, requirements: Path, tmp_path: Path
) -> None:
    upstream = started_upstream(wheels, with_alpha_2=True)
    try:
        create = ("bundle", "create", "-r", requirements, *BOTH, "--index", upstream.simple_url)
        delta = tmp_path / "delta"
        stdout = cli.ok(*create, "--since", full_bundle.bundle / "manifest.json", "-o", delta)
        assert bundle_files(delta) == {ALPHA_2}
        files = manifest(delta)["files"]
        assert isinstance(files, dict)
        assert set(files) == {ALPHA_2}
        assert target_files(delta) == {
            WIN: {ALPHA_2, BETA_WIN, GAMMA_311},
            LINUX: {ALPHA_2, BETA_LINUX},
        }
        assert file_requests(upstream, set(upstream.files)) == 1
        assert "1 files to carry, 3 carried before" in stdout

        # A delta of the delta: everything was carried by one of the two bundles before.
        again = tmp_path / "again"
        cli.ok(*create, "--since", delta / "manifest.json", "-o", again)
        assert bundle_files(again) == set()
        assert file_requests(upstream, set(upstream.files)) == 1
    finally:
        upstream.stop()


# --- carrying in ------------------------------------------------------------------------------


def test_pushed_bundle_installs_every_target_from_an_offline_index(
    full_bundle: Created,
    closed_server: ServerProcess,
    cli: Cli,
    requirements: Path,
    tmp_path: Path,
) -> None:
    inside = cli.login(closed_server)
    first = inside.ok("bundle", "push", full_bundle.bundle, "alice/closed")
    assert "uploaded 4, skipped 0 (already there), failed 0" in first
    held = index_links(closed_server, "alice/closed", ["alpha", "beta", "gamma"])
    assert held == {name: sha256(full_bundle.bundle / "files" / name) for name in held}
    assert set(held) == EXPECTED[WIN] | EXPECTED[LINUX]

    assert uploads(closed_server, at_least=4) == 4

    second = inside.ok("bundle", "push", full_bundle.bundle, "alice/closed")
    assert "uploaded 0, skipped 4 (already there), failed 0" in second
    assert index_links(closed_server, "alice/closed", ["alpha", "beta", "gamma"]) == held

    # pip evaluates markers for the machine it runs on, whatever --platform says, so it is
    # given each target's pins (gamma included for Windows) and must find their closure here.
    simple = f"{closed_server.url}/alice/closed/+simple/"
    for target, names in target_pins(full_bundle.bundle).items():
        assert pip_would_install(tmp_path, simple, target, *names) == EXPECTED[target]

    checked = inside("check", "-r", requirements, *BOTH, "--index", "alice/closed")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{WIN}: ok" in checked.stdout
    assert f"{LINUX}: ok" in checked.stdout
    # Read seconds after the second push, so that a late log line would have been written.
    assert uploads(closed_server) == 4


def test_check_names_exactly_what_an_incomplete_index_lacks(
    full_bundle: Created,
    closed_server: ServerProcess,
    upstream: Upstream,
    cli: Cli,
    requirements: Path,
) -> None:
    inside = cli.login(closed_server)
    files = full_bundle.bundle / "files"
    partial = (files / ALPHA, files / BETA_WIN, files / BETA_LINUX)
    inside.ok("upload", "--index", "alice/closed", *partial)

    # The answer is about this index alone, even where the environment tells uv and pip to
    # look at another index too (one that has gamma).
    elsewhere = {
        "UV_EXTRA_INDEX_URL": upstream.simple_url,
        "PIP_EXTRA_INDEX_URL": upstream.simple_url,
    }
    checked = Cli(inside.env | elsewhere)(
        "check", "-r", requirements, *BOTH, "--index", "alice/closed"
    )
    assert checked.returncode != 0, checked.stdout
    assert f"{WIN}: cannot be satisfied (missing: gamma)\n" in checked.stdout
    assert f"{LINUX}: ok" in checked.stdout
    assert f"{LINUX}: cannot" not in checked.stdout
    assert sum(upstream.count(path) for path in ("/simple/", "/simple/gamma/")) == 0

    inside.ok("upload", "--index", "alice/closed", files / GAMMA_311)
    checked = inside("check", "-r", requirements, *BOTH, "--index", "alice/closed")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": ok") == 2


def test_push_refuses_a_tampered_bundle_and_names_the_file(
    full_bundle: Created, closed_server: ServerProcess, cli: Cli, tmp_path: Path
) -> None:
    bundle = tmp_path / "tampered"
    shutil.copytree(full_bundle.bundle, bundle)
    victim = bundle / "files" / GAMMA_311
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))

    result = cli.login(closed_server)("bundle", "push", bundle, "alice/closed")
    assert result.returncode != 0, result.stdout
    assert GAMMA_311 in result.stderr
    assert "sha256" in result.stderr
    assert index_links(closed_server, "alice/closed", ["alpha", "beta", "gamma"]) == {}


def test_push_refuses_a_manifest_naming_files_outside_the_bundle(
    full_bundle: Created, cli: Cli, tmp_path: Path
) -> None:
    bundle = tmp_path / "crafted"
    shutil.copytree(full_bundle.bundle, bundle)
    outside = tmp_path / "secret.whl"
    outside.write_bytes(b"not for the index")
    data = manifest(bundle)
    data["files"] = {"../../secret.whl": {"sha256": sha256(outside), "size": 17}}
    (bundle / "manifest.json").write_text(json.dumps(data))
    result = cli("bundle", "push", bundle, "alice/closed")
    assert result.returncode != 0, result.stdout
    assert "'../../secret.whl' in the manifest is not a plain file name" in result.stderr


# --- from a mirror's cache --------------------------------------------------------------------


def test_from_mirror_cache_bundles_exactly_what_the_mirror_served(
    upstream: Upstream,
    server_factory: ServerFactory,
    cli: Cli,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    server = server_factory(name="outside")
    server.settings = dict(LOOPBACK_UPSTREAMS)
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        create_user(http, "alice")
        config = {"type": "mirror", "mirror_url": upstream.simple_url}
        root = JSON | basic_auth("root", ROOT_PASSWORD)  # only root creates mirrors
        assert http.put("/alice/mirror", json=config, headers=root).status_code == 200
    try:
        downloads = tmp_path / "downloads"
        command = [
            sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "download",
            "--no-cache-dir", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
            "--python-version", "3.11", "--implementation", "cp", "--dest", str(downloads),
            "--index-url", f"{server.url}/alice/mirror/+simple/", "alpha",
        ]  # fmt: skip
        result = subprocess.run(command, env=clean_env(), capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        served = {path.name: sha256(path) for path in downloads.iterdir()}
        assert set(served) == EXPECTED[LINUX]

        bundle = tmp_path / "bundle"
        stdout = cli.login(server).ok(
            "bundle", "create", "--from-mirror-cache", "alice/mirror", "-o", bundle
        )
        assert "2 files cached by alice/mirror" in stdout
        assert {path.name: sha256(path) for path in (bundle / "files").iterdir()} == served
        files = manifest(bundle)["files"]
        assert isinstance(files, dict)
        assert {name: entry["sha256"] for name, entry in files.items()} == served

        # More is installed through the mirror; a delta carries only what it served since.
        command[command.index("manylinux2014_x86_64")] = "win_amd64"
        command[-1] = "gamma"
        result = subprocess.run(command, env=clean_env(), capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        delta = tmp_path / "delta"
        stdout = cli.login(server).ok(
            "bundle", "create", "--from-mirror-cache", "alice/mirror",
            "--since", bundle / "manifest.json", "-o", delta,
        )  # fmt: skip
        assert "1 files cached by alice/mirror (2 carried before)" in stdout
        assert bundle_files(delta) == {GAMMA_311}
    finally:
        print_log_if_failed(request, server)


# --- targets in every spelling, and no server at all ------------------------------------------

# A psutil-like project: one abi3 wheel per platform family, each tagged for the OLDEST system
# it runs on (as real projects tag them), so only a target's complete tag set finds them.
EPSILON_OLD_GLIBC = "epsilon-1.0-cp36-abi3-manylinux_2_12_x86_64.manylinux2010_x86_64.whl"
EPSILON_NEW_GLIBC = "epsilon-1.0-cp36-abi3-manylinux_2_28_x86_64.whl"
EPSILON_MUSL = "epsilon-1.0-cp36-abi3-musllinux_1_1_x86_64.whl"
EPSILON_MAC = "epsilon-1.0-cp36-abi3-macosx_10_9_universal2.whl"
SPELLED_TARGETS = {
    "manylinux_2_17_x86_64-cp311": EPSILON_OLD_GLIBC,  # PEP 600 spelling
    "manylinux2014_x86_64-cp312": EPSILON_OLD_GLIBC,  # legacy spelling
    "manylinux_2_28_x86_64-cp311": EPSILON_NEW_GLIBC,  # the best of two that fit
    "musllinux_1_2_x86_64-cp311": EPSILON_MUSL,
    "macosx_11_0_arm64-cp311": EPSILON_MAC,
}


@pytest.fixture
def epsilon_upstream(tmp_path: Path) -> Iterator[Upstream]:
    upstream = Upstream()
    for name in (EPSILON_OLD_GLIBC, EPSILON_NEW_GLIBC, EPSILON_MUSL, EPSILON_MAC):
        tag = name.removeprefix("epsilon-1.0-").removesuffix(".whl")
        upstream.publish(build_wheel(tmp_path / "epsilon", "epsilon", "1.0", tag=tag))
    upstream.start()
    yield upstream
    upstream.stop()


def test_targets_in_every_spelling_find_wheels_tagged_for_older_systems(
    epsilon_upstream: Upstream, cli: Cli, tmp_path: Path
) -> None:
    wanted = tmp_path / "epsilon.txt"
    wanted.write_text("epsilon\n")
    targets = [arg for target in SPELLED_TARGETS for arg in ("--target", target)]
    cli.ok(
        "bundle", "create", "-r", wanted, *targets,
        "--index", epsilon_upstream.simple_url, "-o", tmp_path / "bundle",
    )  # fmt: skip
    chosen = target_files(tmp_path / "bundle")
    assert chosen == {target: {wheel} for target, wheel in SPELLED_TARGETS.items()}


def test_an_unknown_target_lists_the_accepted_forms(cli: Cli, requirements: Path) -> None:
    result = cli("bundle", "create", "-r", requirements, "--target", "manylinux_x86_64-cp311",
                 "--index", "http://127.0.0.1:9/simple/", "-o", "unused")  # fmt: skip
    assert result.returncode == 2
    assert "unknown platform 'manylinux_x86_64'" in result.stderr
    for form in ("manylinux_2_17_x86_64", "manylinux2014_ARCH", "musllinux_1_2_x86_64",
                 "macosx_11_0_arm64", "win_amd64"):  # fmt: skip
        assert form in result.stderr


def test_create_without_a_server_resolves_from_the_index_pip_is_configured_with(
    upstream: Upstream, cli: Cli, requirements: Path, tmp_path: Path
) -> None:
    """The README's closed-network command, on a machine that runs no packyard server."""
    no_server = Cli(cli.env | {"PIP_INDEX_URL": upstream.simple_url})
    result = no_server(
        "bundle", "create", "-r", requirements, *BOTH, "-o", tmp_path / "bundle"
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert f"resolving from {upstream.simple_url}, the index pip is configured with" in (
        result.stderr
    )
    assert target_files(tmp_path / "bundle") == EXPECTED
    assert manifest(tmp_path / "bundle")["source_index"] == upstream.simple_url
