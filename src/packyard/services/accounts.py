"""Users, passwords and login tokens (devpi-protocol.md §2 and §4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from packyard.config import Settings
from packyard.core import acl
from packyard.core.models import User
from packyard.core.names import check_account_name
from packyard.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge, Unauthenticated
from packyard.services.cache import SerialCache
from packyard.storage import store
from packyard.storage.db import Database

SETTABLE_USER_KEYS = frozenset({"email", "title", "description", "custom_data"})
OUTPUT_ONLY_USER_KEYS = frozenset({"created", "modified", "username", "indexes"})
# A user's settable info (as JSON) at most: every user's info is in `GET /`, so one user must
# not be able to make that page large.
MAX_USER_INFO = 16 * 1024
# A successful password check is remembered this long, so that a burst of uploads sending
# a password (twine) does not pay the slow KDF for every file.
VERIFIED_PASSWORD_TTL = 60.0


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_or_create_secret(path: Path) -> bytes:
    """The token-signing key: 32 random bytes, created once, readable by the owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(base64.b64encode(secrets.token_bytes(32)))
        tmp.chmod(0o600)
        tmp.replace(path)
    return base64.b64decode(path.read_bytes().strip())


@dataclass(frozen=True)
class LoginToken:
    token: str
    expiration: int


