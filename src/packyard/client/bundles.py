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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from packyard.client import errors
from packyard.client.api import sha256_of
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

# uv settings about where the cache is and how to talk to servers, not about what to resolve.
_UV_KEPT = frozenset(
    {"UV_CACHE_DIR", "UV_NO_CACHE", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_INSECURE_HOST"}
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
        if not self.missing:  # e.g. the index could not be reached
            return f"{self.target}: cannot be resolved (see below)\n{self.detail}"
        names = ", ".join(self.missing)
        return f"{self.target}: cannot be satisfied (missing: {names})\n{self.detail}"


class ClosureError(errors.ClosureError):
    """Some requirement of some target cannot be met; nothing was downloaded."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n\n".join(map(str, problems)))
        self.problems = problems


BundleError = errors.BundleError


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
    result = subprocess.run(
        command, capture_output=True, text=True, env=_uv_env(target), check=False
    )
    if result.returncode != 0:
        raise ClosureError([_problem(target, result.stderr)])


def _uv_env(target: Target) -> dict[str, str]:
    """This environment without uv settings that could add indexes, find-links, constraints
    and the like: the answer must come from the one index given."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in _UV_KEPT}
    return kept | {"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"} | target.uv_environment()


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
    return _resolve_all(requirement_files, list(targets), index_url, False, _quiet)[1]


def _resolve_all(
    requirement_files: list[Path],
    targets: list[Target],
    index_url: str,
    allow_sdist: bool,
    progress: Progress,
) -> tuple[dict[str, list[Pinned]], list[Problem]]:
    """Every target resolved (side by side: each is two resolver processes), in target order."""

    def one(target: Target) -> list[Pinned] | ClosureError:
        try:
            return resolve(target, requirement_files, index_url, allow_sdist)
        except ClosureError as exc:
            return exc

    resolved: dict[str, list[Pinned]] = {}
    problems: list[Problem] = []
    progress("resolving", 0, len(targets))
    workers = max(1, min(len(targets), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = pool.map(one, targets)
        for done, (target, outcome) in enumerate(zip(targets, outcomes, strict=True), 1):
            if isinstance(outcome, ClosureError):
                problems.extend(outcome.problems)
            else:
                resolved[target.name] = outcome
            progress("resolving", done, len(targets))
    return resolved, problems


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
    carried_before = _files_of(since) if since else {}
    resolved, problems = _resolve_all(requirement_files, targets, index_url, allow_sdist, progress)
    if problems:
        raise ClosureError(problems)
    files = _union(resolved)
    to_carry = [p for n, p in files.items() if not _known(carried_before, n, p.sha256)]
    digests = _download_all(to_carry, output, progress)
    manifest = {
        **_header(index_url, since),
        "requirements": {str(path): path.read_text().splitlines() for path in requirement_files},
        "targets": {
            name: [{"name": p.name, "version": p.version, "filename": p.filename} for p in pins]
            for name, pins in resolved.items()
        },
        "files": _entries(digests, output),
        "carried_before": {
            name: carried_before[name] or p.sha256
            for name, p in files.items()
            if name not in digests
        },
    }
    _write_manifest(output, manifest)
    return manifest


def _known(carried_before: dict[str, str], filename: str, sha256: str) -> bool:
    """Was this file carried before? (by name alone where either side has no hash)"""
    if filename not in carried_before:
        return False
    return not (sha256 and carried_before[filename]) or carried_before[filename] == sha256


def _union(resolved: dict[str, list[Pinned]]) -> dict[str, Pinned]:
    files: dict[str, Pinned] = {}
    for pins in resolved.values():
        for pinned in pins:
            known = files.get(pinned.filename)
            if known is not None and known.sha256 != pinned.sha256:
                raise BundleError(f"{pinned.filename} has two different hashes across targets")
            files[pinned.filename] = pinned
    return files


def _download_all(pins: list[Pinned], output: Path, progress: Progress) -> dict[str, str]:
    """Fetch every file into the bundle; filename -> sha256 of the bytes carried."""
    (output / FILES).mkdir(parents=True, exist_ok=True)
    digests = {}
    progress("downloading", 0, len(pins))
    for done, pinned in enumerate(pins, 1):
        digests[pinned.filename] = _download(pinned, output / FILES / pinned.filename)
        progress("downloading", done, len(pins))
    return digests


def _download(pinned: Pinned, destination: Path) -> str:
    """Fetch one file, reusing a complete earlier download (resumable bundles); its sha256."""
    if pinned.sha256 and destination.exists() and sha256_of(destination) == pinned.sha256:
        return pinned.sha256
    partial = destination.with_name(destination.name + ".part")
    digest = hashlib.sha256()
    try:
        with httpx.stream("GET", pinned.url, follow_redirects=True, timeout=120) as response:
            response.raise_for_status()
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
                    digest.update(chunk)
    except httpx.HTTPError as exc:
        raise BundleError(f"{pinned.filename}: download from {pinned.url} failed: {exc}") from exc
    if pinned.sha256 and digest.hexdigest() != pinned.sha256:
        partial.unlink()
        raise BundleError(f"{pinned.filename}: downloaded bytes do not match the index's sha256")
    partial.replace(destination)
    return digest.hexdigest()


def _header(index_url: str, since: Path | None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source_index": index_url,
        "since": str(since) if since else None,
    }


def _entries(digests: dict[str, str], output: Path) -> dict[str, dict[str, Any]]:
    return {
        name: {"sha256": sha256, "size": (output / FILES / name).stat().st_size}
        for name, sha256 in digests.items()
    }


def _write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    """Written last and atomically: a bundle with a manifest is a complete bundle."""
    temp = output / (MANIFEST + ".part")
    temp.write_text(json.dumps(manifest, indent=2) + "\n")
    temp.replace(output / MANIFEST)


def _files_of(manifest_path: Path) -> dict[str, str]:
    """filename -> sha256 of everything a bundle carried, itself or through its own `since`."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest_path} is not a readable manifest: {exc}") from exc
    before = manifest.get("carried_before") or {}
    # Bundles made before the hashes were recorded list the names alone.
    known = dict(before) if isinstance(before, dict) else dict.fromkeys(before, "")
    known.update({name: entry["sha256"] for name, entry in manifest.get("files", {}).items()})
    return known


def from_mirror_cache(
    api_result: list[dict[str, Any]],
    index_url: str,
    output: Path,
    progress: Progress = _quiet,
    since: Path | None = None,
) -> dict[str, Any]:
    """A bundle of exactly the files a mirror served (its cache), as listed by `+cached`."""
    root = index_url.rstrip("/")
    carried_before = _files_of(since) if since else {}
    pins = [
        Pinned("", "", entry["filename"], f"{root}/{entry['path']}", entry["sha256"])
        for entry in api_result
    ]
    to_carry = [p for p in pins if not _known(carried_before, p.filename, p.sha256)]
    digests = _download_all(to_carry, output, progress)
    manifest = {
        **_header(root, since),
        "requirements": {},
        "targets": {"mirror-cache": [{"filename": p.filename} for p in pins]},
        "files": _entries(digests, output),
        "carried_before": {p.filename: p.sha256 for p in pins if p.filename not in digests},
    }
    _write_manifest(output, manifest)
    return manifest


# --- advisories ------------------------------------------------------------------------------

ADVISORIES = "advisories.zip"  # an OSV export carried beside the files


def carry_advisories(output: Path, source: Path) -> dict[str, Any]:
    """Copy the OSV export into the bundle and note it in the manifest (written again)."""
    output.mkdir(parents=True, exist_ok=True)
    partial = output / (ADVISORIES + ".part")
    shutil.copyfile(source, partial)
    partial.replace(output / ADVISORIES)
    manifest: dict[str, Any] = json.loads((output / MANIFEST).read_text())
    manifest["advisories"] = {"file": ADVISORIES, "sha256": sha256_of(output / ADVISORIES)}
    _write_manifest(output, manifest)
    return manifest


def verified_advisories(bundle: Path) -> Path | None:
    """The bundle's OSV export, checked against the manifest; None when it carries none."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle} has no readable {MANIFEST}: {exc}") from exc
    entry = manifest.get("advisories")
    if not entry:
        return None
    path = bundle / ADVISORIES
    if not path.is_file() or sha256_of(path) != entry.get("sha256"):
        raise BundleError(f"{ADVISORIES} is missing or does not match its sha256 in the manifest")
    return path


# --- carrying in ------------------------------------------------------------------------------


def verified_files(bundle: Path) -> list[Path]:
    """Every file of the bundle, each checked against the manifest; BundleError if not."""
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{bundle} has no readable {MANIFEST}: {exc}") from exc
    paths = []
    for name, entry in sorted(manifest.get("files", {}).items()):
        if Path(name).name != name or name in ("", ".", ".."):
            raise BundleError(f"{name!r} in the manifest is not a plain file name")
        path = bundle / FILES / name
        if not path.is_file():
            raise BundleError(f"{name} is listed in the manifest but missing from the bundle")
        if sha256_of(path) != entry["sha256"]:
            raise BundleError(f"{name} does not match its sha256 in the manifest")
        paths.append(path)
    return paths
