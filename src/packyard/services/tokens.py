"""Scoped API tokens: create, list, revoke, and recognise them on a request.

A token authenticates as its owner, so the ACLs apply unchanged (a token never exceeds its
owner's rights); its scope is an extra limit, checked for each request by the web layer.
Checking a token is a dictionary lookup and one sha256: no KDF, no thread hop while the cached
table is current, and no password throttle for a right token. A wrong one counts against the
client address only (shared with its password guesses): a 256-bit secret needs no per-user
limit, and counting it against the owner would let a stranger lock the owner out.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from packyard.core.acl import ROOT
from packyard.core.tokens import (
    ID_LENGTH,
    SECRET_ALPHABET,
    SECRET_LENGTH,
    TOKEN_USER,
    ApiToken,
    TokenScope,
    check_description,
    describe,
    format_token,
    parse_scope,
    parse_token,
)
from packyard.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from packyard.services.accounts import Accounts
from packyard.services.cache import SerialCache
from packyard.services.indexes import Indexes
from packyard.storage import token_store
from packyard.storage.db import Database

MAX_TOKENS_PER_USER = 100
MAX_LIFETIME = 10 * 366 * 24 * 3600  # seconds; "no expiry" is asked for by leaving it out
# A token's last use is written at most this often (seconds): it is bookkeeping, not content.
TOUCH_INTERVAL = 60.0
NOT_VALID = "the API token is not valid: it was revoked, its owner was deleted, or it was mistyped"


@dataclasses.dataclass(frozen=True)
class TokenRequest:
    """What a client asks for when creating a token (validated)."""

    scope: TokenScope
    expires_in: int | None
    description: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> TokenRequest:
        unknown = set(body) - {"indexes", "actions", "expires_in", "description"}
        if unknown:
            raise InvalidInput(f"unknown keys in token request: {', '.join(sorted(unknown))}")
        indexes, actions = body.get("indexes"), body.get("actions")
        if not isinstance(indexes, list) or not isinstance(actions, list):
            raise InvalidInput(
                'expected {"indexes": ["USER/INDEX" or "*"], "actions": ["read", "upload",'
                ' "admin"], "expires_in": SECONDS, "description": TEXT}'
            )
        description = check_description(body.get("description"))
        return cls(parse_scope(indexes, actions), _lifetime(body.get("expires_in")), description)


@dataclasses.dataclass(frozen=True)
class NewToken:
    """A token just created: `text` is shown once and never stored."""

    token: ApiToken
    text: str


def _lifetime(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIFETIME:
        raise InvalidInput(f"expires_in: whole seconds from 1 to {MAX_LIFETIME}, or leave it out")
    return value


def may_manage_tokens(actor: str | None, owner: str) -> bool:
    """List or revoke a user's tokens: the user and root."""
    return actor is not None and actor in (ROOT, owner)


