"""When a mirror asks its upstream again: what one worker remembers per (index, project).

A pure policy over an injected clock (`Callable[[], float]`, seconds), so tests can move time
instead of sleeping. Every memory is bounded: clients naming endless projects cannot grow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from packyard.core.indexconfig import MirrorConfig
from packyard.core.mirror import is_fresh

Key = tuple[int, str]  # (index id, project)
V = TypeVar("V")

# After a failed revalidation, the stored page is served without asking again for this long.
RETRY_AFTER = 30.0
# A failed first fetch is answered from memory this long, so a hanging upstream is not
# waited for again by every request.
FAILURE_MEMORY = 5.0
# devpi's refresh needs no login: anyone may ask, but the upstream is asked again at most this
# often per project and worker.
REFRESH_INTERVAL = 10.0
# Per-project entries a worker remembers (freshness, failures, refreshes): past this, expired
# ones are dropped, so clients naming endless projects cannot grow the worker's memory.
MAX_REMEMBERED = 10_000


class Freshness:
    """Which stored pages are fresh, which first fetches just failed, which refreshes ran."""

    def __init__(self, default_expiry: int, clock: Callable[[], float] = time.time) -> None:
        self._default_expiry = default_expiry
        self.now = clock
        self._fresh_until: dict[Key, float] = {}
        # Never-fetched pages whose fetch just failed: (until, message), to fail fast.
        self._failures: dict[Key, tuple[float, str]] = {}
        self._force_refresh: set[Key] = set()
        self._refreshed_at: dict[Key, float] = {}

    def expiry(self, config: MirrorConfig) -> int:
        """Seconds a fetched page stays fresh: the index's own setting, else the server's."""
        expiry = config.mirror_cache_expiry
        return self._default_expiry if expiry is None else expiry

    def is_fresh(self, key: Key) -> bool:
        """Known fresh in this worker, without touching the database."""
        return self._fresh_until.get(key, 0.0) > self.now()

    def stored_is_fresh(self, fetched_at: float, expiry: int) -> bool:
        """Whether something fetched at `fetched_at` is still fresh."""
        return is_fresh(fetched_at, expiry, self.now())

    def fresh_until(self, key: Key, until: float) -> None:
        """Answer from the stored page, without asking the upstream, until `until`."""
        now = self.now()
        _prune(self._fresh_until, lambda expires: expires > now)
        self._fresh_until[key] = until

    def fetched(self, key: Key, at: float, expiry: int) -> None:
        """The upstream answered at `at`: fresh for `expiry`, and no failure remembered."""
        self.fresh_until(key, at + expiry)
        self._failures.pop(key, None)

    def served_stale(self, key: Key) -> None:
        """A revalidation failed and the stored page was served: stop asking for a while."""
        self.fresh_until(key, self.now() + RETRY_AFTER)

    def forget(self, key: Key) -> None:
        """Treat the stored page as stale: the next request asks the upstream (devpi refresh)."""
        self._fresh_until.pop(key, None)
        self._failures.pop(key, None)
        self._force_refresh.add(key)

    def take_forced(self, key: Key) -> bool:
        """Whether a refresh was asked for since the last look (and clear the request)."""
        forced = key in self._force_refresh
        self._force_refresh.discard(key)
        return forced

    def failure(self, key: Key) -> str | None:
        """What a recent failed first fetch said, while it is remembered."""
        failed = self._failures.get(key)
        return failed[1] if failed is not None and failed[0] > self.now() else None

    def remember_failure(self, key: Key, message: str) -> None:
        now = self.now()
        _prune(self._failures, lambda failure: failure[0] > now)
        self._failures[key] = (now + FAILURE_MEMORY, message)

    def may_refresh(self, key: Key) -> bool:
        """devpi's refresh, rate-limited: True (and noted) at most once per REFRESH_INTERVAL."""
        now = self.now()
        if now - self._refreshed_at.get(key, 0.0) < REFRESH_INTERVAL:
            return False
        _prune(self._refreshed_at, lambda at: now - at < REFRESH_INTERVAL)
        self._refreshed_at[key] = now
        return True


def _prune(remembered: dict[Key, V], keep: Callable[[V], bool]) -> None:
    """Bound a per-project memory: past MAX_REMEMBERED entries drop the expired ones, and if
    that is not enough, all of them (each is only a saved upstream request)."""
    if len(remembered) < MAX_REMEMBERED:
        return
    for key in [key for key, value in remembered.items() if not keep(value)]:
        del remembered[key]
    if len(remembered) >= MAX_REMEMBERED:
        remembered.clear()
