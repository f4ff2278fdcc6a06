"""Index configuration: devpi's keys, defaults and value normalisation (devpi-protocol.md §5).

Two forms: the wire form (a dict with devpi's keys, stored and sent as JSON), edited by
`new_config`, `updated_config` and `apply_operations`; and the typed form (`StageConfig`,
`MirrorConfig`), parsed once per stored record by `parse`, which is what the rest of the code
reads instead of looking up keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Literal

from packyard.core.acl import ANONYMOUS, normalize_principal
from packyard.core.advisories import Severity, parse_severity
from packyard.core.cooldown import (
    UNKNOWN_CHOICES,
    CooldownPolicy,
    moment_text,
    parse_duration,
    parse_moment,
)
from packyard.core.names import normalize_project, split_index_name
from packyard.errors import InvalidInput


class IndexType(StrEnum):
    """devpi's index kinds: a private stage, or a caching mirror of an upstream index."""

    STAGE = "stage"
    MIRROR = "mirror"


class InheritanceMode(StrEnum):
    """How the mirror whitelists of an index's bases combine (devpi-protocol.md §6)."""

    INTERSECTION = "intersection"
    UNION = "union"


STAGE = IndexType.STAGE
MIRROR = IndexType.MIRROR
INHERITANCE_MODES = tuple(InheritanceMode)


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """A private index: uploads by `acl_upload`, files inherited from `bases`."""

    type: ClassVar[Literal[IndexType.STAGE]] = IndexType.STAGE
    is_mirror: ClassVar[bool] = False
    # Why uploads (404) and deletes or yanks (403) are refused whoever asks: never here.
    upload_refusal: ClassVar[str | None] = None
    edit_refusal: ClassVar[str | None] = None
    # Why exemptions from a cooldown are refused here: a stage has no cooldown of its own.
    exemption_refusal: ClassVar[str | None] = (
        "is not a mirror index: exemptions allow past a mirror's cooldown, set them on the mirror"
    )
    # Why nobody sets a project's PEP 792 status here (403): never on a stage.
    status_refusal: ClassVar[str | None] = None
    volatile: bool = True
    title: str = ""
    description: str = ""
    bases: tuple[str, ...] = ()
    acl_upload: tuple[str, ...] = ()
    acl_toxresult_upload: tuple[str, ...] = (ANONYMOUS,)
    # Who may read the index (core/acl.py `may_read_index`); a config without it: everyone.
    acl_read: tuple[str, ...] = (ANONYMOUS,)
    mirror_whitelist: tuple[str, ...] = ()
    # A stored config without the key is devpi's older behaviour: union.
    mirror_whitelist_inheritance: InheritanceMode = InheritanceMode.UNION
    # Versions whose advisories reach this severity are refused (None: only MAL- ones).
    advisories_block_severity: Severity | None = None


@dataclasses.dataclass(frozen=True)
class MirrorConfig:
    """A caching mirror of `mirror_url`; nobody uploads to it and it has no bases."""

    type: ClassVar[Literal[IndexType.MIRROR]] = IndexType.MIRROR
    is_mirror: ClassVar[bool] = True
    # devpi's words (its client matches on them); asked before who the caller is.
    upload_refusal: ClassVar[str | None] = "cannot submit to mirror index"
    edit_refusal: ClassVar[str | None] = "deleting from a mirror index is not supported yet"
    exemption_refusal: ClassVar[str | None] = None
    status_refusal: ClassVar[str | None] = "a mirror passes its upstream's project status through"
    mirror_url: str
    volatile: bool = True
    title: str = ""
    description: str = ""
    # Seconds a fetched page stays fresh; None: the server's setting.
    mirror_cache_expiry: int | None = None
    mirror_no_project_list: bool = False
    mirror_ignore_serial_header: bool = False
    mirror_use_external_urls: bool = False
    mirror_provides_core_metadata: bool = False
    mirror_web_url_fmt: str = ""
    acl_read: tuple[str, ...] = (ANONYMOUS,)
    # Serve-time holds (core/cooldown.py): seconds a version must have aged upstream, a
    # cut-off instant (ISO text), and whether a file without an upload time is held.
    mirror_cooldown: int = 0
    mirror_exclude_newer: str = ""
    mirror_cooldown_unknown: str = "hold"
    advisories_block_severity: Severity | None = None
    bases: ClassVar[tuple[str, ...]] = ()
    acl_upload: ClassVar[tuple[str, ...]] = ()
    acl_toxresult_upload: ClassVar[tuple[str, ...]] = ()


IndexConfig = StageConfig | MirrorConfig


def cooldown_policy(index: str, config: IndexConfig) -> CooldownPolicy:
    """What `index` holds back of what it contributes itself (a stage: nothing; it inherits
    its mirrors' holds through what they contribute)."""
    if not isinstance(config, MirrorConfig):
        return CooldownPolicy(index)
    cutoff = config.mirror_exclude_newer
    return CooldownPolicy(
        index,
        cooldown=config.mirror_cooldown,
        exclude_newer=parse_moment(cutoff) if cutoff else None,
        hold_unknown=config.mirror_cooldown_unknown != "allow",
    )


