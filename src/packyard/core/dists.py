"""Distribution filenames and core metadata: what an upload must look like (PEP 427, 625, 440)."""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Mapping
from typing import Any

from packaging.metadata import parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from packyard.core.names import check_project_name, normalize_project
from packyard.errors import InvalidInput

SDIST_SUFFIXES = (".tar.gz", ".zip")
MAX_FILENAME_LENGTH = 255
# Formats PyPI no longer takes (PEP 527, PEP 715). A devpi export may hold them: an import keeps
# them (kind "legacy"), an upload of one is refused.
LEGACY_FILETYPES = frozenset({"bdist_egg", "bdist_dumb", "bdist_wininst", "bdist_msi", "bdist_rpm"})
_LEGACY_SUFFIX_FILETYPES = {".egg": "bdist_egg", ".exe": "bdist_wininst", ".msi": "bdist_msi"}
_PYTHON_TAG = re.compile(r"-(?:py|cp|ip|pp|jy)(\d[\d.]*)", re.IGNORECASE)  # foo-1.0-py3.11.egg


@dataclasses.dataclass(frozen=True)
class ReleaseIdentity:
    """What makes two release files the same file to an installer; not the raw filename.

    `Foo-1.0.tar.gz`, `foo-1.0.0.tar.gz` and `foo-1.0.zip` are one identity (a project's sdist
    of release 1); a wheel is its build tag and its set of compatibility tags (PEP 427).
    """

    project: str  # PEP 503 normalised
    version: str  # canonical (PEP 440): 1.0 == 1.0.0
    kind: str  # "sdist" (.tar.gz and .zip alike) | "wheel" | "legacy"
    build: str = ""  # a wheel's build tag
    tags: frozenset[str] = frozenset()  # a wheel's expanded tags, e.g. {"py3-none-any"}
    legacy_name: str = ""  # a legacy file's name: each one is a file of its own


@dataclasses.dataclass(frozen=True)
class DistFilename:
    """What a distribution's filename says about it."""

    filename: str
    project: str  # normalised
    version: Version
    kind: str  # "wheel" | "sdist" | "legacy" (an egg, a bdist_dumb ... kept by an import)
    build: str = ""
    tags: frozenset[str] = frozenset()

    @property
    def raw_name(self) -> str:
        """The project name as the filename spells it (before normalisation)."""
        if self.kind == "wheel":
            return self.filename.split("-", 1)[0]
        return self.filename.rsplit("-", 1)[0]  # an sdist's version has no '-' (PEP 625)

    @property
    def identity(self) -> ReleaseIdentity:
        version = canonicalize_version(self.version)
        legacy_name = self.filename if self.kind == "legacy" else ""
        return ReleaseIdentity(self.project, version, self.kind, self.build, self.tags, legacy_name)


def check_safe_filename(filename: str) -> str:
    """Refuse names that could escape a directory or confuse a URL."""
    bad = (
        not filename
        or len(filename) > MAX_FILENAME_LENGTH
        or filename.startswith(".")
        or any(char in filename for char in '/\\\x00:?#%"<>')
        or any(ord(char) < 32 for char in filename)
    )
    if bad:
        raise InvalidInput(f"{filename!r} is not an acceptable file name")
    return filename


