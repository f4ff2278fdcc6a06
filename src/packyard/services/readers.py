"""Whose view a request shows: the caller whose read rights (`acl_read`) decide which indexes
of a resolution order count (services/indexes.py).

The web layer's read check sets it once per request, where it decides that the caller may
read the requested index (web/lookup.py); every resolution order computed while that request
runs then leaves out the bases that caller may not read, however deep in a thread the code
asking for it runs (worker threads get a copy of the request's context). Outside a request it
is the anonymous view: code that forgets to set it shows less, never more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_READER: ContextVar[str | None] = ContextVar("packyard_reader", default=None)


def current_reader() -> str | None:
    """The user whose rights bound what this request shows (None: anonymous)."""
    return _READER.get()


@contextmanager
def reading_as(user: str | None) -> Iterator[None]:
    token = _READER.set(user)
    try:
        yield
    finally:
        _READER.reset(token)
