"""Scoped API tokens: their text form, their scope, and what a request needs of a scope.

A token is `pky_` + a public id (16 hex digits) + a secret (43 characters of [A-Za-z0-9],
about 256 bits). The prefix lets secret scanners find leaked tokens; the id finds the stored
row; only the sha256 of the whole text is stored. Pure: no I/O, no randomness (the service
draws the random parts).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable
from enum import StrEnum

from packyard.errors import InvalidInput

PREFIX = "pky_"
ID_LENGTH = 16
SECRET_LENGTH = 43
SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(rf"^{PREFIX}([0-9a-f]{{{ID_LENGTH}}})([A-Za-z0-9]{{{SECRET_LENGTH}}})$")
# The user name that says "the password is an API token" (as PyPI, twine and uv expect).
TOKEN_USER = "__token__"
# A scope entry meaning every index the owner can reach (never more than the owner).
ALL_INDEXES = "*"
MAX_DESCRIPTION = 200
MAX_SCOPE_INDEXES = 50


class Action(StrEnum):
    """What a request does, as far as a token's scope is concerned."""

    READ = "read"
    UPLOAD = "upload"
    ADMIN = "admin"  # change or delete indexes, projects, versions, files (yank included)
    # Change accounts or credentials (users, passwords, tokens, logout): never by a token, so
    # that a leaked token can neither mint more tokens nor take the account over.
    ACCOUNT = "account"


GRANTABLE = frozenset({Action.READ, Action.UPLOAD, Action.ADMIN})
VERBS = {
    Action.READ: "read",
    Action.UPLOAD: "upload to",
    Action.ADMIN: "change or delete on",
    Action.ACCOUNT: "change accounts on",
}


@dataclasses.dataclass(frozen=True)
class Need:
    """What one request needs: an action on an index (`user/name`), or on no index (server
    and user routes), which only a token for all indexes (`*`) covers."""

    index: str | None
    action: Action


@dataclasses.dataclass(frozen=True)
class TokenScope:
    indexes: frozenset[str]
    actions: frozenset[Action]

    def allows(self, need: Need) -> bool:
        if need.action not in self.actions:
            return False
        return ALL_INDEXES in self.indexes or need.index in self.indexes

    def refusal(self, need: Need) -> str:
        """Why `need` is out of this scope, for the person reading the 403."""
        if need.action == Action.ACCOUNT:
            return (
                "an API token cannot change accounts or credentials (users, passwords, tokens):"
                " use your password or a login token (`packyard login`)"
            )
        where = f"index {need.index}" if need.index else "every index (this route needs '*')"
        return f"this API token may not {VERBS[need.action]} {where}: its scope is {describe(self)}"


def describe(scope: TokenScope) -> str:
    actions = ",".join(sorted(scope.actions))
    return f"{actions} on {', '.join(sorted(scope.indexes))}"


@dataclasses.dataclass(frozen=True)
class ApiToken:
    """A stored token: never its secret, only the secret's sha256."""

    id: str
    user: str
    secret_sha256: str
    scope: TokenScope
    description: str
    created: float
    expires: float | None
    last_used: float | None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


@dataclasses.dataclass(frozen=True)
class ParsedToken:
    id: str
    sha256: str


def format_token(token_id: str, secret: str) -> str:
    return f"{PREFIX}{token_id}{secret}"


def parse_token(text: str) -> ParsedToken | None:
    """The id and the hash to compare of a token's text; None if it is no token of ours."""
    match = _TOKEN.match(text)
    if match is None:
        return None
    return ParsedToken(match.group(1), secret_hash(text))


def secret_hash(text: str) -> str:
    """sha256 of the whole token: a 256-bit random secret needs no slow KDF (no dictionary
    to try, no way to brute-force the space), and checking it costs microseconds."""
    return hashlib.sha256(text.encode()).hexdigest()


def parse_scope(indexes: Iterable[object], actions: Iterable[object]) -> TokenScope:
    """A scope as a client asked for it; InvalidInput says what is wrong."""
    index_set = frozenset(_index_entry(entry) for entry in indexes)
    if not index_set:
        raise InvalidInput("a token needs at least one index (USER/INDEX, or '*' for all)")
    if len(index_set) > MAX_SCOPE_INDEXES:
        raise InvalidInput(f"a token may name at most {MAX_SCOPE_INDEXES} indexes")
    action_set = frozenset(_action(entry) for entry in actions)
    if not action_set:
        raise InvalidInput("a token needs at least one action: read, upload or admin")
    return TokenScope(index_set, action_set)


def _index_entry(entry: object) -> str:
    text = str(entry).strip().strip("/") if isinstance(entry, str) else ""
    if text == ALL_INDEXES:
        return text
    parts = text.split("/")
    if len(parts) != 2 or not all(parts) or any(p.startswith("+") for p in parts):
        raise InvalidInput(f"{entry!r} is no index: use USER/INDEX, or '*' for all")
    return text


def _action(entry: object) -> Action:
    try:
        action = Action(str(entry).strip().lower())
    except ValueError:
        action = Action.ACCOUNT  # refused below, with the same message
    if action not in GRANTABLE:
        raise InvalidInput(f"{entry!r} is no token action: use read, upload or admin")
    return action


def check_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidInput(f"description: a text of at most {MAX_DESCRIPTION} characters")
    return value.strip()
