"""OSV advisories for the PyPI ecosystem: reading a record, which versions it names, and
whether an index refuses a version because of it.

A `MAL-` advisory names a malicious package: its versions are quarantined on every index.
Other advisories are known vulnerabilities, shown beside the version; an index's
`advisories_block_severity` refuses the versions whose advisories reach that severity.

Severity is kept simple: the record's `database_specific.severity` (GitHub's CRITICAL / HIGH /
MODERATE / LOW, also per affected package), else a plain numeric CVSS score in `severity[]`
(9.0+ critical, 7.0+ high, 4.0+ moderate, above 0 low). A CVSS vector alone gives no severity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any

from packaging.version import InvalidVersion, Version

from packyard.core.names import normalize_project
from packyard.errors import InvalidInput

ECOSYSTEM = "PyPI"
MALICIOUS_PREFIX = "MAL-"
MAX_SUMMARY = 500  # characters kept of a summary
MAX_VERSIONS = 10_000  # versions listed by one affected entry


class Severity(IntEnum):
    LOW = 1
    MODERATE = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name


_NAMES = {"LOW": Severity.LOW, "MODERATE": Severity.MODERATE, "MEDIUM": Severity.MODERATE,
          "HIGH": Severity.HIGH, "CRITICAL": Severity.CRITICAL}  # fmt: skip


def parse_severity(text: object) -> Severity | None:
    """A severity name (case-insensitive; MEDIUM means MODERATE), None for none/empty."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "none")):
        return None
    if isinstance(text, str) and text.strip().upper() in _NAMES:
        return _NAMES[text.strip().upper()]
    raise InvalidInput(f"unknown severity {text!r}: use one of {', '.join(_NAMES)} or none")


Event = tuple[str, str]  # ("introduced" | "fixed" | "last_affected", version)


@dataclasses.dataclass(frozen=True)
class Advisory:
    """One advisory as it concerns one project."""

    id: str
    project: str  # PEP 503 normalised
    summary: str
    severity: Severity | None
    versions: tuple[str, ...] = ()
    ranges: tuple[tuple[Event, ...], ...] = ()

    @property
    def malicious(self) -> bool:
        return self.id.startswith(MALICIOUS_PREFIX)

    @property
    def label(self) -> str:
        """The id with its severity, as messages and pages show it."""
        if self.malicious:
            return f"{self.id} (malicious)"
        return f"{self.id} ({self.severity.label})" if self.severity else self.id

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "project": self.project, "summary": self.summary,
            "severity": self.severity.label if self.severity else None,
            "versions": list(self.versions), "ranges": [list(map(list, r)) for r in self.ranges],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Advisory:
        return cls(
            id=data["id"], project=data["project"], summary=data["summary"],
            severity=parse_severity(data["severity"]), versions=tuple(data["versions"]),
            ranges=tuple(tuple((kind, ver) for kind, ver in r) for r in data["ranges"]),
        )  # fmt: skip