def parse(config: Mapping[str, Any]) -> IndexConfig:
    """The typed form of a stored (already normalised) config dict."""
    if config.get("type") == MIRROR:
        expiry = config.get("mirror_cache_expiry")
        return MirrorConfig(
            mirror_url=str(config.get("mirror_url") or ""),
            volatile=bool(config.get("volatile", True)),
            title=str(config.get("title") or ""),
            description=str(config.get("description") or ""),
            mirror_cache_expiry=None if expiry is None else int(expiry),
            mirror_no_project_list=bool(config.get("mirror_no_project_list")),
            mirror_ignore_serial_header=bool(config.get("mirror_ignore_serial_header")),
            mirror_use_external_urls=bool(config.get("mirror_use_external_urls")),
            mirror_provides_core_metadata=bool(config.get("mirror_provides_core_metadata")),
            mirror_web_url_fmt=str(config.get("mirror_web_url_fmt") or ""),
            acl_read=_acl_read(config),
            mirror_cooldown=int(config.get("mirror_cooldown") or 0),
            mirror_exclude_newer=str(config.get("mirror_exclude_newer") or ""),
            mirror_cooldown_unknown=str(config.get("mirror_cooldown_unknown") or "hold"),
            advisories_block_severity=parse_severity(config.get("advisories_block_severity")),
        )
    return StageConfig(
        volatile=bool(config.get("volatile", True)),
        title=str(config.get("title") or ""),
        description=str(config.get("description") or ""),
        bases=tuple(config.get("bases") or ()),
        acl_upload=tuple(config.get("acl_upload") or ()),
        acl_toxresult_upload=tuple(config.get("acl_toxresult_upload", (ANONYMOUS,)) or ()),
        acl_read=_acl_read(config),
        mirror_whitelist=tuple(config.get("mirror_whitelist") or ()),
        mirror_whitelist_inheritance=InheritanceMode(
            config.get("mirror_whitelist_inheritance") or InheritanceMode.UNION
        ),
        advisories_block_severity=parse_severity(config.get("advisories_block_severity")),
    )


