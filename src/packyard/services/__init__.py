"""Use cases over storage; `open_services(settings)` is the single composition root."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable

from packyard.config import Settings
from packyard.services.accounts import Accounts, load_or_create_secret
from packyard.services.cache import SerialCache
from packyard.services.indexes import Indexes
from packyard.services.mirror import Mirrors
from packyard.services.outbound import Outbound
from packyard.services.packages import Packages
from packyard.services.transfer import Transfer
from packyard.services.uploads import Uploads
from packyard.storage import store
from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database


@dataclasses.dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    accounts: Accounts
    indexes: Indexes
    packages: Packages
    uploads: Uploads
    mirrors: Mirrors
    transfer: Transfer
    # Every request this server makes to another host goes through this policy.
    outbound: Outbound
    # Rendered responses (simple pages, JSON), dropped whenever anything changes.
    pages: SerialCache[object]
    # This server's identity (devpi's X-Devpi-Uuid), kept in the database.
    uuid: str

    @property
    def serial(self) -> int:
        return self.db.serial.read()

    def close(self) -> None:
        self.db.close()


def open_services(settings: Settings) -> Services:
    """Open (creating if needed) the server dir's storage and wire up every service."""
    settings.serverdir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url, settings.serverdir / "serial")
    blobs = BlobStore(settings.serverdir / "blobs")
    secret = load_or_create_secret(settings.serverdir / "secret")
    outbound = Outbound(settings)
    indexes = Indexes(db, settings, outbound)
    return Services(
        settings=settings,
        db=db,
        blobs=blobs,
        accounts=Accounts(db, settings, secret),
        indexes=indexes,
        packages=Packages(db, blobs, indexes),
        uploads=Uploads(db, blobs, indexes, settings),
        mirrors=Mirrors(db, blobs, settings, outbound),
        transfer=Transfer(db, blobs, indexes, settings, outbound),
        outbound=outbound,
        pages=SerialCache(db.serial.read),
        uuid=_server_uuid(db),
    )


def _server_uuid(db: Database) -> str:
    """The server's uuid, created on first open and the same for every worker after."""
    with db.read() as conn:
        known = store.get_setting(conn, "uuid")
    if known:
        return str(known)
    with db.write("server-uuid", config=True) as conn:
        known = store.get_setting(conn, "uuid")
        if not known:
            known = uuid.uuid4().hex
            store.put_setting(conn, "uuid", known)
    return str(known)


def recover_interrupted_writes(services: Services) -> int:
    """At start-up, before serving: settle the temp files an interrupted run left behind."""

    def still_referenced(shas: set[str]) -> set[str]:
        with services.db.read() as conn:
            return store.referenced_blobs(conn, shas)

    return services.blobs.recover_temp_files(still_referenced)


def is_initialized(services: Services) -> bool:
    with services.db.read() as conn:
        return store.get_user(conn, "root") is not None


def initialize(
    services: Services,
    root_password: str | None = None,
    root_pwhash: str | None = None,
    root_pypi: bool = True,
    mirror_url: Callable[[], str] | None = None,
) -> str | None:
    """First start: create `root` and the `root/pypi` mirror. Returns a generated password."""
    generated = None
    if root_password is None and root_pwhash is None:
        generated = root_password = secrets.token_urlsafe(12)
    services.accounts.create_initial("root", root_password, root_pwhash)
    if root_pypi:
        initialize_root_pypi(services, mirror_url)
    return generated


def initialize_root_pypi(services: Services, mirror_url: Callable[[], str] | None = None) -> None:
    """Create `root/pypi`, mirroring the index the machine's pip uses."""
    services.indexes.create_initial(
        "root",
        "pypi",
        {
            "type": "mirror",
            "volatile": False,
            "mirror_url": (mirror_url or pip_index_url)(),
            "mirror_cache_expiry": services.settings.mirror_cache_expiry,
            "title": "PyPI",
        },
    )


def pip_index_url() -> str:
    """The index the machine's pip is configured with, else pip's own PyPI default."""
    try:
        output = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            return value.strip().strip("'\"")
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)