def parse_record(record: object) -> list[Advisory]:
    """The advisories an OSV record makes, one per PyPI package it names (none when it is
    withdrawn); InvalidInput when it is not an OSV record."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise InvalidInput("not an OSV record: a JSON object with an `id` is expected")
    if record.get("withdrawn"):
        return []
    affected = record.get("affected") or []
    if not isinstance(affected, list):
        raise InvalidInput(f"{record['id']}: `affected` must be a list")
    summary = str(record.get("summary") or record.get("details") or "")[:MAX_SUMMARY]
    found = []
    for entry in affected:
        advisory = _affected(record, entry, summary)
        if advisory is not None:
            found.append(advisory)
    return found


def _affected(record: dict[str, Any], entry: object, summary: str) -> Advisory | None:
    if not isinstance(entry, dict):
        raise InvalidInput(f"{record['id']}: each `affected` entry must be an object")
    package = entry.get("package") or {}
    if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
        return None
    name, versions = package.get("name"), entry.get("versions") or []
    if not isinstance(name, str) or not name or not isinstance(versions, list):
        raise InvalidInput(f"{record['id']}: a package name and a list of versions expected")
    if len(versions) > MAX_VERSIONS:
        raise InvalidInput(f"{record['id']}: more than {MAX_VERSIONS} versions listed")
    return Advisory(
        id=record["id"], project=normalize_project(name), summary=summary,
        severity=_severity(record, entry), versions=tuple(str(v) for v in versions),
        ranges=_ranges(record["id"], entry.get("ranges") or []),
    )  # fmt: skip


def _ranges(advisory_id: str, ranges: object) -> tuple[tuple[Event, ...], ...]:
    if not isinstance(ranges, list):
        raise InvalidInput(f"{advisory_id}: `ranges` must be a list")
    kept = []
    for item in ranges:
        if not isinstance(item, dict) or item.get("type") != "ECOSYSTEM":
            continue  # GIT and SEMVER ranges do not name PyPI versions
        events = item.get("events") or []
        if not isinstance(events, list):
            raise InvalidInput(f"{advisory_id}: `events` must be a list")
        kept.append(tuple(_event(advisory_id, event) for event in events))
    return tuple(kept)


def _event(advisory_id: str, event: object) -> Event:
    if isinstance(event, dict) and len(event) == 1:
        [(kind, version)] = event.items()
        if kind in ("introduced", "fixed", "last_affected", "limit") and isinstance(version, str):
            return (kind, version)
    raise InvalidInput(f"{advisory_id}: an event is one of introduced/fixed/last_affected")


def _severity(record: dict[str, Any], entry: dict[str, Any]) -> Severity | None:
    for holder in (entry.get("database_specific"), record.get("database_specific")):
        if isinstance(holder, dict) and isinstance(holder.get("severity"), str):
            try:
                return parse_severity(holder["severity"])
            except InvalidInput:
                pass  # an unknown word: try the CVSS score
    scores = record.get("severity") or []
    for score in scores if isinstance(scores, list) else []:
        value = score.get("score") if isinstance(score, dict) else None
        try:
            return _from_cvss(float(value)) if value is not None else None
        except ValueError:
            continue  # a CVSS vector: no severity without computing it
    return None


def _from_cvss(score: float) -> Severity | None:
    bounds = ((9.0, Severity.CRITICAL), (7.0, Severity.HIGH), (4.0, Severity.MODERATE))
    for bound, severity in bounds:
        if score >= bound:
            return severity
    return Severity.LOW if score > 0 else None


# --- which versions an advisory names ----------------------------------------------------------


def affects(advisory: Advisory, version: str) -> bool:
    """Is `version` listed by the advisory, or inside one of its ECOSYSTEM ranges?"""
    parsed = _version(version)
    if version in advisory.versions or (
        parsed is not None and any(_version(v) == parsed for v in advisory.versions)
    ):
        return True
    return parsed is not None and any(_in_range(events, parsed) for events in advisory.ranges)


def _in_range(events: tuple[Event, ...], version: Version) -> bool:
    """OSV's evaluation: walk the events in version order; introduced opens, fixed closes
    (at it), last_affected closes (after it)."""
    affected = False
    for kind, text in sorted(events, key=_event_order):
        bound = Version("0") if text == "0" else _version(text)
        if bound is None:
            continue
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind in ("fixed", "limit") and version >= bound) or (
            kind == "last_affected" and version > bound
        ):
            affected = False
    return affected


def _event_order(event: Event) -> tuple[Version, int]:
    kind, text = event
    bound = Version("0") if text == "0" else _version(text) or Version("0")
    return (bound, 0 if kind == "introduced" else 1)


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


# --- what an index does with them ----------------------------------------------------------------


def naming(advisories: Iterable[Advisory], version: str) -> list[Advisory]:
    """The advisories that name `version`, malicious ones first."""
    hits = [advisory for advisory in advisories if affects(advisory, version)]
    return sorted(hits, key=lambda a: (not a.malicious, -(a.severity or 0), a.id))


def refusal(
    advisories: Iterable[Advisory], project: str, version: str, block: Severity | None
) -> str | None:
    """Why the index refuses `version` of `project`, or None: a malicious-package advisory
    always; others when they reach the index's `advisories_block_severity`."""
    hits = naming(advisories, version)
    malicious = [a.id for a in hits if a.malicious]
    if malicious:
        return (
            f"{project} {version} is quarantined: named by the malicious-package advisory"
            f" {', '.join(malicious)}."
        )
    if block is None:
        return None
    reaching = [a.label for a in hits if a.severity is not None and a.severity >= block]
    if reaching:
        return (
            f"{project} {version} is blocked by advisory {', '.join(reaching)}: this index"
            f" refuses versions with advisories of severity {block.label} or above."
        )
    return None
