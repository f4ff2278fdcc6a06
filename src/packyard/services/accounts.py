"""Users, passwords and login tokens (devpi-protocol.md §2 and §4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
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
from packyard.core.names import check_new_user_name, user_key
from packyard.core.tokens import TOKEN_USER
from packyard.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LoginExpired,
    NotFound,
    TooLarge,
    Unauthenticated,
)
from packyard.services.cache import SerialCache
from packyard.services.throttle import HashingLimit, LoginThrottle
from packyard.storage import audit, store
from packyard.storage.db import Database

SETTABLE_USER_KEYS = frozenset({"email", "title", "description", "custom_data"})
# What the server reports about a user; the devpi client sends it back with every PATCH.
# `created` and `username` must come back unchanged; `modified` and `indexes` change under
# the client between its GET and its PATCH, so they are ignored.
READ_ONLY_USER_KEYS = frozenset({"created", "username"})
OUTPUT_ONLY_USER_KEYS = READ_ONLY_USER_KEYS | {"modified", "indexes"}
CREDENTIAL_KEYS = frozenset({"password", "pwhash"})
# A user info value that means "remove this key" (devpi's rule).
EMPTY: tuple[Any, ...] = (None, "", False)
# A user's settable info (as JSON) at most: every user's info is in `GET /`, so one user must
# not be able to make that page large.
MAX_USER_INFO = 16 * 1024
# A successful password check is remembered this long, so that a burst of uploads sending
# a password (twine) does not pay the slow KDF for every file.
VERIFIED_PASSWORD_TTL = 60.0
# Callers beyond the hashing concurrency that may wait (per slot), and for how long.
HASH_WAITERS_PER_SLOT = 8
HASH_WAIT_SECONDS = 10.0
TOKEN_NO_LONGER_VALID = (
    "the login token of {name!r} is no longer valid (it expired, was revoked by a logout or a"
    " password change, or the user was deleted): log in again"
)


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_or_create_secret(path: Path) -> bytes:
    """The token-signing key: 32 random bytes, created once, readable by the owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a temp file left by an earlier run keeps its old mode otherwise
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)))
        tmp.replace(path)
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # made readable by others by hand or by an older version
    return base64.b64decode(path.read_bytes().strip())


# The settings-table key of the token-signing key every host of one database agrees on.
SECRET_SETTING = "token_secret"


def load_secret(db: Database, path: Path) -> bytes:
    """The token-signing key: on SQLite (one host) the server dir's file `path`; on
    PostgreSQL the one every host shares, kept in the database. The first host to start on
    PostgreSQL adopts its `path` (so that login tokens it issued keep working), or makes one."""
    if db.is_sqlite:
        return load_or_create_secret(path)
    with db.read() as conn:
        known = store.get_setting(conn, SECRET_SETTING)
    if known is None:
        with db.write("token-secret", config=True) as conn:  # the writer's turn: one wins
            known = store.get_setting(conn, SECRET_SETTING)
            if known is None:
                known = _adoptable_secret(path) or base64.b64encode(secrets.token_bytes(32))
                known = known.decode()
                store.put_setting(conn, SECRET_SETTING, known)
    return base64.b64decode(str(known))


def _adoptable_secret(path: Path) -> bytes | None:
    try:
        return path.read_bytes().strip() or None
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class LoginToken:
    token: str
    expiration: int


@dataclass(frozen=True)
class UserUpdate:
    """What a PATCH of a user changed (empty: it was as asked already); `token` is a fresh
    login token when a password was given."""

    changed: tuple[str, ...]
    token: LoginToken | None


