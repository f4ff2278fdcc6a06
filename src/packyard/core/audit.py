"""The audit trail's rules, pure: who acted, what a write is called, what its entry shows,
and who may read it. Storage records an entry in the transaction of every change
(`storage.db.Database.write`); see docs/decisions.md for why it is recorded there."""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Mapping
from typing import Any

from packyard.core import acl
from packyard.core.redact import url_without_password
from packyard.errors import InvalidInput

# Actors that are no user: the server's own work, and a change made by nobody logged in.
SERVER = "(server)"
ANONYMOUS = "(anonymous)"

# Writes that change nothing anyone decided: cache fills of mirrors and bookkeeping. Every
# other write is recorded (a new kind of write is recorded unless it is added here).
UNRECORDED = frozenset(
    {
        "mirror-page",
        "mirror-file",
        "mirror-revalidate",
        "mirror-list",
        "user-rehash",  # the same password, hashed anew on login
        "server-uuid",
    }
)

# A write's action name where it is not its unit-of-work name with '-' read as '.'.
ACTION_NAMES = {
    "delete-version": "version.delete",
    "delete-project": "project.delete",
    "delete-file": "file.delete",
    "fsck-drop-cached": "fsck.repair",
    "fsck-orphans": "fsck.repair",
    "mirror-drop": "mirror.drop-cache",
}

# Detail keys that name the entry's target; they become its columns, not detail.
TARGET_KEYS = {"index": "index", "project": "project", "version": "version", "file": "filename"}

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who a change is made for, and from where: set by the web layer per request (or by a
    CLI command); `token` is the id of the API token used, when one was."""

    user: str | None = None  # None: nobody logged in
    token: str | None = None
    address: str | None = None

    @property
    def name(self) -> str:
        return self.user if self.user is not None else ANONYMOUS


SERVER_ACTOR = Actor(user=SERVER)


def command_actor(command: str) -> Actor:
    """A change made by a CLI command on the server machine, e.g. `(packyard import)`."""
    return Actor(user=f"(packyard {command})")


def action_of(what: str) -> str | None:
    """The audit action of a unit-of-work write, or None for one that is not recorded."""
    if what in UNRECORDED:
        return None
    return ACTION_NAMES.get(what, what.replace("-", "."))


@dataclasses.dataclass(frozen=True)
class Entry:
    """One recorded change."""

    id: int
    serial: int  # the change serial of its write (0 for entries imported from elsewhere)
    at: float  # seconds since the epoch (UTC)
    user: str
    token: str | None
    address: str | None
    action: str
    index: str | None
    project: str | None
    version: str | None
    filename: str | None
    detail: Mapping[str, Any]

    def view(self) -> dict[str, Any]:
        """The entry as the API shows it (and the export keeps it)."""
        view = dataclasses.asdict(self)
        view["detail"] = dict(self.detail)
        view["time"] = iso_time(self.at)
        return view

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> Entry:
        """An entry read back from an export; InvalidInput when it is not one."""
        try:
            return cls(
                id=0,
                serial=int(view.get("serial") or 0),
                at=float(view["at"]),
                user=str(view["user"]),
                token=_optional(view.get("token")),
                address=_optional(view.get("address")),
                action=str(view["action"]),
                index=_optional(view.get("index")),
                project=_optional(view.get("project")),
                version=_optional(view.get("version")),
                filename=_optional(view.get("filename")),
                detail=dict(view.get("detail") or {}),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not an audit entry: {str(view)[:200]}") from exc


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def new_entry(
    serial: int, at: float, actor: Actor, action: str, detail: Mapping[str, Any]
) -> Entry:
    """The entry of a write: its target from the write's detail, the rest as detail."""
    target = {column: detail.get(key) for key, column in TARGET_KEYS.items()}
    rest = {key: value for key, value in detail.items() if key not in TARGET_KEYS}
    return Entry(
        id=0,
        serial=serial,
        at=at,
        user=actor.name,
        token=actor.token,
        address=actor.address,
        action=action,
        index=_optional(target["index"]),
        project=_optional(target["project"]),
        version=_optional(target["version"]),
        filename=_optional(target["filename"]),
        detail=redacted(rest),
    )


# --- what a detail may show --------------------------------------------------------------------


SECRET_KEYS = frozenset({"password", "pwhash", "pwsalt", "token", "secret", "token_stamp"})


def redacted(value: Any) -> Any:
    """`value` with secrets left out: credential keys dropped, the password of any URL
    replaced by `***` (a mirror_url may carry one)."""
    if isinstance(value, Mapping):
        return {
            str(key): redacted(item)
            for key, item in value.items()
            if str(key).lower() not in SECRET_KEYS
        }
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return url_without_password(value)
    return value


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """key -> {"old", "new"} for every setting that differs (None where absent)."""
    keys = sorted(set(old) | set(new))
    return {
        key: {"old": redacted(old.get(key)), "new": redacted(new.get(key))}
        for key in keys
        if old.get(key) != new.get(key)
    }


# --- reading the trail -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Query:
    """A filtered, bounded read of the trail; `oldest_first` else newest first."""

    user: str | None = None
    index: str | None = None
    since: float | None = None  # at or after
    until: float | None = None  # before
    limit: int = DEFAULT_LIMIT
    oldest_first: bool = False


def parse_query(params: Mapping[str, str]) -> Query:
    """A Query from request parameters; InvalidInput (400) saying what is wrong."""
    unknown = sorted(set(params) - {"user", "index", "since", "until", "limit", "order"})
    if unknown:
        raise InvalidInput(
            f"unknown audit parameter(s): {', '.join(unknown)}"
            " (known: user, index, since, until, limit, order)"
        )
    order = params.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise InvalidInput("order must be 'newest' or 'oldest'")
    return Query(
        user=params.get("user") or None,
        index=(params.get("index") or "").strip("/") or None,
        since=parse_time(params["since"], "since") if params.get("since") else None,
        until=parse_time(params["until"], "until") if params.get("until") else None,
        limit=parse_limit(params.get("limit")),
        oldest_first=order == "oldest",
    )


def parse_limit(text: str | None) -> int:
    if not text:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError as exc:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def parse_time(text: str, name: str) -> float:
    """Seconds since the epoch from an ISO 8601 date or time (UTC unless it says otherwise)
    or a number of seconds since the epoch."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"{name} must be an ISO 8601 date or time (2024-05-01, 2024-05-01T12:00:00Z)"
            " or seconds since the epoch"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def iso_time(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def may_read(viewer: str | None, query: Query, index_owner: str | None) -> bool:
    """Root reads the whole trail; an index's owner reads what happened to that index (the
    query names it: `index_owner` is its owner); nobody else reads any of it."""
    if viewer == acl.ROOT:
        return True
    return viewer is not None and query.index is not None and viewer == index_owner
