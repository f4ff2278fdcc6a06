"""Local distributions: finding them, reading their metadata, building them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pkginfo
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

InvalidFilename = (InvalidWheelFilename, InvalidSdistFilename)

DIST_SUFFIXES = (".whl", ".tar.gz", ".zip")
FORMATS = {"sdist": "--sdist", "sdist.tgz": "--sdist", "bdist_wheel": "--wheel", "wheel": "--wheel"}
# Metadata attributes pkginfo reads, as the legacy upload API names them.
_LIST_FIELDS = ("classifiers", "requires_dist", "provides_extras", "project_urls", "dynamic")
_TEXT_FIELDS = (
    "metadata_version", "summary", "description", "description_content_type", "author",
    "author_email", "maintainer", "maintainer_email", "license", "keywords", "home_page",
    "download_url", "requires_python",
)  # fmt: skip


def find_distributions(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, and every distribution inside named directories (wheelhouses)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if _is_dist(p)))
        elif _is_dist(path):
            found.append(path)
        else:
            raise ValueError(f"{path} is neither a distribution (.whl, .tar.gz, .zip) nor a dir")
    return found


def _is_dist(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(DIST_SUFFIXES)


def upload_fields(path: Path) -> dict[str, Any]:
    """The form fields twine sends for a distribution, read from its own metadata."""
    dist: pkginfo.Distribution = (
        pkginfo.Wheel(str(path)) if path.name.endswith(".whl") else pkginfo.SDist(str(path))
    )
    if not dist.name or not dist.version:
        raise ValueError(f"{path.name}: no name or version in its metadata")
    fields: dict[str, Any] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": dist.name,
        "version": dist.version,
        "filetype": "bdist_wheel" if path.name.endswith(".whl") else "sdist",
        "pyversion": _pyversion(path.name),
    }
    for key in _TEXT_FIELDS:
        value = getattr(dist, key, None)
        if value:
            fields[key] = str(value)
    for key in _LIST_FIELDS:
        values = getattr(dist, key, None)
        if values:
            fields[key] = [str(value) for value in values]
    return fields


def project_of(path: Path) -> str:
    """The normalized project name, from the file name (PEP 427/625), else its metadata."""
    try:
        if path.name.endswith(".whl"):
            return str(parse_wheel_filename(path.name)[0])
        return str(parse_sdist_filename(path.name)[0])
    except InvalidFilename:
        pass
    dist = pkginfo.Wheel(str(path)) if path.name.endswith(".whl") else pkginfo.SDist(str(path))
    return str(canonicalize_name(dist.name or path.name.split("-")[0]))


def _pyversion(filename: str) -> str:
    return filename[:-4].split("-")[-3] if filename.endswith(".whl") else "source"


def is_project_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("pyproject.toml", "setup.py"))


def build(project_dir: Path, formats: Iterable[str], outdir: Path) -> list[Path]:
    """Build sdist and/or wheel with `python -m build` into `outdir`; returns the files made."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown format {', '.join(unknown)}: use {', '.join(FORMATS)}")
    flags = sorted({FORMATS[name] for name in formats})
    command = [sys.executable, "-m", "build", *flags, "--outdir", str(outdir), str(project_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"building {project_dir} failed:\n{tail}")
    return sorted(p for p in outdir.iterdir() if _is_dist(p))
