"""Serve-time holds on mirrored releases: a cooldown after the upstream's upload time, a
cut-off date (`mirror_exclude_newer`), and exemptions that break the glass.

Pure: callers pass what the mirror's stored page says and the clock's reading. The judgement
is split in two so it can be cached: `judge` (time-independent: which versions would be held,
and until when) and `Holds.held_at(now)` (which of those hold now, exemptions applied).

A whole version is held when its NEWEST file is too young (not file by file): a resolver picks
a version first and a file second, so hiding single files would let a platform whose file is
held fall back to another file of the same, young, version (an sdist it then builds), and
different platforms would resolve different things; and a file added late to an old release
(a known way to slip in a malicious wheel) holds that release back too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from packyard.errors import InvalidInput

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# No cooldown is longer than ten years (a typo like `7000d` still fits).
MAX_COOLDOWN = 10 * 365 * 86400
UNKNOWN_CHOICES = ("hold", "allow")


def parse_duration(value: object) -> int:
    """Seconds from `7d`, `12h`, `90m`, `30s`, `2w` or a plain number of seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"mirror_cooldown must be a duration like 7d, 12h or 90m, not {value!r}")
    match = _DURATION.match(str(value))
    if match is None:
        raise InvalidInput(
            f"mirror_cooldown must be a duration like 7d, 12h, 90m or a number of seconds,"
            f" not {value!r}"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds > MAX_COOLDOWN:
        raise InvalidInput(f"mirror_cooldown {value!r} is longer than ten years")
    return seconds


def parse_moment(value: object, key: str = "mirror_exclude_newer") -> datetime:
    """A UTC instant from an ISO date (`2026-11-01`: its midnight) or datetime; a datetime
    without a zone is UTC."""
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"{key} must be an ISO date or date and time in UTC (2026-11-01 or"
            f" 2026-11-01T12:00:00Z), not {value!r}"
        ) from exc
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def moment_text(moment: datetime) -> str:
    """An instant as people read it in messages: `2026-12-07T10:00Z` (seconds when set)."""
    moment = moment.astimezone(UTC)
    if moment.second or moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def duration_text(seconds: int) -> str:
    """`7-day`, `12-hour`, `90-minute`, `45-second`: the largest unit that divides evenly."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return f"{seconds // size}-{unit}"
    return f"{seconds}-second"


@dataclasses.dataclass(frozen=True)
class CooldownPolicy:
    """What a mirror index holds back (its settings, parsed)."""

    index: str  # the mirror's full name, for messages
    cooldown: int = 0  # seconds after the upstream's upload time; 0: none
    exclude_newer: datetime | None = None
    hold_unknown: bool = True  # a file without an upstream upload time is held

    @property
    def active(self) -> bool:
        return self.cooldown > 0 or self.exclude_newer is not None


@dataclasses.dataclass(frozen=True)
class Hold:
    """Why a version is held back, and until when (None: until the settings change)."""

    version: str
    reason: str  # a sentence for people, naming the index and the rule
    until: datetime | None

    def holds_at(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclasses.dataclass(frozen=True)
class Exemption:
    """A break-glass allowance: a project (every version) or one version, maybe expiring."""

    project: str  # normalised
    version: str | None  # None: every version
    reason: str
    expires: datetime | None = None
    created_by: str = ""
    created: datetime | None = None
    id: int = 0

    def covers(self, version: str, now: datetime) -> bool:
        unexpired = self.expires is None or now < self.expires
        return unexpired and (self.version is None or self.version == version)


@dataclasses.dataclass(frozen=True)
class Holds:
    """The time-independent judgement of one project on one mirror; `held_at` applies now."""

    candidates: Mapping[str, Hold]  # version -> the hold it has (maybe already over)
    exemptions: tuple[Exemption, ...] = ()

    def held_at(self, now: datetime) -> dict[str, Hold]:
        """The versions held back at `now`."""
        return {
            version: hold
            for version, hold in self.candidates.items()
            if hold.holds_at(now) and not any(e.covers(version, now) for e in self.exemptions)
        }

    def changes_after(self, now: datetime) -> datetime | None:
        """The next instant after `now` at which `held_at` may answer differently."""
        instants = [h.until for h in self.candidates.values() if h.until and h.until > now]
        instants += [e.expires for e in self.exemptions if e.expires and e.expires > now]
        return min(instants, default=None)


NO_HOLDS = Holds({})


def judge(
    policy: CooldownPolicy,
    upload_times: Mapping[str, Sequence[datetime | None]],
    exemptions: Iterable[Exemption] = (),
) -> Holds:
    """The holds `policy` puts on each version, from its files' upstream upload times
    (None: the upstream gave none)."""
    if not policy.active:
        return NO_HOLDS
    candidates = {}
    for version, times in upload_times.items():
        hold = _hold_of(policy, version, times)
        if hold is not None:
            candidates[version] = hold
    return Holds(candidates, tuple(exemptions))


def _hold_of(policy: CooldownPolicy, version: str, times: Sequence[datetime | None]) -> Hold | None:
    if policy.hold_unknown and any(moment is None for moment in times):
        reason = (
            f"held back by {policy.index}: its upstream gave no upload time for a file of"
            f" this version (mirror_cooldown_unknown=hold)"
        )
        return Hold(version, reason, None)
    known = [moment for moment in times if moment is not None]
    if not known:
        return None
    newest = max(known)
    if policy.exclude_newer is not None and newest > policy.exclude_newer:
        reason = (
            f"held back by {policy.index}'s mirror_exclude_newer"
            f" {moment_text(policy.exclude_newer)} (uploaded {moment_text(newest)})"
        )
        return Hold(version, reason, None)
    if policy.cooldown:
        until = newest + timedelta(seconds=policy.cooldown)
        reason = (
            f"held back by {policy.index}'s {duration_text(policy.cooldown)} cooldown"
            f" until {moment_text(until)}"
        )
        return Hold(version, reason, until)
    return None