def parse_dist_filename(filename: str) -> DistFilename:
    """Parse a wheel or sdist filename; raise InvalidInput with the reason if it is neither."""
    check_safe_filename(filename)
    lower = filename.lower()
    try:
        if lower.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            build_tag = "".join(str(part) for part in build)
            expanded = frozenset(str(tag) for tag in tags)
            return DistFilename(filename, str(name), version, "wheel", build_tag, expanded)
        if lower.endswith(SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            return DistFilename(filename, str(name), version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise InvalidInput(f"{filename!r} is not a valid distribution filename: {exc}") from exc
    raise InvalidInput(f"{filename!r} is not a valid archive name: use .whl, .tar.gz or .zip")


def legacy_dist(filename: str, project: str, version: str) -> DistFilename:
    """A stored release file in a format uploads no longer take (LEGACY_FILETYPES), which a
    devpi import keeps: a file of the project and version it was stored under."""
    check_safe_filename(filename)
    return DistFilename(filename, normalize_project(project), parse_version(version), "legacy")


def refuse_legacy_upload(filename: str, filetype: str) -> None:
    """Uploads of eggs and other legacy formats are refused, as on PyPI (PEP 527, PEP 715)."""
    suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
    filetype = filetype or _LEGACY_SUFFIX_FILETYPES.get(suffix, "")
    if filetype in LEGACY_FILETYPES:
        raise InvalidInput(
            f"{filename!r}: uploads of {filetype} files are refused, as on PyPI (PEP 527,"
            " PEP 715); upload a wheel (.whl) or an sdist (.tar.gz)"
        )


def upload_filetype(dist: DistFilename) -> tuple[str, str]:
    """The `filetype` and `pyversion` an upload form gives for a file, as devpi derives them
    (devpi-common's get_pyversion_filetype): what a push to an upload URL sends along."""
    if dist.kind == "wheel":
        return "bdist_wheel", dist.filename[:-4].split("-")[-3]
    if dist.kind == "sdist":
        return "sdist", "source"
    suffix = dist.filename[dist.filename.rfind(".") :].lower()
    filetype = _LEGACY_SUFFIX_FILETYPES.get(suffix, "bdist_dumb")
    tag = _PYTHON_TAG.search(dist.filename) if filetype != "bdist_dumb" else None
    return filetype, tag.group(1).rstrip(".") if tag else "any"


def check_upload_filename(
    filename: str | None, name: str, version: str, filetype: str
) -> DistFilename:
    """An upload's file name, checked before any byte is stored: a distribution's (not a
    legacy kind), ASCII, and naming the project and version the form declares (if any)."""
    if not filename:
        raise InvalidInput("content file field not found")
    refuse_legacy_upload(filename, filetype)
    dist = parse_dist_filename(filename)
    check_project_name(dist.raw_name)
    if not filename.isascii():  # PyPI's rule too; the name goes into reason phrases
        raise InvalidInput(f"file name {filename!a} is not ASCII")
    if name:
        check_project_name(name)
    if version:
        parse_version(version)
    check_matches(dist, name or dist.project, version or str(dist.version))
    return dist


def parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise InvalidInput(f"invalid version {text!r}: not a PEP 440 version") from exc


def same_version(a: Version | str, b: Version | str) -> bool:
    """Release identity as PyPI defines it: 1.0 and 1.0.0 are the same release."""
    return canonicalize_version(str(a)) == canonicalize_version(str(b))


def check_matches(dist: DistFilename, name: str, version: str) -> None:
    """The filename must name the project and version the form (or metadata) claims."""
    if dist.project != normalize_project(name):
        raise InvalidInput(f"filename {dist.filename!r} does not match project name {name!r}")
    if not same_version(dist.version, parse_version(version)):
        raise InvalidInput(f"filename {dist.filename!r} does not contain version {version!r}")


# devpi's stored metadata keys (devpi-protocol.md §9.5) and which of them are lists.
METADATA_KEYS = (
    "name",
    "version",
    "metadata_version",
    "summary",
    "home_page",
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "license",
    "description",
    "keywords",
    "platform",
    "classifiers",
    "download_url",
    "supported_platform",
    "comment",
    "provides",
    "requires",
    "obsoletes",
    "project_urls",
    "provides_dist",
    "obsoletes_dist",
    "requires_dist",
    "requires_external",
    "requires_python",
    "description_content_type",
    "provides_extras",
    "dynamic",
    "license_expression",
    "license_file",
)
LIST_KEYS = frozenset(
    {
        "platform",
        "classifiers",
        "supported_platform",
        "provides",
        "requires",
        "obsoletes",
        "project_urls",
        "provides_dist",
        "obsoletes_dist",
        "requires_dist",
        "requires_external",
        "provides_extras",
        "dynamic",
        "license_file",
    }
)
# Where packaging's RawMetadata field names differ from devpi's.
_RAW_TO_DEVPI = {
    "platforms": "platform",
    "supported_platforms": "supported_platform",
    "provides_extra": "provides_extras",
    "license_files": "license_file",
}
# Form field spellings clients send that devpi stores under another key.
FORM_ALIASES = {
    "platforms": "platform",
    "supported_platforms": "supported_platform",
    "provides_extra": "provides_extras",
}


@dataclasses.dataclass(frozen=True)
class CoreMetadata:
    """A distribution's parsed core metadata, in devpi's key names."""

    name: str
    version: str
    fields: dict[str, Any]


def parse_core_metadata(data: bytes, filename: str) -> CoreMetadata:
    """Parse METADATA / PKG-INFO bytes; raise InvalidInput when name or version is unusable."""
    raw, _unparsed = parse_email(data)
    name = raw.get("name")
    version = raw.get("version")
    if not name or not version:
        raise InvalidInput(f"the metadata in {filename!r} lacks a Name or a Version")
    metadata_version = raw.get("metadata_version", "")
    if metadata_version and not metadata_version.startswith(("1.", "2.")):
        raise InvalidInput(f"{filename!r}: unsupported Metadata-Version {metadata_version!r}")
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        target = _RAW_TO_DEVPI.get(key, key)
        if target not in METADATA_KEYS:
            continue
        fields[target] = _devpi_value(target, value)
    return CoreMetadata(name=name, version=version, fields=fields)


def _devpi_value(key: str, value: Any) -> Any:
    if key == "project_urls" and isinstance(value, Mapping):
        return [f"{label}, {url}" for label, url in value.items()]
    if key == "keywords" and isinstance(value, list):
        return ",".join(value)
    if key in LIST_KEYS:
        return list(value) if isinstance(value, list | tuple) else [value]
    return value


def complete_metadata(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A full devpi record: every key present, '' or [] when unknown, UNKNOWN dropped."""
    record: dict[str, Any] = {}
    for key in METADATA_KEYS:
        value = fields.get(key)
        if key in LIST_KEYS:
            items = value if isinstance(value, list) else ([value] if value else [])
            record[key] = [item for item in items if item and item != "UNKNOWN"]
        else:
            record[key] = "" if value in (None, "UNKNOWN") else value
    return record


def http_date(timestamp: float) -> str:
    """RFC 1123 date, as devpi's `last_modified`."""
    return email.utils.formatdate(timestamp, usegmt=True)
