"""Which release files may join a version on an index: the one rule, by identity.

A non-volatile index never changes what an installer gets for a released version:
- the same filename with the same bytes is accepted and changes nothing (devpi);
- the same filename with other bytes, or another filename with the same identity
  (`Foo-1.0.tar.gz`, `foo-1.0.0.tar.gz`, `foo-1.0.zip` for `foo-1.0.tar.gz`), is refused;
- a file of a new identity (say a wheel beside the sdist) is refused once the version is
  released: only while the release is open, `release_window` seconds after its first file and
  by that file's uploader, may the other files of the release follow (`twine upload dist/*`
  sends them one by one).
A volatile index replaces files of the same identity instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from packyard.core.dists import DistFilename, legacy_dist, parse_dist_filename
from packyard.core.models import FileRecord, VersionRecord
from packyard.errors import Conflict, InvalidInput

EXISTS = "already exists in non-volatile index"  # devpi's words; clients look for them


@dataclasses.dataclass(frozen=True)
class Admission:
    """How a new release file joins its version's files: as is, or replacing some."""

    identical: FileRecord | None = None  # the same file, byte for byte: nothing to store
    replaces: tuple[FileRecord, ...] = ()  # volatile only: the files it takes the place of


@dataclasses.dataclass(frozen=True)
class Upload:
    """A release file on its way in, and who brings it when."""

    dist: DistFilename
    sha256: str
    actor: str | None
    now: float


def admit(
    upload: Upload, version_files: Sequence[FileRecord], volatile: bool, window: float
) -> Admission:
    """Decide how `upload` joins `version_files` (the release files of its version); raise
    Conflict if it may not."""
    same_name = [f for f in version_files if f.filename == upload.dist.filename]
    if same_name and same_name[0].sha256 == upload.sha256:
        return Admission(identical=same_name[0])
    twins = tuple(f for f in version_files if _identity_of(f) == upload.dist.identity)
    if volatile:
        return Admission(replaces=twins)
    if same_name:
        raise Conflict(f"{upload.dist.filename} {EXISTS}")
    if twins:
        raise Conflict(
            f"{upload.dist.filename} is the same release file as {twins[0].filename}, which"
            f" {EXISTS}"
        )
    if version_files and not is_open(version_files, upload.actor, upload.now, window):
        raise Conflict(
            f"{upload.dist.filename}: {upload.dist.project} {upload.dist.version} is released"
            " on this non-volatile index and gets no new files; upload a new version"
        )
    return Admission()


def check_metadata_change(
    index: str, version: VersionRecord, released: Sequence[FileRecord], volatile: bool
) -> None:
    """A released version's metadata (what installers resolve from) is fixed on a
    non-volatile index; a version registered without files may still be redone."""
    if released and not volatile:
        raise Conflict(
            f"the metadata of {version.project} {version.version} cannot change: it is released"
            f" on non-volatile index {index}; upload a new version"
        )


def is_open(
    version_files: Sequence[FileRecord], actor: str | None, now: float, window: float
) -> bool:
    """A release stays open to its first file's uploader for `window` seconds."""
    first = min(version_files, key=lambda f: f.uploaded_at)
    return actor is not None and now - first.uploaded_at <= window and uploader(first) == actor


def uploader(file: FileRecord) -> str | None:
    """Who brought the file to this index: its last upload or push entry."""
    entries = [e for e in file.log if e.get("what") in ("upload", "push")]
    return str(entries[-1].get("who")) if entries and entries[-1].get("who") else None


def stored_dist(file: FileRecord) -> DistFilename:
    """What a stored release file is: its name parsed, or, for a legacy format an import kept
    (an egg, a bdist_dumb archive), a file of the project and version it was stored under."""
    try:
        return parse_dist_filename(file.filename)
    except InvalidInput:
        return legacy_dist(file.filename, file.project, file.version)


def _identity_of(file: FileRecord) -> object:
    try:
        return stored_dist(file).identity
    except InvalidInput:  # a name or version stored before the rules: its own identity
        return file.filename
