"""Who is asking: credentials from `X-Devpi-Auth` or HTTP Basic (devpi-protocol.md §2.2)."""

from __future__ import annotations

import base64
import binascii

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from packyard.services import Services


def credentials(request: Request) -> tuple[str, str] | None:
    """(user, secret) as sent, or None; the secret may be a token or a password."""
    encoded = request.headers.get("x-devpi-auth")
    if encoded is None:
        scheme, _, encoded_basic = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        encoded = encoded_basic
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, secret = decoded.partition(":")
    if not sep or not user:
        return None
    return user, secret


async def current_user(request: Request, services: Services) -> str | None:
    """The authenticated user name, or None for anonymous (also for bad credentials)."""
    sent = credentials(request)
    if sent is None:
        return None
    cached: dict[tuple[str, str], str | None] = request.scope.setdefault("packyard.auth", {})
    if sent not in cached:
        decided, user = services.accounts.authenticate_quickly(*sent)
        if not decided:
            user = await run_in_threadpool(services.accounts.authenticate, *sent)
        cached[sent] = user
    return cached[sent]