class Accounts:
    """Create, change, delete and authenticate users.

    A login token is signed `[user, stamp]`: the stamp is a random value stored with the user
    and replaced on a password change or logout, and new for a re-registered name, so that
    any of these revokes the user's older tokens.
    """

    def __init__(self, db: Database, settings: Settings, secret: bytes) -> None:
        self._db = db
        self._settings = settings
        self._hasher = PasswordHasher()
        self._tokens = URLSafeTimedSerializer(secret, salt="packyard-auth")
        self._verified: dict[bytes, float] = {}
        self._stamps: SerialCache[Mapping[str, str]] = SerialCache(db.serial.read_config, 1)
        self._verified_lock = threading.Lock()
        self._check_stripes = [threading.Lock() for _ in range(64)]
        self._verified_key = hmac.new(secret, b"verified-passwords", hashlib.sha256).digest()
        self._throttle = LoginThrottle(
            settings.login_failures_per_user,
            settings.login_failures_per_address,
            settings.login_failure_window,
        )
        concurrency = settings.password_hash_concurrency
        self._hashing = HashingLimit(
            concurrency, HASH_WAITERS_PER_SLOT * concurrency, HASH_WAIT_SECONDS
        )

    # --- authentication ------------------------------------------------------------------

    def login(self, name: str, password: str, address: str = "") -> LoginToken:
        """A fresh token for a correct password; throttled per user name and address."""
        if not self._check_password(name, password, address):
            raise Unauthenticated(f"user {name!r} could not be authenticated")
        return self.issue_token(name)

    def count_failed_token(self, address: str) -> None:
        """Count a wrong API token against the client address only (never its owner's name):
        raises TooManyAttempts over the address's limit, shared with password guesses."""
        self._throttle.failed_without_account(address)

    def csrf_token(self, session: str, purpose: str = "csrf") -> str:
        """The form token that goes with a browser session (HMAC of the session)."""
        message = f"{purpose}\0{session}".encode()
        return hmac.new(self._verified_key, message, hashlib.sha256).hexdigest()

    def issue_token(self, name: str) -> LoginToken:
        stamp = self._token_stamps().get(name)
        if stamp is None:
            raise NotFound(f"user '{name}' does not exist")
        token = self._tokens.dumps([name, stamp])
        return LoginToken(token=str(token), expiration=self._settings.token_expiry)

    def revoke_tokens(self, actor: str | None) -> None:
        """Log out everywhere: every token issued to `actor` so far stops working."""
        if actor is None:
            raise Unauthenticated("log in first: only a logged-in user can log out")
        with self._db.write("user-logout", config=True, user=actor) as conn:
            store.update_user(conn, actor, token_stamp="")

    def authenticate(self, name: str, secret: str, address: str = "") -> str:
        """`name` if `secret` is a valid token or the password of `name`; else raises
        Unauthenticated (LoginExpired for a token that no longer works), TooManyAttempts
        or Busy. An expired token is not retried as a password."""
        payload = self._token_payload(secret)
        if payload is None:
            if not self._check_password(name, secret, address):
                raise Unauthenticated(
                    f"user {name!r} could not be authenticated: wrong password or token"
                )
            return name
        return self._token_user(name, payload, self._token_stamps())

    def authenticate_token(self, name: str, token: str) -> str | None:
        """`name` if `token` is one of its valid login tokens, else None (never a password:
        for browser sessions)."""
        payload = self._token_payload(token, expired_is_error=False)
        try:
            return self._token_user(name, payload, self._token_stamps()) if payload else None
        except LoginExpired:
            return None

    def authenticate_quickly(self, name: str, secret: str) -> str | None:
        """The user if `secret` is a valid token and users are cached: no database read, no
        KDF, so the event loop can decide it. None means undecided: call `authenticate`.
        Raises LoginExpired for a token that no longer works."""
        payload = self._token_payload(secret)
        stamps = self._stamps.get("stamps")
        if payload is None or stamps is None:
            return None
        return self._token_user(name, payload, stamps)

    def _token_payload(self, secret: str, expired_is_error: bool = True) -> list[str] | None:
        """A token's signed `[user, stamp]`, or None if `secret` is no token of ours."""
        try:
            payload = self._tokens.loads(secret, max_age=self._settings.token_expiry)
        except SignatureExpired as exc:
            if not expired_is_error:
                return None
            raise LoginExpired("the login token has expired: log in again") from exc
        except BadSignature:
            return None  # maybe a password
        if (
            isinstance(payload, list)
            and len(payload) == 2
            and all(isinstance(p, str) for p in payload)
        ):
            return payload
        return ["", ""]  # signed by an older version, without a stamp: no longer valid

    @staticmethod
    def _token_user(name: str, payload: list[str], stamps: Mapping[str, str]) -> str:
        token_user, stamp = payload
        current = stamps.get(name)
        if token_user != name or not current or not hmac.compare_digest(current, stamp):
            raise LoginExpired(TOKEN_NO_LONGER_VALID.format(name=name))
        return name

    def _token_stamps(self) -> Mapping[str, str]:
        """user -> token stamp, cached until users change (checked with one pread)."""
        return self._stamps.get_or_compute("stamps", self._load_stamps)

    def _load_stamps(self) -> Mapping[str, str]:
        with self._db.read() as conn:
            return store.token_stamps(conn)

    def _check_password(self, name: str, password: str, address: str) -> bool:
        with self._db.read() as conn:
            user = store.get_user(conn, name)
        pwhash = user.pwhash if user is not None else None
        cache_key = hmac.new(
            self._verified_key, f"{name}\0{password}\0{pwhash}".encode(), hashlib.sha256
        ).digest()
        # One check at a time per (user, password): a burst of requests carrying the same
        # password (a parallel installer) waits for one hash and is not a burst of guesses.
        with self._check_stripes[cache_key[0] % len(self._check_stripes)]:
            if self._is_verified(cache_key):
                return True
            with self._throttle.guess(name, address) as guess:
                if user is None or user.pwhash is None:
                    return False
                if self._verify(user, password):
                    self._upgrade_hash(user, password)
                    self._remember_verified(cache_key)
                    guess.correct = True
                return guess.correct

    def _is_verified(self, cache_key: bytes) -> bool:
        with self._verified_lock:
            return self._verified.get(cache_key, 0.0) > time.monotonic()

    def _remember_verified(self, cache_key: bytes) -> None:
        with self._verified_lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[cache_key] = time.monotonic() + VERIFIED_PASSWORD_TTL

    def _verify(self, user: User, password: str) -> bool:
        assert user.pwhash is not None
        if user.pwsalt:
            # devpi before 4.2: hex sha256 of salt + password.
            expected = hashlib.sha256((user.pwsalt + password).encode()).hexdigest()
            return hmac.compare_digest(expected, user.pwhash)
        try:
            with self._hashing.slot():
                return self._hasher.verify(user.pwhash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _hash(self, password: str) -> str:
        """A new argon2 hash, within the bound on concurrent hashing."""
        with self._hashing.slot():
            return self._hasher.hash(password)

    def _upgrade_hash(self, user: User, password: str) -> None:
        assert user.pwhash is not None
        legacy = bool(user.pwsalt)
        if not legacy and not self._hasher.check_needs_rehash(user.pwhash):
            return
        pwhash = self._hash(password)  # before the write: the writer's turn is not for KDFs
        with self._db.write("user-rehash", config=True, user=user.name) as conn:
            store.update_user(conn, user.name, pwhash=pwhash, pwsalt=None)

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
        check_new_user_name(name)
        if name == TOKEN_USER:
            raise InvalidInput(f"{name!r} is reserved: it means 'the password is an API token'")
        if not acl.may_create_user(actor, self._settings.restrict_modify):
            raise Forbidden(f"no permission to create user {name}")
        info = self._user_info(given, ignore={"password", "pwhash"})
        password, pwhash = given.get("password"), given.get("pwhash")
        if not password:
            raise InvalidInput("password needs to be set")
        with self._db.read() as conn:  # before the slow hash; checked again when writing
            _refuse_look_alike(name, [other.name for other in store.list_users(conn)])
        user = User(
            name=name,
            pwhash=str(pwhash) if pwhash else self._hash(str(password)),
            pwsalt=None,
            info=info,
            created=now_text(),
            modified=None,
        )
        with self._db.write("user-create", config=True, user=name) as conn:
            _refuse_look_alike(name, [other.name for other in store.list_users(conn)])
            store.insert_user(conn, user)
        return user

    def create_initial(self, name: str, password: str | None, pwhash: str | None = None) -> None:
        """Create a user at init time (no permission check), e.g. root."""
        with self._db.write("user-create", config=True, user=name) as conn:
            store.insert_user(
                conn,
                User(
                    name=name,
                    pwhash=pwhash or self._hash(password or ""),
                    pwsalt=None,
                    info={},
                    created=now_text(),
                    modified=None,
                ),
            )

    def existing(self, name: str) -> User:
        """The user a change is about, looked up before the caller is judged (devpi's words):
        every user is listed publicly, so the 404 tells nobody anything new."""
        with self._db.read() as conn:
            user = store.get_user(conn, name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    def modify(self, actor: str | None, name: str, given: Mapping[str, Any]) -> UserUpdate:
        """Apply a PATCH: every key is done, or refused (400), never silently dropped."""
        user = self.existing(name)
        password_only = not set(given) - {"password"} - OUTPUT_ONLY_USER_KEYS
        if not acl.may_modify_user(actor, name, self._settings.restrict_modify, password_only):
            raise Forbidden(f"no permission to modify user {name}")
        password, pwhash = _new_credentials(given)
        requested = self._user_info(
            {k: v for k, v in given.items() if k not in CREDENTIAL_KEYS},
            ignore=OUTPUT_ONLY_USER_KEYS,
        )
        _check_read_only(user, given)
        if password is None and pwhash is None and not requested:
            raise InvalidInput(
                "nothing to change: give a password or one of "
                + ", ".join(sorted(SETTABLE_USER_KEYS))
            )
        if password is None and pwhash is None and not _info_changes(user.info, requested):
            return UserUpdate(changed=(), token=None)  # as asked already: nothing to write
        if pwhash is None and password is not None:
            pwhash = self._hash(password)  # outside the writer's turn
        with self._db.write("user-modify", config=True, user=name) as conn:
            current = store.get_user(conn, name)
            if current is None:
                raise NotFound(f"no user {name!r}")
            changed = _info_changes(current.info, requested)
            info = {k: v for k, v in (current.info | requested).items() if v not in EMPTY}
            values: dict[str, Any] = {"info": check_info_size(info), "modified": now_text()}
            if pwhash is not None:
                # A new stamp: the tokens issued with the old password stop working.
                values.update(pwhash=pwhash, pwsalt=None, token_stamp="")
                changed.append("password")
            store.update_user(conn, name, **values)
            audit.note(conn, changed=changed)  # the keys only: never a password or e-mail
        token = self.issue_token(name) if password is not None else None
        return UserUpdate(changed=tuple(changed), token=token)

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
                elif (config := acl.without_user(index.config, name)) is not None:
                    store.update_index_config(conn, index.id, config)
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


def _refuse_look_alike(name: str, existing: list[str]) -> None:
    """409 for a name that is, or looks like, an existing user's (case, NFKC, invisibles)."""
    key = user_key(name)
    for other in existing:
        if other == name:
            raise Conflict("user already exists")
        if user_key(other) == key:
            raise Conflict(
                f"user already exists: {name!r} is the same name as {other!r}"
                " (user names are compared ignoring case and look-alike characters)"
            )


def _new_credentials(given: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(password, pwhash) as given: a password may be empty (devpi sets it), a hash not."""
    password, pwhash = given.get("password"), given.get("pwhash")
    if password is not None and not isinstance(password, str):
        raise InvalidInput("password must be a string")
    if pwhash is not None and (not isinstance(pwhash, str) or not pwhash):
        raise InvalidInput("pwhash must be a non-empty string (a password hash)")
    return password, pwhash


def _check_read_only(user: User, given: Mapping[str, Any]) -> None:
    """`username` and `created` may be echoed back, not changed."""
    current = {"username": user.name, "created": user.created}
    for key in sorted(READ_ONLY_USER_KEYS & set(given)):
        if given[key] != current[key]:
            raise InvalidInput(f"'{key}' is set by the server and cannot be changed")


def _info_changes(info: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """The keys of `requested` whose value differs from what `info` holds."""
    return sorted(
        key
        for key, value in requested.items()
        if (None if value in EMPTY else value) != info.get(key)
    )
