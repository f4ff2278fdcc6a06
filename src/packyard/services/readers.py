"""Whose view a request shows: the caller whose read rights (`acl_read`) decide which indexes
of a resolution order count (services/indexes.py), narrowed by the scope of the API token they
authenticated with, if any.

The web layer's read check sets it once per request, where it decides that the caller may
read the requested index (web/readcheck.py); every resolution order computed while that request
runs then leaves out the bases that caller, or their token, may not read, however deep in a
thread the code asking for it runs (worker threads get a copy of the request's context).
Outside a request it is the anonymous view: code that forgets to set it shows less, never more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from packyard.core.tokens import Action, Need, TokenScope


@dataclasses.dataclass(frozen=True)
class Reader:
    """A user (None: anonymous) and the scope of the API token they came with (None: none).
    A token reads no more than its scope names, even through an index's bases."""

    user: str | None
    scope: TokenScope | None = None

    def scope_allows(self, full_name: str) -> bool:
        return self.scope is None or self.scope.allows(Need(full_name, Action.READ))


ANONYMOUS = Reader(None)
_READER: ContextVar[Reader] = ContextVar("packyard_reader", default=ANONYMOUS)


def current_reader() -> Reader:
    """Whose rights bound what this request shows (anonymous outside a request)."""
    return _READER.get()


@contextmanager
def reading_as(reader: Reader) -> Iterator[None]:
    token = _READER.set(reader)
    try:
        yield
    finally:
        _READER.reset(token)
