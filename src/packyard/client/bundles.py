"""Bundles for closed networks: the exact wheels a set of requirements needs on each target,
resolved with real resolvers, checked for closure before anything is carried, and pushed
into an index idempotently.

Resolution takes two steps per target: uv resolves the requirements for the target's
platform and Python (so environment markers such as `sys_platform == "win32"` are evaluated
for the target, not for this machine), then pip picks the best wheel of each pinned release
for the target's platform tags (`pip install --dry-run --report`), which gives URLs and hashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from packyard.core.targets import Target

MANIFEST = "manifest.json"
FILES = "files"
FORMAT = 1
_MISSING = (
    re.compile(r"no versions of ([A-Za-z0-9][A-Za-z0-9._-]*)"),
    re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:[<>=!~]=?[^ ,]+)? has no wheels with a matching"),
    re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry"),
    re.compile(r"No matching distribution found for ([A-Za-z0-9][A-Za-z0-9._-]*)"),
)


@dataclasses.dataclass(frozen=True)
class Pinned:
    """One file a target needs."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why a target cannot be satisfied, in the resolver's words, and what is missing."""

    target: str
    missing: list[str]
    detail: str

    def __str__(self) -> str:
        names = ", ".join(self.missing) or "see below"
        return f"{self.target}: cannot be satisfied (missing: {names})\n{self.detail}"


