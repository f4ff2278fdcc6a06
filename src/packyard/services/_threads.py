"""The one hop from the event loop to synchronous storage (SQL, blobs, CPU-heavy parsing).

Services call it; handlers never decide what may block (datasette's `Database.execute_fn`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in a worker thread, awaited from the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
