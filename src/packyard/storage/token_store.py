"""The SQL of scoped API tokens (rows of `api_tokens`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from packyard.core.tokens import Action, ApiToken, TokenScope
from packyard.storage.tables import api_tokens


def _token(row: Row[Any]) -> ApiToken:
    scope = TokenScope(frozenset(row.indexes), frozenset(Action(a) for a in row.actions))
    return ApiToken(
        id=row.id,
        user=row.user,
        secret_sha256=row.secret_sha256,
        scope=scope,
        description=row.description,
        created=row.created,
        expires=row.expires,
        last_used=row.last_used,
    )


def insert_token(conn: Connection, token: ApiToken) -> None:
    conn.execute(
        insert(api_tokens).values(
            id=token.id,
            user=token.user,
            secret_sha256=token.secret_sha256,
            indexes=sorted(token.scope.indexes),
            actions=sorted(token.scope.actions),
            description=token.description,
            created=token.created,
            expires=token.expires,
            last_used=token.last_used,
        )
    )


def all_tokens(conn: Connection) -> dict[str, ApiToken]:
    """id -> token, for every user (what authentication looks tokens up in)."""
    return {row.id: _token(row) for row in conn.execute(select(api_tokens))}


def user_tokens(conn: Connection, user: str) -> list[ApiToken]:
    query = select(api_tokens).where(api_tokens.c.user == user).order_by(api_tokens.c.created)
    return [_token(row) for row in conn.execute(query)]


def count_user_tokens(conn: Connection, user: str) -> int:
    return len(conn.execute(select(api_tokens.c.id).where(api_tokens.c.user == user)).all())


def delete_token(conn: Connection, user: str, token_id: str) -> bool:
    """Remove `user`'s token `token_id`; whether there was one."""
    query = delete(api_tokens).where(api_tokens.c.user == user, api_tokens.c.id == token_id)
    return bool(conn.execute(query).rowcount)


def touch_token(conn: Connection, token_id: str, at: float) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used=at))
