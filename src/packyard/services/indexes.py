"""Indexes: create, modify, delete, read, and the cached view of all configs (§5, §6)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from packyard.config import Settings
from packyard.core import acl, indexconfig, inheritance
from packyard.core.audit import config_changes
from packyard.core.models import IndexRecord
from packyard.core.names import check_account_name
from packyard.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from packyard.services.cache import SerialCache
from packyard.services.outbound import Outbound
from packyard.services.readers import Reader, current_reader
from packyard.storage import audit, store
from packyard.storage.db import Database


class Indexes:
    """Index configuration and resolution, cached per change serial."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        outbound: Outbound,
        default_mirror_url: Callable[[], str],
    ) -> None:
        self._db = db
        self._settings = settings
        self._outbound = outbound
        # Where a mirror created without a mirror_url points (and root/pypi): pip's index.
        self.default_mirror_url = default_mirror_url
        self._snapshot: SerialCache[dict[str, IndexRecord]] = SerialCache(db.serial.read_config, 1)
        # Resolution orders by index name: every read request asks for its index's order.
        self._orders: SerialCache[tuple[str, ...]] = SerialCache(db.serial.read_config)

    def all(self) -> dict[str, IndexRecord]:
        """Every index by 'user/name'; read from the database once per change serial."""
        return self._snapshot.get_or_compute("all", self._load_all)

    def _load_all(self) -> dict[str, IndexRecord]:
        with self._db.read() as conn:
            return {record.full_name: record for record in store.list_indexes(conn)}

    def fresh(self) -> dict[str, IndexRecord] | None:
        """The snapshot if it is current, without touching the database (for the event loop)."""
        return self._snapshot.get("all")

    def get(
        self, user: str, name: str, snapshot: dict[str, IndexRecord] | None = None
    ) -> IndexRecord:
        record = (snapshot if snapshot is not None else self.all()).get(f"{user}/{name}")
        if record is None:
            raise NotFound(f"The stage {user}/{name} could not be found.")
        return record

    def of_user(self, user: str) -> list[IndexRecord]:
        return [record for record in self.all().values() if record.user == user]

    def readable_of_user(self, user: str, reader: str | None) -> list[IndexRecord]:
        """The indexes of `user` that `reader` may read: the others are not listed at all."""
        return [record for record in self.of_user(user) if self.may_read(reader, record)]

    def may_read(self, user: str | None, record: IndexRecord) -> bool:
        acl_read = record.index_config.acl_read
        restrict = self._settings.restrict_modify
        return acl.may_read_index(user, record.user, acl_read, restrict)

    def reader_may_read(self, reader: Reader, record: IndexRecord) -> bool:
        """`reader`'s user may read `record`, and so may the API token they came with."""
        return reader.scope_allows(record.full_name) and self.may_read(reader.user, record)

    def readable(self, caller: str | None, user: str, name: str) -> IndexRecord:
        """The index `user/name` if `caller` may read it: else 401 for an anonymous caller
        (who may have credentials to send), 403 for anyone else. (A token's scope for the
        index itself is checked for every route by the web layer: web/scopes.py.)"""
        record = self.get(user, name)
        if self.may_read(caller, record):
            return record
        if caller is None:
            raise Unauthenticated(f"log in to read {record.full_name}: it is not public")
        raise Forbidden(f"{caller} may not read {record.full_name}")

    def resolution_order(self, record: IndexRecord) -> list[IndexRecord]:
        """The indexes whose content counts for `record`, as the request's reader sees them:
        bases they, or their API token, may not read are left out (services/readers.py)."""
        reader = current_reader()
        return [
            item
            for item in self.full_resolution_order(record)
            if item.id == record.id or self.reader_may_read(reader, item)
        ]

    def full_resolution_order(self, record: IndexRecord) -> list[IndexRecord]:
        """Every index in the order, readable or not: for decisions that must not depend on
        who asks (the mirror whitelist keeps a private project's name off its mirrors)."""
        snapshot = self.all()

        def compute() -> tuple[str, ...]:
            configs = {name: item.index_config for name, item in snapshot.items()}
            return tuple(inheritance.resolution_order(record.full_name, configs))

        names = self._orders.get_or_compute(record.full_name, compute)
        return [snapshot[name] for name in names if name in snapshot]

    def hidden_bases(self, record: IndexRecord, reader: Reader) -> tuple[str, ...]:
        """The bases of `record` that `reader` (or their token) may not read: what a rendering
        for them lacks (part of a cached page's key)."""
        order = self.full_resolution_order(record)
        return tuple(
            item.full_name
            for item in order
            if item.id != record.id and not self.reader_may_read(reader, item)
        )

    def wholly_public(self, record: IndexRecord) -> bool:
        """Anonymous callers may read `record` and every index of its resolution order."""
        return all(self.may_read(None, item) for item in self.full_resolution_order(record))

    def create(
        self, actor: str | None, user: str, name: str, given: Mapping[str, Any]
    ) -> IndexRecord:
        check_account_name(name, "indexname")
        # Looked up before the caller is judged (as devpi does): users and indexes are listed
        # publicly, so a 404 or 409 tells nobody anything new.
        with self._db.read() as conn:
            _check_new_index(conn, user, name)
        if not acl.may_manage_index(actor, user, self._settings.restrict_modify):
            raise Forbidden(f"no permission to create index {user}/{name}")
        given = self._with_default_mirror_url(actor, given)
        if "acl_read" not in given:  # the server's choice (public unless root says otherwise)
            given = {**given, "acl_read": list(self._settings.default_acl_read)}
        config = indexconfig.new_config(user, given, self._settings.mirror_cache_expiry)
        self._check_mirror_url(actor, config, None)
        with self._db.write("index-create", config=True, index=f"{user}/{name}") as conn:
            _check_new_index(conn, user, name)  # again, in the writer's turn
            self._check_bases(conn, actor, f"{user}/{name}", config, None)
            index_id = store.insert_index(conn, user, name, config)
        return IndexRecord(index_id, user, name, config)

    def _with_default_mirror_url(
        self, actor: str | None, given: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """A mirror created without a mirror_url mirrors what root/pypi does (devpi: PyPI);
        pip is asked only for someone who may create a mirror."""
        if given.get("type") != indexconfig.IndexType.MIRROR or given.get("mirror_url"):
            return given
        self._check_may_set_mirror_url(actor)
        return {**given, "mirror_url": self.default_mirror_url()}

    def create_initial(self, user: str, name: str, config: dict[str, Any]) -> None:
        """Create an index at init or import time, without permission checks."""
        with self._db.write("index-create", config=True, index=f"{user}/{name}") as conn:
            store.insert_index(conn, user, name, config)

    def modify(
        self,
        actor: str | None,
        user: str,
        name: str,
        changes: Mapping[str, Any] | list[str],
        error_on_noop: bool = False,
    ) -> IndexRecord:
        """Apply a full/partial config dict or devpi's list of `k=v`, `k+=v`, `k-=v`."""
        record = self.get(user, name)
        if not acl.may_manage_index(actor, user, self._settings.restrict_modify):
            raise Forbidden(f"no permission to modify index {user}/{name}")
        if isinstance(changes, list):
            config = indexconfig.apply_operations(record.config, changes, user)
        else:
            # Old clients send the whole envelope back: {"type": "indexconfig", "result": {...}}.
            body: Mapping[str, Any] = changes
            if body.get("type") == "indexconfig" and isinstance(body.get("result"), dict):
                body = body["result"]
            config = indexconfig.updated_config(record.config, body)
        if error_on_noop and config == record.config:
            raise InvalidInput("The requested modifications resulted in no changes")
        self._check_mirror_url(actor, config, record.config)
        with self._db.write("index-modify", config=True, index=record.full_name) as conn:
            self._check_bases(conn, actor, record.full_name, config, record.config)
            store.update_index_config(conn, record.id, config)
            audit.note(conn, changed=config_changes(record.config, config))
        return IndexRecord(record.id, user, name, config)

    def delete(self, actor: str | None, user: str, name: str) -> None:
        record = self.get(user, name)
        if not acl.may_manage_index(actor, user, self._settings.restrict_modify):
            raise Forbidden(f"no permission to delete index {user}/{name}")
        if not record.volatile:
            raise Forbidden(f"index {record.full_name} non-volatile, cannot delete")
        with self._db.write("index-delete", config=True, index=record.full_name) as conn:
            store.delete_index(conn, record.id)

    def _check_mirror_url(
        self, actor: str | None, config: Mapping[str, Any], before: Mapping[str, Any] | None
    ) -> None:
        """A mirror makes this server fetch from the URL it names: only root sets one (unless
        the setting users_create_mirrors says otherwise), and only an allowed destination."""
        typed = indexconfig.parse(config)
        if not isinstance(typed, indexconfig.MirrorConfig):
            return
        url = typed.mirror_url
        earlier = indexconfig.parse(before) if before is not None else None
        if isinstance(earlier, indexconfig.MirrorConfig) and earlier.mirror_url == url:
            return
        self._check_may_set_mirror_url(actor)
        self._outbound.check_resolved(url, "mirror_url")

    def _check_may_set_mirror_url(self, actor: str | None) -> None:
        if actor != acl.ROOT and not self._settings.users_create_mirrors:
            raise Forbidden(
                "only root may create a mirror index or change its mirror_url (root can allow"
                " users with the setting users_create_mirrors)"
            )

    def _check_bases(
        self,
        conn: Any,
        actor: str | None,
        full_name: str,
        config: dict[str, Any],
        before: dict[str, Any] | None,
    ) -> None:
        """Bases must exist, make no cycle, and (those newly added) be readable by `actor`."""
        bases = list(indexconfig.parse(config).bases)
        if not bases:
            return
        records = {item.full_name: item for item in store.list_indexes(conn)}
        configs = {name: item.index_config for name, item in records.items()}
        inheritance.check_no_cycle(full_name, bases, configs)
        earlier = set(indexconfig.parse(before).bases) if before is not None else set()
        self._check_may_read_bases(actor, [records[name] for name in bases if name not in earlier])

    def _check_may_read_bases(self, actor: str | None, added: list[IndexRecord]) -> None:
        """A base lends its content to the index's pages (and its project names to the mirror
        whitelist's decisions): choosing one you may not read would reveal what it holds. The
        API token the request came with must allow reading it too (services/readers.py)."""
        choosing = Reader(actor, current_reader().scope)
        for record in added:
            if not self.reader_may_read(choosing, record):
                raise Forbidden(
                    f"{actor or 'an anonymous caller'} may not read {record.full_name}, so"
                    " cannot make it a base"
                )


def _check_new_index(conn: Any, user: str, name: str) -> None:
    """404 for a missing owner, 409 for an existing index (devpi's words)."""
    if store.get_user(conn, user) is None:
        raise NotFound(f"no user {user!r}")
    if store.get_index(conn, user, name):
        raise Conflict(f"index '{user}/{name}' exists")
