"""Reading the metrics every worker process of this host wrote (prometheus-client's
multiprocess files): file reads, so off the event loop, like every other use case."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from packyard.services._threads import in_thread


async def summed_exposition(directory: str) -> bytes:
    """The Prometheus text format of every worker's samples in `directory`, summed."""
    return await in_thread(_summed, directory)


def _summed(directory: str) -> bytes:
    summed = CollectorRegistry()
    collector = prometheus_multiprocess.MultiProcessCollector  # untyped
    collector(summed, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(summed)