class Accounts:
    """Create, change, delete and authenticate users."""

    def __init__(self, db: Database, settings: Settings, secret: bytes) -> None:
        self._db = db
        self._settings = settings
        self._hasher = PasswordHasher()
        self._tokens = URLSafeTimedSerializer(secret, salt="packyard-auth")
        self._verified: dict[bytes, float] = {}
        self._names: SerialCache[frozenset[str]] = SerialCache(db.serial.read_config, 1)
        self._verified_lock = threading.Lock()
        self._verified_key = hmac.new(secret, b"verified-passwords", hashlib.sha256).digest()

    # --- authentication ------------------------------------------------------------------

    def login(self, name: str, password: str) -> LoginToken:
        if self._check_password(name, password) is None:
            raise Unauthenticated(f"user {name!r} could not be authenticated")
        return self.issue_token(name)

    def csrf_token(self, session: str) -> str:
        """The form token that goes with a browser session (HMAC of the session)."""
        return hmac.new(self._verified_key, f"csrf\0{session}".encode(), hashlib.sha256).hexdigest()

    def issue_token(self, name: str) -> LoginToken:
        token = self._tokens.dumps(name)
        return LoginToken(token=str(token), expiration=self._settings.token_expiry)

    def authenticate(self, name: str, secret: str) -> str | None:
        """The user name if `secret` is a valid token or password for `name`, else None.

        The secret is tried as a token first; an expired token is not retried as a password.
        """
        try:
            token_user = self._tokens.loads(secret, max_age=self._settings.token_expiry)
        except SignatureExpired:
            return None
        except BadSignature:
            return self._check_password(name, secret)
        if token_user != name:
            return None
        return name if name in self._user_names() else None

    def authenticate_quickly(self, name: str, secret: str) -> tuple[bool, str | None]:
        """(decided, user): settles a token check that needs no database read and no KDF.

        Lets the event loop authenticate the common case (a token, users unchanged) without
        a trip through the thread pool; when `decided` is False, call `authenticate`.
        """
        try:
            token_user = self._tokens.loads(secret, max_age=self._settings.token_expiry)
        except SignatureExpired:
            return True, None
        except BadSignature:
            return False, None  # maybe a password: the slow KDF runs off the loop
        names = self._names.get("names")
        if token_user != name or names is None:
            return token_user != name, None
        return True, name if name in names else None

    def _user_names(self) -> frozenset[str]:
        """Every user name, cached until users change (checked with one pread)."""
        return self._names.get_or_compute("names", self._load_names)

    def _load_names(self) -> frozenset[str]:
        with self._db.read() as conn:
            return frozenset(user.name for user in store.list_users(conn))

    def _check_password(self, name: str, password: str) -> str | None:
        with self._db.read() as conn:
            user = store.get_user(conn, name)
        if user is None or user.pwhash is None:
            return None
        cache_key = hmac.new(
            self._verified_key, f"{name}\0{password}\0{user.pwhash}".encode(), hashlib.sha256
        ).digest()
        with self._verified_lock:
            if self._verified.get(cache_key, 0.0) > time.monotonic():
                return name
        if not self._verify(user, password):
            return None
        self._upgrade_hash(user, password)
        with self._verified_lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[cache_key] = time.monotonic() + VERIFIED_PASSWORD_TTL
        return name

    def _verify(self, user: User, password: str) -> bool:
        assert user.pwhash is not None
        if user.pwsalt:
            # devpi before 4.2: hex sha256 of salt + password.
            expected = hashlib.sha256((user.pwsalt + password).encode()).hexdigest()
            return hmac.compare_digest(expected, user.pwhash)
        try:
            return self._hasher.verify(user.pwhash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _upgrade_hash(self, user: User, password: str) -> None:
        assert user.pwhash is not None
        legacy = bool(user.pwsalt)
        if not legacy and not self._hasher.check_needs_rehash(user.pwhash):
            return
        with self._db.write("user-rehash", config=True, user=user.name) as conn:
            store.update_user(conn, user.name, pwhash=self._hasher.hash(password), pwsalt=None)

    # --- user records ----------------------------------------------------------------------

    def get(self, name: str) -> User:
        with self._db.read() as conn:
            user = store.get_user(conn, name)
        if user is None:
            raise NotFound(f"user '{name}' does not exist")
        return user

    def list(self) -> list[User]:
        with self._db.read() as conn:
            return store.list_users(conn)

    def create(self, actor: str | None, name: str, given: Mapping[str, Any]) -> User:
        check_account_name(name)
        if not acl.may_create_user(actor, self._settings.restrict_modify):
            raise Forbidden(f"no permission to create user {name}")
        info = self._user_info(given, ignore={"password", "pwhash"})
        password, pwhash = given.get("password"), given.get("pwhash")
        if not password:
            raise InvalidInput("password needs to be set")
        user = User(
            name=name,
            pwhash=str(pwhash) if pwhash else self._hasher.hash(str(password)),
            pwsalt=None,
            info=info,
            created=now_text(),
            modified=None,
        )
        with self._db.write("user-create", config=True, user=name) as conn:
            if store.get_user(conn, name):
                raise Conflict("user already exists")
            store.insert_user(conn, user)
        return user

    def create_initial(self, name: str, password: str | None, pwhash: str | None = None) -> None:
        """Create a user at init time (no permission check), e.g. root."""
        with self._db.write("user-create", config=True, user=name) as conn:
            store.insert_user(
                conn,
                User(
                    name=name,
                    pwhash=pwhash or self._hasher.hash(password or ""),
                    pwsalt=None,
                    info={},
                    created=now_text(),
                    modified=None,
                ),
            )

    def modify(self, actor: str | None, name: str, given: Mapping[str, Any]) -> LoginToken | None:
        """Apply changes; returns a fresh token when the password changed."""
        self.get(name)
        password = given.get("password")
        changes = {key: value for key, value in given.items() if key != "password"}
        info_changes = self._user_info(changes, ignore=OUTPUT_ONLY_USER_KEYS | {"pwhash"})
        password_only = not info_changes
        if not acl.may_modify_user(actor, name, self._settings.restrict_modify, password_only):
            raise Forbidden(f"no permission to modify user {name}")
        with self._db.write("user-modify", config=True, user=name) as conn:
            user = store.get_user(conn, name)
            if user is None:
                raise NotFound(f"user '{name}' does not exist")
            info = dict(user.info)
            for key, value in info_changes.items():
                if value in (None, "", False):
                    info.pop(key, None)
                else:
                    info[key] = value
            values: dict[str, Any] = {"info": check_info_size(info), "modified": now_text()}
            if password:
                values.update(pwhash=self._hasher.hash(str(password)), pwsalt=None)
            store.update_user(conn, name, **values)
        return self.issue_token(name) if password else None

    def delete(self, actor: str | None, name: str) -> None:
        self.get(name)
        if not acl.may_delete_user(actor, name, self._settings.restrict_modify):
            raise Forbidden(f"no permission to delete user {name}")
        with self._db.write("user-delete", config=True, user=name) as conn:
            for index in store.list_indexes(conn):
                if index.user == name and not index.volatile:
                    raise Forbidden(f"user '{name}' has non-volatile index: {index.name}")
            for index in store.list_indexes(conn):
                if index.user == name:
                    store.delete_index(conn, index.id)
            store.delete_user(conn, name)

    @staticmethod
    def _user_info(given: Mapping[str, Any], ignore: frozenset[str] | set[str]) -> dict[str, Any]:
        unknown = [key for key in given if key not in SETTABLE_USER_KEYS and key not in ignore]
        if unknown:
            raise InvalidInput(f"Unknown keys in user config: {', '.join(sorted(unknown))}")
        return check_info_size(
            {key: value for key, value in given.items() if key in SETTABLE_USER_KEYS}
        )


def check_info_size(info: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(info)) > MAX_USER_INFO:
        raise TooLarge(f"user info too large: at most {MAX_USER_INFO} bytes of JSON")
    return info