def time_text(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token as clients see it: everything but its secret (and the secret's hash)."""
    return {
        "id": token.id,
        "user": token.user,
        "indexes": sorted(token.scope.indexes),
        "actions": sorted(token.scope.actions),
        "description": token.description,
        "created": time_text(token.created),
        "expires": time_text(token.expires),
        "last_used": time_text(token.last_used),
    }


class ApiTokens:
    def __init__(
        self,
        db: Database,
        accounts: Accounts,
        indexes: Indexes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._indexes = indexes
        self._clock = clock
        # Token writes are config writes: every worker drops this at once.
        self._known: SerialCache[Mapping[str, ApiToken]] = SerialCache(db.serial.read_config, 1)
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()

    # --- recognising a token ---------------------------------------------------------------

    def cached(self) -> Mapping[str, ApiToken] | None:
        """Every token by id if the cached table is current (no database read)."""
        return self._known.get("tokens")

    def load(self) -> Mapping[str, ApiToken]:
        return self._known.get_or_compute("tokens", self._read_all)

    def _read_all(self) -> Mapping[str, ApiToken]:
        with self._db.read() as conn:
            return token_store.all_tokens(conn)

    def verify(
        self, name: str, secret: str, address: str, known: Mapping[str, ApiToken]
    ) -> ApiToken | None:
        """The token `secret` is, sent with user `name` (`__token__` or its owner); None when
        `secret` is no API token (a password or login token: the accounts decide). Raises
        Unauthenticated for a wrong, revoked or expired token."""
        parsed = parse_token(secret)
        if parsed is None:
            if name != TOKEN_USER:
                return None
            self._accounts.count_failed_token(address)
            raise Unauthenticated(
                f"user {TOKEN_USER} takes an API token (pky_...) as its password, and this is none"
            )
        token = known.get(parsed.id)
        if (
            token is None
            or not hmac.compare_digest(token.secret_sha256, parsed.sha256)
            or name not in (TOKEN_USER, token.user)
        ):
            self._accounts.count_failed_token(address)
            raise Unauthenticated(NOT_VALID)
        if token.expired(self._clock()):
            raise Unauthenticated(
                f"the API token {token.id} expired at {time_text(token.expires)}: create a new one"
            )
        return token

    def due_for_touch(self, token: ApiToken) -> bool:
        """Whether to record this use (at most once per TOUCH_INTERVAL per token)."""
        now = time.monotonic()
        with self._touch_lock:
            if self._touched.get(token.id, -TOUCH_INTERVAL) > now - TOUCH_INTERVAL:
                return False
            if len(self._touched) > 10_000:
                self._touched.clear()
            self._touched[token.id] = now
            return True

    def touch(self, token_id: str) -> None:
        with self._db.write_bookkeeping() as conn:
            token_store.touch_token(conn, token_id, self._clock())

    # --- managing tokens ---------------------------------------------------------------------

    def create(self, actor: str | None, owner: str, request: TokenRequest) -> NewToken:
        """A new token of `owner`, created by `owner` alone (authenticated by password or
        login token: the web layer refuses API tokens here)."""
        self._accounts.existing(owner)
        if actor is None:
            raise Unauthenticated("log in first: tokens are created by their owner")
        if actor != owner:
            raise Forbidden(f"only {owner} can create tokens for {owner}")
        self._check_indexes(request.scope)
        now = self._clock()
        text, parsed_id = _new_token_text()
        token = ApiToken(
            id=parsed_id,
            user=owner,
            secret_sha256=_hash_of(text),
            scope=request.scope,
            description=request.description,
            created=now,
            expires=now + request.expires_in if request.expires_in else None,
            last_used=None,
        )
        with self._db.write("token-create", config=True, user=owner, token_id=token.id) as conn:
            if token_store.count_user_tokens(conn, owner) >= MAX_TOKENS_PER_USER:
                raise InvalidInput(
                    f"{owner} has {MAX_TOKENS_PER_USER} tokens already: revoke some first"
                )
            token_store.insert_token(conn, token)
        return NewToken(token, text)

    def _check_indexes(self, scope: TokenScope) -> None:
        known = self._indexes.all()
        missing = sorted(name for name in scope.indexes if name != "*" and name not in known)
        if missing:
            raise InvalidInput(f"no such index: {', '.join(missing)} (scope {describe(scope)})")

    def list(self, actor: str | None, owner: str) -> list[ApiToken]:
        self._check_may_manage(actor, owner)
        with self._db.read() as conn:
            return token_store.user_tokens(conn, owner)

    def revoke(self, actor: str | None, owner: str, token_id: str) -> None:
        self._check_may_manage(actor, owner)
        with self._db.write("token-revoke", config=True, user=owner, token_id=token_id) as conn:
            if not token_store.delete_token(conn, owner, token_id):
                raise NotFound(f"{owner} has no token {token_id!r}")

    def _check_may_manage(self, actor: str | None, owner: str) -> None:
        self._accounts.existing(owner)
        if actor is None:
            raise Unauthenticated("log in first: tokens are listed by their owner or root")
        if not may_manage_tokens(actor, owner):
            raise Forbidden(f"only {owner} and root can see or revoke the tokens of {owner}")


def _new_token_text() -> tuple[str, str]:
    token_id = secrets.token_hex(ID_LENGTH // 2)
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return format_token(token_id, secret), token_id


def _hash_of(text: str) -> str:
    parsed = parse_token(text)
    assert parsed is not None
    return parsed.sha256
