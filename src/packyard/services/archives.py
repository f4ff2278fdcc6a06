"""Reading core metadata out of wheels and sdists, refusing archives that do not open.

Archives come from anyone who may upload, so inspecting one is bounded: the number of members
is checked before an archive's directory is loaded (a zip's central directory is counted from
its end record, a tar's members as they stream by), and the bytes unpacked on the way to the
metadata file are capped (a gzip bomb is refused, not unpacked).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from packyard.config import Settings
from packyard.core.dists import DistFilename
from packyard.errors import InvalidInput, TooLarge

MAX_METADATA_SIZE = 16 * 1024 * 1024

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s6H3L5H2L")  # one central directory file header
_MAX_COMMENT = 0xFFFF


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    """How much work one archive may cost: members listed, bytes unpacked before metadata."""

    max_members: int = 50_000
    max_unpacked: int = 1024 * 1024 * 1024


DEFAULT_LIMITS = ArchiveLimits()


def limits_from(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(settings.max_archive_members, settings.max_archive_unpacked)


def read_core_metadata(
    path: Path | BinaryIO, dist: DistFilename, limits: ArchiveLimits = DEFAULT_LIMITS
) -> bytes:
    """The METADATA (wheel) or PKG-INFO (sdist) bytes, exactly as stored in the archive
    (a path, or a seekable file positioned anywhere)."""
    try:
        if dist.kind == "wheel":
            return _wheel_metadata(path, dist, limits)
        if dist.filename.lower().endswith(".zip"):
            return _zip_sdist_metadata(path, dist, limits)
        return _tar_sdist_metadata(path, dist, limits)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, struct.error) as exc:
        raise InvalidInput(f"{dist.filename!r} is not a readable archive: {exc}") from exc


def check_zip(path: Path | BinaryIO, filename: str, limits: ArchiveLimits) -> None:
    """A zip that opens, with at most `limits.max_members` members of at most
    `limits.max_unpacked` bytes each (as their headers declare; reading never goes past that)."""
    try:
        with open_zip(path, filename, limits) as archive:
            for info in archive.infolist():
                if info.file_size > limits.max_unpacked:
                    raise InvalidInput(
                        f"{filename!r}: member {info.filename!r} is {info.file_size} bytes"
                        f" unpacked; the limit is {limits.max_unpacked}"
                    )
    except (zipfile.BadZipFile, OSError, struct.error) as exc:
        raise InvalidInput(f"{filename!r} is not a readable zip file: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class ZipMember:
    """One member of a stored zip, found and size-checked, ready to be streamed."""

    path: Path
    name: str
    size: int


def zip_member(path: Path, name: str, max_size: int) -> ZipMember | None:
    """The member `name` of the zip at `path`, or None; over `max_size` is refused (and so is
    a zip stored before the member cap, whose directory is too long to load per request)."""
    with open_zip(path, path.name, ArchiveLimits(max_unpacked=max_size)) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            return None
    if info.file_size > max_size:
        raise TooLarge(
            f"{name} is {info.file_size} bytes unpacked; pages over {max_size} bytes are not served"
        )
    return ZipMember(path, name, info.file_size)


def stream_member(member: ZipMember, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The member's bytes in chunks: memory stays one chunk whatever the member's size."""
    with zipfile.ZipFile(member.path) as archive, archive.open(member.name) as stream:
        while chunk := stream.read(chunk_size):
            yield chunk


# --- zips ------------------------------------------------------------------------------------


def open_zip(path: Path | BinaryIO, filename: str, limits: ArchiveLimits) -> zipfile.ZipFile:
    """A ZipFile, opened only after counting its members (ZipFile loads them all at once)."""
    if isinstance(path, Path):
        with path.open("rb") as file:
            _check_zip_members(file, filename, limits)
    else:
        _check_zip_members(path, filename, limits)
        path.seek(0)
    return zipfile.ZipFile(path)


def _check_zip_members(file: BinaryIO, filename: str, limits: ArchiveLimits) -> None:
    """Walk the central directory's entry headers (not loading them) and stop past the cap.

    The count in the end record could lie; ZipFile reads as many entries as the directory's
    byte size holds, so those are what is counted.
    """
    start, size = _central_directory(file)
    file.seek(start)
    members, offset = 0, 0
    while offset < size:
        header = file.read(_CENTRAL_ENTRY.size)
        if len(header) < _CENTRAL_ENTRY.size or header[:4] != b"PK\x01\x02":
            return  # a broken directory: ZipFile itself says what is wrong
        members += 1
        if members > limits.max_members:
            raise InvalidInput(
                f"{filename!r}: archive has too many members (the limit is {limits.max_members})"
            )
        fields = _CENTRAL_ENTRY.unpack(header)
        variable = fields[10] + fields[11] + fields[12]  # name, extra and comment lengths
        file.seek(variable, 1)
        offset += _CENTRAL_ENTRY.size + variable


