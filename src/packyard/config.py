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
SQLITE_FILENAME = "packyard.sqlite3"  # the metadata database in the server dir, by default


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the server needs to know, resolved once at start-up."""

    serverdir: Path = Path(DEFAULT_SERVERDIR)
    host: str = "127.0.0.1"
    port: int = 3141
    workers: int = 1
    # SQLAlchemy URL of the metadata database; empty means SQLite inside serverdir.
    storage: str = ""
    # Where blobs (the files' bytes) live: empty for files in the server dir, or an
    # S3-compatible bucket `s3://BUCKET/PREFIX` (endpoint and credentials from AWS_*).
    blobs: str = ""
    # With an object store: bytes of hot blobs each host keeps on its disk (least recently
    # used go first).
    blob_cache_size: int = 10 * 1024**3
    # PostgreSQL (many hosts): seconds between a host's checks of the newest change serial,
    # the safety net under the change feed's notifications (storage/feed.py).
    change_feed_poll_interval: int = 2
    # PostgreSQL: seconds a request for a mirror file another host is fetching waits for it
    # (then serves the stored file, or fetches it itself).
    mirror_flight_wait: int = 10
    # Seconds `/+health?ready` gives the database and the blob store to answer.
    health_timeout: int = 2
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
    # Seconds after a version's first file on a non-volatile index during which its uploader
    # may add the release's other files (sdist, wheels); then the release is closed. 0: the
    # first file closes it.
    release_window: int = 600
    # Largest tox result (JSON) a client may attach to a release file, in bytes.
    max_toxresult_size: int = 1024 * 1024
    # Request limits, enforced before the app (web/server.py) and while bodies stream
    # (web/limits.py). Largest body of any request but an upload (JSON, forms, toxresults).
    max_body_size: int = 1024 * 1024
    # Largest request head (request line plus header fields), in bytes (431 above it).
    max_header_size: int = 64 * 1024
    # Most header fields in one request (431 above it).
    max_header_count: int = 100
    # Seconds a client has to send a request's whole head (408, then the connection closes).
    header_timeout: int = 10
    # Seconds in which a request body must make progress (64 KiB or its end), else 408.
    body_timeout: int = 30
    # Open connections per server process; more are answered 503 at once and closed.
    max_connections: int = 1000
    # Absolute URL clients reach the server at, mount path included (https://host/pypi):
    # every link is built under it (web/urls.py); a proxy's X-Outside-Url header wins.
    outside_url: str = ""
    # Never contact a mirror's upstream.
    offline: bool = False
    mirror_cache_expiry: int = 1800
    # Seconds to wait for a mirror's upstream before giving up (pages and file starts).
    mirror_timeout: int = 10
    # Principals allowed to create/modify users and indexes; empty means devpi's defaults.
    restrict_modify: tuple[str, ...] = ()
    log_requests: bool = True
    # Absolute base URL of a separate origin for hosted docs (e.g. http://docs.example:3141,
    # the same server under another host name); empty serves them here, sandboxed.
    docs_url: str = ""
    # Untrusted archives cost bounded work: members listed in one wheel, sdist or doc zip,
    # and bytes unpacked while looking for the metadata (also the largest doc page served).
    max_archive_members: int = 50_000
    max_archive_unpacked: int = 1024 * 1024 * 1024
    # Long descriptions longer than this (characters) are shown as plain text, truncated.
    max_description_render_size: int = 200_000
    # Seconds a description may take to render before plain text is shown instead.
    description_render_timeout: int = 2
    # Outbound requests (mirror pages and files, pushes to an external URL), see
    # services/outbound.py. Internal destinations root allows: CIDR networks or host names
    # (loopback, private, link-local addresses are refused otherwise).
    outbound_allowed_networks: tuple[str, ...] = ()
    # Outbound requests under way at once, per worker process.
    outbound_max_concurrent: int = 20
    # Seconds a whole mirror file download (or one push upload) may take.
    outbound_file_deadline: int = 900
    # Largest mirror file fetched when the upstream page declares no size (else: that size).
    outbound_max_file_size: int = 4 * 1024 * 1024 * 1024
    # Largest upstream project page (or core metadata file), in bytes, and its most links.
    outbound_max_page_size: int = 32 * 1024 * 1024
    outbound_max_page_links: int = 50_000
    # Largest upstream full project list, in bytes.
    outbound_max_list_size: int = 256 * 1024 * 1024
    # Push to an external upload URL (`posturl`); off: only pushes between local indexes.
    allow_external_push: bool = False
    # Users other than root may create mirror indexes and change a mirror_url.
    users_create_mirrors: bool = False
    # `acl_read` of indexes created without one (root/pypi included): who may read them.
    # `:AUTHENTICATED:` makes new indexes private to logged-in users.
    default_acl_read: tuple[str, ...] = (":ANONYMOUS:",)
    # Anonymous visitors get no user list (`GET /`), no user pages and no user JSON.
    hide_users_from_anonymous: bool = False
    # Client networks (CIDR) that may read /+metrics without logging in; root always may.
    # Empty by default: behind a proxy on the same host every client looks like loopback.
    metrics_allow: tuple[str, ...] = ()
    # Addresses of the reverse proxies whose X-Forwarded-For / -Proto headers are believed (the
    # client address of the audit trail and the login throttle). Empty: proxy headers are
    # ignored, so no local process or passed-through header can choose its address.
    forwarded_allow_ips: tuple[str, ...] = ()
    # Answer a file download with 302 to a presigned object-store URL (valid
    # `blobs_redirect_expiry` seconds) instead of streaming it, for clients that reach the store.
    blobs_redirect: bool = False
    blobs_redirect_expiry: int = 300
    # An advisory import (OSV export zip) costs bounded work: its size in bytes (through the
    # API), the JSON records it may hold, and the bytes of one record.
    advisories_max_size: int = 512 * 1024 * 1024
    advisories_max_records: int = 200_000
    advisories_max_record_size: int = 1024 * 1024

    @property
    def database_url(self) -> str:
        return self.storage or f"sqlite:///{self.serverdir / SQLITE_FILENAME}"


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


# root's password for init/serve/import, read from the environment so that `ps` does not show it.
ROOT_PASSWORD_ENV = ENV_PREFIX + "ROOT_PASSWD"

# PACKYARD_* variables that belong to the client, the test suite or a verb, not to the server.
NOT_SERVER_SETTINGS = frozenset(
    {"URL", "INDEX", "USER", "PASSWORD", "TOKEN", "CLIENTDIR", "ROOT_PASSWD"}
)


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
