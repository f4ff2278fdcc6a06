"""Build real wheels and sdists for tests, quickly and without a build backend."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def core_metadata(
    name: str,
    version: str,
    requires: list[str] | None = None,
    summary: str = "",
    requires_python: str | None = None,
    description: str = "",
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires or [])
    text = "\n".join(lines) + "\n"
    if description:
        text += "Description-Content-Type: text/markdown\n\n" + description + "\n"
    return text


def _escaped(name: str) -> str:
    return str(canonicalize_name(name)).replace("-", "_")


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    requires: list[str] | None = None,
    tag: str = "py3-none-any",
    summary: str = "a test package",
    requires_python: str | None = None,
    payload: str = "",
    description: str = "",
) -> Path:
    """A valid wheel with an importable module named after the project.

    `description` becomes the METADATA body (a Markdown long description).
    """
    dist = _escaped(name)
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n{payload}".encode(),
        f"{info}/METADATA": core_metadata(
            name, version, requires, summary, requires_python, description
        ).encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: packyard-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record_lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return target


def build_sdist(
    directory: Path,
    name: str,
    version: str,
    requires: list[str] | None = None,
    summary: str = "a test package",
) -> Path:
    """A PEP 625 sdist with PKG-INFO and a setuptools pyproject.toml that pip can build."""
    dist = _escaped(name)
    top = f"{dist}-{version}"
    deps = ", ".join(f'"{req}"' for req in requires or [])
    files = {
        f"{top}/PKG-INFO": core_metadata(name, version, requires, summary).encode(),
        f"{top}/pyproject.toml": (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
            "[tool.setuptools]\n"
            f'packages = ["{dist}"]\n'
        ).encode(),
        f"{top}/{dist}/__init__.py": f"__version__ = {version!r}\n".encode(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{top}.tar.gz"
    with tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path, data in files.items():
            member = tarfile.TarInfo(path)
            member.size = len(data)
            member.mtime = 1_700_000_000
            archive.addfile(member, io.BytesIO(data))
    return target
