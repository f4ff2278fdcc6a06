"""Liveness and readiness for load balancers and orchestrators (`/+health`).

Readiness asks the database for `SELECT 1` and the blob store for a trivial answer, each
within `health_timeout` seconds. The answer names what failed, never why in detail: it is
open to anonymous callers, and an error's text can carry host names or addresses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from packyard.storage.blobs import BlobStore
from packyard.storage.db import Database

OK = "ok"


class Health:
    def __init__(self, db: Database, blobs: BlobStore, timeout: float) -> None:
        self._checks: dict[str, Callable[[], None]] = {"database": db.check, "blobs": blobs.check}
        self._timeout = timeout

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state: "ok", or what is wrong with it in a few words."""
        names = list(self._checks)
        states = await asyncio.gather(*(self._state(self._checks[name]) for name in names))
        return dict(zip(names, states, strict=True))

    async def _state(self, check: Callable[[], None]) -> str:
        try:
            # Not `in_thread`: anyio waits for a thread it cancels; this one is left behind
            # (a hung check finishes or fails on its own) and the probe answers in time.
            await asyncio.wait_for(asyncio.to_thread(check), self._timeout)
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except Exception as exc:  # any failure means not ready; its text stays in the log
            return f"unavailable ({type(exc).__name__})"
        return OK
