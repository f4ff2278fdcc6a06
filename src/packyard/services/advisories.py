"""Importing OSV advisories: a zip of OSV JSON records (OSV's published export for the PyPI
ecosystem, or the file a bundle carries into a closed network).

Untrusted input costs bounded work: the members are counted before the zip's directory is
loaded, each member is read (never extracted to disk) up to a size cap, and every record is
parsed before anything is stored, so a bad file changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from packyard.config import Settings
from packyard.core.advisories import Advisory, parse_record
from packyard.errors import InvalidInput
from packyard.services.archives import ArchiveLimits, open_zip
from packyard.storage import statuses
from packyard.storage.db import Database


@dataclasses.dataclass(frozen=True)
class Imported:
    """What one import stored."""

    records: int  # OSV records read
    advisories: int  # (advisory, project) pairs stored
    malicious: int  # of them, MAL- ones

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Advisories:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    def import_zip(self, source: Path | BinaryIO, name: str = "advisories.zip") -> Imported:
        """Read every record of the zip, then store them in one change (all or nothing)."""
        records, found = read_export(source, name, self._limits())
        with self._db.write("advisories-import", file=name, records=records) as conn:
            stored = statuses.put_advisories(conn, found)
        malicious = sum(1 for advisory in found if advisory.malicious)
        return Imported(records, stored, malicious)

    def _limits(self) -> ArchiveLimits:
        settings = self._settings
        return ArchiveLimits(settings.advisories_max_records, settings.advisories_max_record_size)


def read_export(
    source: Path | BinaryIO, name: str, limits: ArchiveLimits
) -> tuple[int, list[Advisory]]:
    """(records read, advisories they make) of an OSV export zip; InvalidInput naming the
    first problem (too many members, one too large, not JSON, not an OSV record)."""
    found: list[Advisory] = []
    records = 0
    try:
        with open_zip(source, name, limits) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                records += 1
                found.extend(_advisories_of(archive, info, limits.max_unpacked))
    except (zipfile.BadZipFile, OSError, struct.error, EOFError) as exc:
        raise InvalidInput(f"{name!r} is not a readable zip file: {exc}") from exc
    return records, found


def _advisories_of(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> list[Advisory]:
    member = info.filename
    if info.file_size > limit:
        raise InvalidInput(
            f"{member!r} is {info.file_size} bytes, larger than {limit}, the limit of a record"
        )
    with archive.open(info) as stream:
        data = stream.read(limit + 1)  # the header could lie: never read past the cap
    if len(data) > limit:
        raise InvalidInput(f"{member!r} is larger than {limit} bytes, the limit of a record")
    try:
        record = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{member!r} is not JSON: {exc}") from exc
    try:
        return parse_record(record)
    except InvalidInput as exc:
        raise InvalidInput(f"{member!r}: {exc.message}") from exc