class ClosureError(Exception):
    """Some requirement of some target cannot be met; nothing was downloaded."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n\n".join(map(str, problems)))
        self.problems = problems


class BundleError(Exception):
    """A bundle is damaged or does not match its manifest."""


Progress = Callable[[str, int, int], None]


def _quiet(_what: str, _done: int, _total: int) -> None:
    return None


# --- resolving --------------------------------------------------------------------------------


def resolve(
    target: Target, requirement_files: list[Path], index_url: str, allow_sdist: bool = False
) -> list[Pinned]:
    """The files `target` needs, from `index_url` alone; raises ClosureError if any lack."""
    with tempfile.TemporaryDirectory(prefix="packyard-resolve-") as scratch:
        pins = Path(scratch) / "pins.txt"
        _uv_compile(target, requirement_files, index_url, allow_sdist, pins)
        return _pip_choose(target, pins, index_url, allow_sdist, Path(scratch))


def _uv_compile(
    target: Target, requirement_files: list[Path], index_url: str, allow_sdist: bool, out: Path
) -> None:
    command = [
        _uv(), "pip", "compile", "--no-config", "--quiet", "--no-header", "--no-annotate",
        "--index-url", index_url, "--python-platform", target.uv_platform(),
        "--python-version", target.python_version, "--output-file", str(out),
        *([] if allow_sdist else ["--only-binary", ":all:"]),
        *[str(path) for path in requirement_files],
    ]  # fmt: skip
    env = os.environ | {"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env | target.uv_environment(), check=False
    )
    if result.returncode != 0:
        raise ClosureError([_problem(target, result.stderr)])


def _pip_choose(
    target: Target, pins: Path, index_url: str, allow_sdist: bool, scratch: Path
) -> list[Pinned]:
    report = scratch / "report.json"
    command = [
        sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "install",
        "--dry-run", "--ignore-installed", "--no-deps", "--quiet", "--target",
        str(scratch / "unused"), "--index-url", index_url, "--report", str(report),
        *([] if allow_sdist else ["--only-binary=:all:"]), *target.pip_args(),
        "-r", str(pins),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClosureError([_problem(target, result.stderr)])
    chosen = []
    for item in json.loads(report.read_text())["install"]:
        info = item["download_info"]
        url = info["url"]
        chosen.append(
            Pinned(
                name=item["metadata"]["name"],
                version=item["metadata"]["version"],
                filename=unquote(urlsplit(url).path.rsplit("/", 1)[-1]),
                url=url,
                sha256=info.get("archive_info", {}).get("hashes", {}).get("sha256", ""),
            )
        )
    return chosen


def _problem(target: Target, stderr: str) -> Problem:
    missing: list[str] = []
    for pattern in _MISSING:
        for name in pattern.findall(stderr):
            if name not in missing:
                missing.append(name)
    detail = "\n".join(line for line in stderr.splitlines() if line.strip())[-2000:]
    return Problem(target.name, missing, detail)


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise RuntimeError("uv is needed to resolve for other platforms: pip install uv")
    return found


def check(
    requirement_files: list[Path], targets: Iterable[Target], index_url: str
) -> list[Problem]:
    """Would these requirements install on each target from `index_url` alone?"""
    problems: list[Problem] = []
    for target in targets:
        try:
            resolve(target, requirement_files, index_url)
        except ClosureError as exc:
            problems.extend(exc.problems)
    return problems


# --- creating ---------------------------------------------------------------------------------


def create(
    requirement_files: list[Path],
    targets: list[Target],
    index_url: str,
    output: Path,
    allow_sdist: bool = False,
    since: Path | None = None,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Resolve every target (failing before any download), then fetch what is not there yet."""
    resolved: dict[str, list[Pinned]] = {}
    problems: list[Problem] = []
    for target in targets:
        try:
            resolved[target.name] = resolve(target, requirement_files, index_url, allow_sdist)
        except ClosureError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ClosureError(problems)
    files = _union(resolved)
    carried_before = _files_of(since) if since else {}
    to_carry = {n: p for n, p in files.items() if carried_before.get(n) != p.sha256}
    (output / FILES).mkdir(parents=True, exist_ok=True)
    for done, pinned in enumerate(to_carry.values(), 1):
        _download(pinned, output / FILES / pinned.filename)
        progress("files", done, len(to_carry))
    manifest = _manifest(requirement_files, index_url, resolved, to_carry, files, since, output)
    (output / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _union(resolved: dict[str, list[Pinned]]) -> dict[str, Pinned]:
    files: dict[str, Pinned] = {}
    for pins in resolved.values():
        for pinned in pins:
            known = files.get(pinned.filename)
            if known is not None and known.sha256 != pinned.sha256:
                raise BundleError(f"{pinned.filename} has two different hashes across targets")
            files[pinned.filename] = pinned
    return files


def _download(pinned: Pinned, destination: Path) -> None:
    """Fetch one file, reusing a complete earlier download (resumable bundles)."""
    if destination.exists() and _sha256(destination) == pinned.sha256:
        return
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    with httpx.stream("GET", pinned.url, follow_redirects=True, timeout=120) as response:
        response.raise_for_status()
        with partial.open("wb") as handle:
            for chunk in response.iter_bytes(1 << 20):
                handle.write(chunk)
                digest.update(chunk)
    if pinned.sha256 and digest.hexdigest() != pinned.sha256:
        partial.unlink()
        raise BundleError(f"{pinned.filename}: downloaded bytes do not match the index's sha256")
    partial.replace(destination)


def _manifest(
    requirement_files: list[Path],
    index_url: str,
    resolved: dict[str, list[Pinned]],
    carried: dict[str, Pinned],
    everything: dict[str, Pinned],
    since: Path | None,
    output: Path,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_index": index_url,
        "requirements": {str(path): path.read_text().splitlines() for path in requirement_files},
        "targets": {
            name: [{"name": p.name, "version": p.version, "filename": p.filename} for p in pins]
            for name, pins in resolved.items()
        },
        "files": {
            name: {"sha256": p.sha256, "size": (output / FILES / name).stat().st_size}
            for name, p in carried.items()
        },
        "carried_before": sorted(set(everything) - set(carried)),
        "since": str(since) if since else None,
    }


def _files_of(manifest_path: Path) -> dict[str, str]:
    manifest = json.loads(manifest_path.read_text())
    return {name: entry["sha256"] for name, entry in manifest.get("files", {}).items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def from_mirror_cache(
    api_result: list[dict[str, Any]], index_url: str, output: Path, progress: Progress = _quiet
) -> dict[str, Any]:
    """A bundle of exactly the files a mirror served (its cache), as listed by `+cached`."""
    root = index_url.rstrip("/")
    pins = [
        Pinned("", "", entry["filename"], f"{root}/{entry['path']}", entry["sha256"])
        for entry in api_result
    ]
    (output / FILES).mkdir(parents=True, exist_ok=True)
    for done, pinned in enumerate(pins, 1):
        _download(pinned, output / FILES / pinned.filename)
        progress("files", done, len(pins))
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_index": root,
        "requirements": {},
        "targets": {"mirror-cache": [{"filename": p.filename} for p in pins]},
        "files": {
            p.filename: {"sha256": p.sha256, "size": (output / FILES / p.filename).stat().st_size}
            for p in pins
        },
        "carried_before": [],
        "since": None,
    }
    (output / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# --- carrying in ------------------------------------------------------------------------------


def verified_files(bundle: Path) -> list[Path]:
    """Every file of the bundle, each checked against the manifest; BundleError if not."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle} has no readable {MANIFEST}: {exc}") from exc
    paths = []
    for name, entry in sorted(manifest.get("files", {}).items()):
        path = bundle / FILES / name
        if not path.is_file():
            raise BundleError(f"{name} is listed in the manifest but missing from the bundle")
        if _sha256(path) != entry["sha256"]:
            raise BundleError(f"{name} does not match its sha256 in the manifest")
        paths.append(path)
    return paths