def _central_directory(file: BinaryIO) -> tuple[int, int]:
    """(start, byte size) of the central directory, located the way ZipFile locates it."""
    end = file.seek(0, 2)
    tail_size = min(end, _EOCD.size + _MAX_COMMENT)
    file.seek(end - tail_size)
    tail = file.read(tail_size)
    found = tail.rfind(b"PK\x05\x06")
    if found < 0 or tail_size - found < _EOCD.size:
        raise zipfile.BadZipFile("File is not a zip file")
    location = end - tail_size + found
    record = _EOCD.unpack(tail[found : found + _EOCD.size])
    size = record[5]
    if location >= _EOCD64_LOCATOR.size:
        file.seek(location - _EOCD64_LOCATOR.size)
        locator = file.read(_EOCD64_LOCATOR.size)
        if locator[:4] == b"PK\x06\x07" and location >= _EOCD64_LOCATOR.size + _EOCD64.size:
            location -= _EOCD64_LOCATOR.size + _EOCD64.size
            file.seek(location)
            record64 = _EOCD64.unpack(file.read(_EOCD64.size))
            if record64[0] != b"PK\x06\x06":
                raise zipfile.BadZipFile("corrupt zip64 end of central directory")
            size = record64[8]
    return max(location - size, 0), size


def _wheel_metadata(path: Path | BinaryIO, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    with open_zip(path, dist.filename, limits) as archive:
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


def _zip_sdist_metadata(path: Path | BinaryIO, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    with open_zip(path, dist.filename, limits) as archive:
        candidates = [n for n in archive.namelist() if _depth(n) == 2 and n.endswith("/PKG-INFO")]
        if not candidates:
            raise InvalidInput(f"sdist {dist.filename!r} has no PKG-INFO")
        return _read_zip_member(archive, sorted(candidates)[0], dist)


def _read_zip_member(archive: zipfile.ZipFile, name: str, dist: DistFilename) -> bytes:
    if archive.getinfo(name).file_size > MAX_METADATA_SIZE:
        raise InvalidInput(f"{dist.filename!r}: metadata too large ({name})")
    return archive.read(name)


# --- tars ------------------------------------------------------------------------------------


class _BoundedGzip(gzip.GzipFile):
    """A gzip stream that refuses to unpack past `limit` bytes or to read a block larger than
    the metadata cap in one go (tarfile reads a pax or long-name header whole)."""

    limit = DEFAULT_LIMITS.max_unpacked
    filename = ""

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_METADATA_SIZE:
            raise InvalidInput(f"{self.filename!r}: metadata too large (a tar header or member)")
        self._check_reach(self._position() + size)
        return super().read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._check_reach(offset if whence == 0 else self._position() + offset)
        return super().seek(offset, whence)

    def tell(self) -> int:
        return self._position()

    def _position(self) -> int:
        return super().seek(0, 1)  # GzipFile.tell would call our seek

    def _check_reach(self, position: int) -> None:
        if position > self.limit:
            raise InvalidInput(
                f"{self.filename!r}: archive unpacks to more than {self.limit} bytes"
                " before its metadata"
            )


def _tar_sdist_metadata(path: Path | BinaryIO, dist: DistFilename, limits: ArchiveLimits) -> bytes:
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(path.open("rb")) if isinstance(path, Path) else path
        raw.seek(0)
        unpacked = stack.enter_context(_BoundedGzip(fileobj=raw, mode="rb"))
        unpacked.limit, unpacked.filename = limits.max_unpacked, dist.filename
        archive = stack.enter_context(tarfile.open(fileobj=unpacked, mode="r:"))
        for member in _bounded_members(archive, dist.filename, limits):
            if member.isfile() and _depth(member.name) == 2 and member.name.endswith("/PKG-INFO"):
                if member.size > MAX_METADATA_SIZE:
                    raise InvalidInput(f"{dist.filename!r}: metadata too large (PKG-INFO)")
                extracted = archive.extractfile(member)
                if extracted is None:
                    break
                return extracted.read()
    raise InvalidInput(f"sdist {dist.filename!r} has no PKG-INFO")


def _bounded_members(
    archive: tarfile.TarFile, filename: str, limits: ArchiveLimits
) -> Iterator[tarfile.TarInfo]:
    """The tar's members as they stream by, refused past the member cap."""
    count = 0
    while (member := archive.next()) is not None:
        count += 1
        if count > limits.max_members:
            raise InvalidInput(
                f"{filename!r}: archive has too many members (the limit is {limits.max_members})"
            )
        archive.members.clear()  # type: ignore[attr-defined]  # tarfile keeps all it saw
        yield member


def _depth(name: str) -> int:
    if "//" not in name and "/./" not in name and not name.startswith(("/", "./")):
        return name.rstrip("/").count("/") + 1  # the usual case, without building a path
    return len(PurePosixPath(name).parts)
