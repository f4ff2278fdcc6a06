"""Limits on password guessing: failed logins per user name and per client address, and a
bound on how many (memory-hungry) password hashes run at once.

Both live in one process: with several workers each keeps its own counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from packyard.core.names import user_key
from packyard.errors import Busy, TooManyAttempts

# Past this many remembered failures the oldest are forgotten early (memory stays bounded),
# and names are counted by their first characters only (no valid name is longer).
MAX_REMEMBERED_FAILURES = 100_000
MAX_KEY_LENGTH = 256
# The user of a failure that names no account (a wrong API token): counted per address only.
NO_ACCOUNT = "\0"


@dataclass
class Guess:
    """One password check in progress; counted as a failure unless marked `correct`."""

    user: str
    address: str
    at: float
    correct: bool = False


class LoginThrottle:
    """Sliding-window counts of failed password checks per user name and per address.

    A check in progress counts as a failure until it succeeds, so a burst of parallel guesses
    is cut off at the limit, not after all of them were hashed. A success forgets the failures
    of that user name from that address (a typo does not linger), but not those from others.
    """

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_user, self._per_address, self._window = per_user, per_address, window
        self._clock = clock
        self._lock = threading.Lock()
        self._times: dict[tuple[str, str], deque[float]] = {}  # (user, address) -> failures
        self._users: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()
        self._order: deque[tuple[float, str, str]] = deque()  # every failure, oldest first

    @contextmanager
    def guess(self, user: str, address: str) -> Iterator[Guess]:
        """Hold a place for one password check; raises TooManyAttempts over the limits.

        An exception inside withdraws the guess (it was never judged, e.g. the server was
        busy); leaving without `correct` records a failure.
        """
        # Cut after folding too: NFKC can make one character eighteen.
        key = user_key(user[:MAX_KEY_LENGTH])[:MAX_KEY_LENGTH]
        attempt = self._begin(key, address[:MAX_KEY_LENGTH])
        try:
            yield attempt
        except BaseException:
            self._withdraw(attempt)
            raise
        if attempt.correct:
            self._forget_pair(attempt.user, attempt.address)

    def failed_without_account(self, address: str) -> None:
        """Count a failure that names no account (a wrong API token: its 256-bit secret needs
        no per-user limit, and counting it against the owner would let anyone who knows a
        token's public id lock the owner's password out). Raises TooManyAttempts over the
        address's limit."""
        self._begin(NO_ACCOUNT, address[:MAX_KEY_LENGTH])

    def _begin(self, user: str, address: str) -> Guess:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if user != NO_ACCOUNT and self._users[user] >= self._per_user:
                raise TooManyAttempts(
                    f"too many failed logins for user {user!r}; retry later",
                    int(self._window),
                )
            if self._addresses[address] >= self._per_address:
                raise TooManyAttempts(
                    "too many failed logins from your address; retry later", int(self._window)
                )
            self._times.setdefault((user, address), deque()).append(now)
            if user != NO_ACCOUNT:
                self._users[user] += 1
            self._addresses[address] += 1
            self._order.append((now, user, address))
            return Guess(user, address, now)

    def _withdraw(self, attempt: Guess) -> None:
        with self._lock:
            times = self._times.get((attempt.user, attempt.address))
            if times is not None and attempt.at in times:
                times.remove(attempt.at)
                self._uncount(attempt.user, attempt.address, 1)

    def _forget_pair(self, user: str, address: str) -> None:
        with self._lock:
            times = self._times.pop((user, address), None)
            if times:
                self._uncount(user, address, len(times))

    def _expire(self, now: float) -> None:
        """Drop failures older than the window (and the oldest beyond the memory bound).

        `_order` may name failures already withdrawn or forgotten: those are skipped."""
        while self._order and (
            self._order[0][0] <= now - self._window or len(self._order) > MAX_REMEMBERED_FAILURES
        ):
            at, user, address = self._order.popleft()
            times = self._times.get((user, address))
            if times and times[0] == at:
                times.popleft()
                self._uncount(user, address, 1)

    def _uncount(self, user: str, address: str, count: int) -> None:
        counted = [(self._addresses, address)]
        if user != NO_ACCOUNT:
            counted.append((self._users, user))
        for counter, key in counted:
            counter[key] -= count
            if counter[key] <= 0:
                del counter[key]
        if not self._times.get((user, address), True):
            del self._times[(user, address)]


class HashingLimit:
    """At most `concurrency` password hashes at once (argon2 takes 64 MiB each); up to
    `waiting` more callers wait their turn for at most `timeout` seconds, the rest are
    refused at once, so a flood of guesses holds neither memory nor every worker thread."""

    def __init__(self, concurrency: int, waiting: int, timeout: float) -> None:
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._room = threading.BoundedSemaphore(max(1, concurrency) + max(0, waiting))
        self._timeout = timeout

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._room.acquire(blocking=False):
            raise Busy("too many password checks at once; retry in a few seconds", 5)
        try:
            if not self._slots.acquire(timeout=self._timeout):
                raise Busy("too many password checks at once; retry in a few seconds", 5)
            try:
                yield
            finally:
                self._slots.release()
        finally:
            self._room.release()
