"""Reading core metadata out of wheels and sdists, refusing archives that do not open."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from packyard.core.dists import DistFilename
from packyard.errors import InvalidInput

MAX_METADATA_SIZE = 16 * 1024 * 1024


def read_core_metadata(path: Path | BinaryIO, dist: DistFilename) -> bytes:
    """The METADATA (wheel) or PKG-INFO (sdist) bytes, exactly as stored in the archive
    (a path, or a seekable file positioned anywhere)."""
    if not isinstance(path, Path):
        path.seek(0)
    try:
        if dist.kind == "wheel":
            return _wheel_metadata(path, dist)
        if dist.filename.lower().endswith(".zip"):
            return _zip_sdist_metadata(path, dist)
        return _tar_sdist_metadata(path, dist)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{dist.filename!r} is not a readable archive: {exc}") from exc


def _wheel_metadata(path: Path | BinaryIO, dist: DistFilename) -> bytes:
    with zipfile.ZipFile(path) as archive:
        candidates = [
            name
            for name in archive.namelist()
            if _depth(name) == 2 and name.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise InvalidInput(
                f"Wheel {dist.filename!r} does not contain exactly one *.dist-info/METADATA file"
            )
        return _read_zip_member(archive, candidates[0], dist)


def _zip_sdist_metadata(path: Path | BinaryIO, dist: DistFilename) -> bytes:
    with zipfile.ZipFile(path) as archive:
        candidates = [n for n in archive.namelist() if _depth(n) == 2 and n.endswith("/PKG-INFO")]
        if not candidates:
            raise InvalidInput(f"sdist {dist.filename!r} has no PKG-INFO")
        return _read_zip_member(archive, sorted(candidates)[0], dist)


def _tar_sdist_metadata(path: Path | BinaryIO, dist: DistFilename) -> bytes:
    source = {"name": path} if isinstance(path, Path) else {"fileobj": path}
    with tarfile.open(mode="r:gz", **source) as archive:
        for member in archive:
            if member.isfile() and _depth(member.name) == 2 and member.name.endswith("/PKG-INFO"):
                if member.size > MAX_METADATA_SIZE:
                    raise InvalidInput(f"{dist.filename!r}: PKG-INFO is too large")
                extracted = archive.extractfile(member)
                if extracted is None:
                    break
                return extracted.read()
    raise InvalidInput(f"sdist {dist.filename!r} has no PKG-INFO")


def _read_zip_member(archive: zipfile.ZipFile, name: str, dist: DistFilename) -> bytes:
    if archive.getinfo(name).file_size > MAX_METADATA_SIZE:
        raise InvalidInput(f"{dist.filename!r}: {name} is too large")
    return archive.read(name)


def _depth(name: str) -> int:
    return len(PurePosixPath(name).parts)
