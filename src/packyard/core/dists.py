"""Distribution filenames and core metadata: what an upload must look like (PEP 427, 625, 440)."""

from __future__ import annotations

import dataclasses
import email.utils
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

from packyard.core.names import normalize_project
from packyard.errors import InvalidInput

SDIST_SUFFIXES = (".tar.gz", ".zip")
MAX_FILENAME_LENGTH = 255


@dataclasses.dataclass(frozen=True)
class DistFilename:
    """What a distribution's filename says about it."""

    filename: str
    project: str  # normalised
    version: Version
    kind: str  # "wheel" | "sdist"


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
            name, version, _build, _tags = parse_wheel_filename(filename)
            return DistFilename(filename, str(name), version, "wheel")
        if lower.endswith(SDIST_SUFFIXES):
            name, version = parse_sdist_filename(filename)
            return DistFilename(filename, str(name), version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
        raise InvalidInput(f"{filename!r} is not a valid distribution filename: {exc}") from exc
    raise InvalidInput(f"{filename!r} is not a valid archive name: use .whl, .tar.gz or .zip")


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
