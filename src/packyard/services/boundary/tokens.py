"""Scoped API tokens as the web layer awaits them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from packyard.core.tokens import PREFIX, TOKEN_USER, ApiToken
from packyard.services._threads import in_thread
from packyard.services.tokens import NewToken, TokenRequest

if TYPE_CHECKING:
    from packyard.services import Services


class TokenUseCases:
    def __init__(self, services: Services) -> None:
        self._tokens = services.tokens

    async def authenticate(self, name: str, secret: str, address: str) -> ApiToken | None:
        """The API token sent, or None when the secret is none (a password or login token).
        Settled on the event loop while the cached token table is current."""
        if name != TOKEN_USER and not secret.startswith(PREFIX):
            return None
        known = self._tokens.cached()
        if known is None:
            known = await in_thread(self._tokens.load)
        token = self._tokens.verify(name, secret, address, known)
        if token is not None and self._tokens.due_for_touch(token):
            await in_thread(self._tokens.touch, token.id)
        return token

    async def create(self, actor: str | None, owner: str, request: TokenRequest) -> NewToken:
        return await in_thread(self._tokens.create, actor, owner, request)

    async def list(self, actor: str | None, owner: str) -> list[ApiToken]:
        return await in_thread(self._tokens.list, actor, owner)

    async def revoke(self, actor: str | None, owner: str, token_id: str) -> None:
        await in_thread(self._tokens.revoke, actor, owner, token_id)