def _acl_read(config: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(config.get("acl_read", (ANONYMOUS,)) or ())


COMMON_KEYS = frozenset(
    {"type", "volatile", "title", "description", "custom_data", "acl_read",
     "advisories_block_severity"}
)  # fmt: skip
STAGE_KEYS = COMMON_KEYS | {
    "bases",
    "acl_upload",
    "acl_toxresult_upload",
    "mirror_whitelist",
    "mirror_whitelist_inheritance",
}
MIRROR_KEYS = COMMON_KEYS | {
    "mirror_url",
    "mirror_cache_expiry",
    "mirror_web_url_fmt",
    "mirror_no_project_list",
    "mirror_use_external_urls",
    "mirror_ignore_serial_header",
    "mirror_provides_core_metadata",
    "mirror_cooldown",
    "mirror_exclude_newer",
    "mirror_cooldown_unknown",
}
KEYS = {STAGE: STAGE_KEYS, MIRROR: MIRROR_KEYS}


def keys_of(config: IndexConfig) -> frozenset[str]:
    """The configuration keys an index of this kind has."""
    return KEYS[config.type]


# Keys mirrors silently drop (old exports carry them).
MIRROR_DROPPED = frozenset(
    {
        "bases",
        "acl_upload",
        "acl_toxresult_upload",
        "mirror_whitelist",
        "mirror_whitelist_inheritance",
    }
)
LIST_KEYS = frozenset(
    {"bases", "acl_upload", "acl_toxresult_upload", "acl_read", "mirror_whitelist"}
)
BOOL_KEYS = frozenset(
    {
        "volatile",
        "mirror_no_project_list",
        "mirror_use_external_urls",
        "mirror_ignore_serial_header",
        "mirror_provides_core_metadata",
    }
)
# Read-only keys clients echo back in full-dict PATCH bodies.
OUTPUT_ONLY = frozenset({"projects"})


def defaults(index_type: str, owner: str, mirror_cache_expiry: int = 1800) -> dict[str, Any]:
    if index_type == STAGE:
        return {
            "type": STAGE,
            "bases": [],
            "volatile": True,
            "acl_upload": [owner],
            "acl_toxresult_upload": [":ANONYMOUS:"],
            "acl_read": [ANONYMOUS],
            "mirror_whitelist": [],
            "mirror_whitelist_inheritance": "intersection",
        }
    if index_type == MIRROR:
        return {
            "type": MIRROR,
            "volatile": True,
            "mirror_cache_expiry": mirror_cache_expiry,
            "acl_read": [ANONYMOUS],
        }
    raise InvalidInput(f"unknown index type {index_type!r}")


def new_config(
    owner: str, given: Mapping[str, Any], mirror_cache_expiry: int = 1800
) -> dict[str, Any]:
    """Config for a new index: defaults for its type, overlaid with normalised `given` values."""
    index_type = str(given.get("type") or STAGE)
    config = defaults(index_type, owner, mirror_cache_expiry)
    config.update(normalize_values(index_type, given))
    return validate(config)


def updated_config(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a full or partial config dict to `current`; `type` cannot change."""
    changes = {key: value for key, value in changes.items() if key not in OUTPUT_ONLY}
    index_type = current["type"]
    if "type" in changes and changes["type"] != index_type:
        raise InvalidInput("the 'type' of an index can't be changed")
    config = dict(current)
    config.update(normalize_values(index_type, changes))
    return validate(config)


def apply_operations(
    current: Mapping[str, Any], operations: list[str], owner: str
) -> dict[str, Any]:
    """Apply devpi's key-value operations: `k=v`, `k+=v`, `k-=v`, `k-=` (remove the key)."""
    index_type = current["type"]
    config: dict[str, Any] = dict(current)
    base_defaults = defaults(index_type, owner)
    for operation in operations:
        key, op, value = _split_operation(operation)
        if op == "=":
            config.update(normalize_values(index_type, {key: value}))
        elif op == "+=":
            items = list(config.get(key) or [])
            for item in normalize_values(index_type, {key: value})[key]:
                if item not in items:
                    items.append(item)
            config[key] = items
        elif value == "":
            if key in base_defaults:
                raise InvalidInput("Default values can't be removed.")
            config.pop(key, None)
        else:
            items = list(config.get(key) or [])
            for item in normalize_values(index_type, {key: value})[key]:
                if item not in items:
                    raise InvalidInput(f"The '{key}' setting doesn't have value '{value}'")
                items.remove(item)
            config[key] = items
    if config["type"] != index_type:
        raise InvalidInput("the 'type' of an index can't be changed")
    return validate(config)


def _split_operation(operation: str) -> tuple[str, str, str]:
    key, sep, value = operation.partition("=")
    if not sep or not key:
        raise InvalidInput(
            f"invalid setting {operation!r}: use key=value, key+=value or key-=value"
        )
    if key.endswith(("+", "-")):
        return key[:-1], key[-1] + "=", value
    return key, "=", value


def normalize_values(index_type: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise values that may arrive as strings (`volatile=True`, `bases=a/b,c/d`)."""
    allowed = STAGE_KEYS if index_type == STAGE else MIRROR_KEYS
    unknown = [
        key
        for key in given
        if key not in allowed and not (index_type == MIRROR and key in MIRROR_DROPPED)
    ]
    if unknown:
        pairs = ", ".join(f"{key}={given[key]}" for key in unknown)
        raise InvalidInput(f"indexconfig got unexpected keyword arguments: {pairs}")
    result: dict[str, Any] = {}
    for key, value in given.items():
        if index_type == MIRROR and key in MIRROR_DROPPED:
            continue
        result[key] = _normalize_value(key, value)
    return result


def _normalize_value(key: str, value: Any) -> Any:
    if key in LIST_KEYS:
        items = _as_list(value)
        if key == "bases":
            for base in items:
                split_index_name(base)
            return items
        if key == "mirror_whitelist":
            return [item if item == "*" else normalize_project(item) for item in items]
        return [normalize_principal(item) for item in items]
    if key in BOOL_KEYS:
        return _as_bool(key, value)
    if key == "mirror_cache_expiry":
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"mirror_cache_expiry must be a number, not {value!r}") from exc
    if key in _COOLDOWN_KEYS:
        return _COOLDOWN_KEYS[key](value)
    if key == "mirror_whitelist_inheritance":
        if value not in INHERITANCE_MODES:
            raise InvalidInput(
                f"mirror_whitelist_inheritance must be one of {', '.join(INHERITANCE_MODES)}"
            )
        return value
    if key == "mirror_url":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise InvalidInput(f"mirror_url must start with http:// or https://, not {value!r}")
        return value
    if key == "advisories_block_severity":
        severity = parse_severity(value)  # InvalidInput names the allowed words
        return severity.label if severity else None
    if key in ("title", "description", "mirror_web_url_fmt", "type"):
        return "" if value is None else str(value)
    return value


def _cooldown_unknown(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in UNKNOWN_CHOICES:
        raise InvalidInput(f"mirror_cooldown_unknown must be hold or allow, not {value!r}")
    return text


def _exclude_newer(value: Any) -> str:
    """Stored as canonical UTC text; empty: no cut-off."""
    if value is None or str(value).strip() == "":
        return ""
    return moment_text(parse_moment(value))


_COOLDOWN_KEYS = {
    "mirror_cooldown": parse_duration,
    "mirror_exclude_newer": _exclude_newer,
    "mirror_cooldown_unknown": _cooldown_unknown,
}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [str(item) for item in value]
    else:
        raise InvalidInput(f"expected a list or a comma-separated string, not {value!r}")
    return [item.strip() for item in items if item.strip()]


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise InvalidInput(f"{key} must be true or false, not {value!r}")


def validate(config: dict[str, Any]) -> dict[str, Any]:
    if config["type"] == MIRROR and not config.get("mirror_url"):
        raise InvalidInput("a mirror index needs a mirror_url")
    return config
