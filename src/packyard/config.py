"""One typed Settings object and its one loader.

Precedence: defaults < SERVERDIR/packyard.toml < PACKYARD_* environment < command-line flags.
Unknown or mistyped keys fail at start-up with a hint.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packyard.errors import ConfigError

CONFIG_FILENAME = "packyard.toml"
ENV_PREFIX = "PACKYARD_"
DEFAULT_SERVERDIR = "~/.packyard/server"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, resolved once at start-up."""

    serverdir: Path = Path(DEFAULT_SERVERDIR)
    host: str = "127.0.0.1"
    port: int = 3141
    workers: int = 1
    # SQLAlchemy URL of the metadata database; empty means SQLite inside serverdir.
    storage: str = ""
    # Seconds a login token stays valid (devpi: 10 hours).
    token_expiry: int = 36000
    # Failed password checks allowed per user name, and per client address, within
    # `login_failure_window` seconds; more answer 429 until older failures age out.
    login_failures_per_user: int = 10
    login_failures_per_address: int = 30
    login_failure_window: int = 300
    # Password hashes (argon2: 64 MiB each) computed at once; a few more wait, the rest 503.
    password_hash_concurrency: int = 2
    max_upload_size: int = 200 * 1024 * 1024
    # Absolute base URL to build links from instead of the request's Host header.
    outside_url: str = ""
    # Never contact a mirror's upstream.
    offline: bool = False
    mirror_cache_expiry: int = 1800
    # Seconds to wait for a mirror's upstream before giving up (pages and file starts).
    mirror_timeout: int = 10
    # Principals allowed to create/modify users and indexes; empty means devpi's defaults.
    restrict_modify: tuple[str, ...] = ()
    log_requests: bool = True

    @property
    def database_url(self) -> str:
        return self.storage or f"sqlite:///{self.serverdir / 'packyard.sqlite3'}"


_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve Settings from defaults, the server dir's config file, environment and flags."""
    flags = {key: value for key, value in (flags or {}).items() if value is not None}
    environ = os.environ if environ is None else environ
    from_env = _from_environment(environ)
    serverdir = Path(
        str(flags.get("serverdir") or from_env.get("serverdir") or DEFAULT_SERVERDIR)
    ).expanduser()
    values: dict[str, Any] = {}
    values.update(_from_file(serverdir / CONFIG_FILENAME))
    values.update(from_env)
    values.update(flags)
    values["serverdir"] = serverdir
    return Settings(**{name: _coerce(name, value) for name, value in values.items()})


# PACKYARD_* variables that belong to the client or the test suite, not to the server.
NOT_SERVER_SETTINGS = frozenset({"URL", "INDEX", "USER", "PASSWORD", "TOKEN", "CLIENTDIR"})


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in environ.items():
        suffix = key[len(ENV_PREFIX) :]
        if suffix in NOT_SERVER_SETTINGS or suffix.startswith("TEST_"):
            continue
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            _check_known(name, f"environment variable {key}")
            found[name] = value
    return found


def _from_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for name in data:
        _check_known(name, f"key {name!r} in {path}")
    return data


def _check_known(name: str, where: str) -> None:
    if name not in _FIELDS:
        close = difflib.get_close_matches(name, _FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting: {where}{hint}; known: {', '.join(sorted(_FIELDS))}")


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings, name, None)
    try:
        if isinstance(default, bool):
            return _to_bool(value)
        if isinstance(default, int):
            if isinstance(value, bool | float):
                raise TypeError(value)  # `port = true` or `workers = 2.5` in the file
            return int(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(item.strip() for item in items if item.strip())
        if isinstance(default, Path) or name == "serverdir":
            return Path(value).expanduser()
        if isinstance(default, str):
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError) as exc:
        kind = type(default).__name__
        raise ConfigError(f"setting {name!r}: {value!r} is not a valid {kind}") from exc
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(value)
