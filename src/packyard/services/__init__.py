"""Use cases over storage; `open_services(settings)` is the single composition root.

One rule for every use case that changes something: look the target up first (user, index,
project, version, file), then judge the caller. A missing thing is 404 for everyone, as in
devpi; users, indexes and their projects are public to read, so that leaks nothing. The
permission checks run only after the lookup (and the lookup runs again in the writer's turn).
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import string
import time
import uuid
from collections.abc import Callable

from packyard.config import SQLITE_FILENAME, Settings
from packyard.pip_index import pip_index_url
from packyard.services.accounts import Accounts, load_secret
from packyard.services.advisories import Advisories
from packyard.services.audit import AuditLog
from packyard.services.boundary import Boundary
from packyard.services.cache import SerialCache
from packyard.services.exemptions import Exemptions
from packyard.services.health import Health
from packyard.services.indexes import Indexes
from packyard.services.mirror import Mirrors
from packyard.services.outbound import Outbound
from packyard.services.package_edits import PackageEdits
from packyard.services.packages import Packages
from packyard.services.project_status import ProjectStatuses
from packyard.services.readmes import Readmes
from packyard.services.sources import Sources
from packyard.services.tokens import ApiTokens
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
    tokens: ApiTokens  # scoped API tokens
    indexes: Indexes
    packages: Packages
    edits: PackageEdits  # deletes and yanks
    # The source of an index (its rows, or its upstream's stored pages), chosen by its kind.
    sources: Sources
    uploads: Uploads
    mirrors: Mirrors
    transfer: Transfer
    readmes: Readmes
    audit: AuditLog  # reading the trail every write records
    exemptions: Exemptions  # break-glass allowances past a mirror's cooldown
    # Every request this server makes to another host goes through this policy.
    outbound: Outbound
    statuses: ProjectStatuses  # PEP 792 project status; why files and uploads are refused
    advisories: Advisories  # imported OSV advisories
    # Rendered responses (simple pages, JSON), dropped whenever anything changes.
    pages: SerialCache[object]
    # This server's identity (devpi's X-Devpi-Uuid), kept in the database.
    uuid: str
    # Liveness and readiness (`/+health`).
    health: Health

    @functools.cached_property
    def boundary(self) -> Boundary:
        """The async use cases the web layer awaits (each owns its thread hop)."""
        return Boundary.over(self)

    def follow_other_hosts(self) -> None:
        """Serving processes on PostgreSQL: see the writes of every host (the change feed)."""
        self.db.follow_changes(self.settings.change_feed_poll_interval)

    @property
    def serial(self) -> int:
        return self.db.serial.read()

    def close(self) -> None:
        self.readmes.close()
        self.db.close()


def open_services(settings: Settings, clock: Callable[[], float] = time.time) -> Services:
    """Open (creating if needed) the server dir's storage and wire up every service;
    `clock` is what serve-time holds (mirror cooldowns) are judged by."""
    settings.serverdir.mkdir(parents=True, exist_ok=True)
    blobs = open_blob_store(settings)
    db = Database(settings.database_url, settings.serverdir / "serial", blobs)
    secret = load_secret(db, settings.serverdir / "secret")
    outbound = Outbound(settings)
    # Asked of pip once per process, when first needed (it runs pip: about a second).
    indexes = Indexes(db, settings, outbound, functools.cache(pip_index_url))
    accounts = Accounts(db, settings, secret)
    mirrors = Mirrors(db, blobs, settings, outbound)
    edits = PackageEdits(db, blobs)
    sources = Sources(mirrors, edits, settings, clock)
    statuses = ProjectStatuses(db, sources)
    return Services(
        settings=settings,
        db=db,
        blobs=blobs,
        accounts=accounts,
        tokens=ApiTokens(db, accounts, indexes),
        indexes=indexes,
        packages=Packages(db, blobs, indexes, sources),
        edits=edits,
        sources=sources,
        uploads=Uploads(db, blobs, indexes, settings, statuses),
        mirrors=mirrors,
        transfer=Transfer(db, blobs, indexes, settings, outbound),
        outbound=outbound,
        statuses=statuses,
        advisories=Advisories(db, settings),
        readmes=Readmes(settings),
        audit=AuditLog(db),
        exemptions=Exemptions(db, settings),
        pages=SerialCache(db.serial.read),
        uuid=_server_uuid(db),
        health=Health(db, blobs, settings.health_timeout),
    )


def open_blob_store(settings: Settings) -> BlobStore:
    """Files in the server dir, or a bucket with the server dir's blobs as its cache."""
    if not settings.blobs:
        return BlobStore(settings.serverdir / "blobs")
    from packyard.storage.s3blobs import S3BlobStore, s3_store  # only when configured

    cache = settings.serverdir / "blob-cache"
    return S3BlobStore(cache, s3_store(settings.blobs), settings.blob_cache_size)


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


def is_server_dir(settings: Settings) -> bool:
    """Does the server dir exist (with its SQLite database, unless the metadata lives elsewhere)?
    Checked before opening, which would create both."""
    if settings.storage:
        return settings.serverdir.is_dir()
    return (settings.serverdir / SQLITE_FILENAME).is_file()


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
        generated = root_password = generate_password()
    services.accounts.create_initial("root", root_password, root_pwhash)
    if root_pypi:
        initialize_root_pypi(services, mirror_url)
    return generated


# Letters and digits only: a password starting with `-` is taken for an option by argument
# parsers (`devpi login root --password -Xyz`), and shells and URLs need no quoting.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 20  # ~119 bits


def generate_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def initialize_root_pypi(services: Services, mirror_url: Callable[[], str] | None = None) -> None:
    """Create `root/pypi`, mirroring the index the machine's pip uses."""
    services.indexes.create_initial(
        "root",
        "pypi",
        {
            "type": "mirror",
            "volatile": False,
            "mirror_url": (mirror_url or services.indexes.default_mirror_url)(),
            "mirror_cache_expiry": services.settings.mirror_cache_expiry,
            "title": "PyPI",
            "acl_read": list(services.settings.default_acl_read),
        },
    )
