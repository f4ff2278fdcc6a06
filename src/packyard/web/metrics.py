"""`/+metrics`: the host's numbers in the Prometheus text format, summed over its workers.

`packyard serve` points PROMETHEUS_MULTIPROC_DIR at a directory under the server dir, emptied
at start (cli/main.py `_metrics_dir`), before any worker imports prometheus_client: each worker
then writes its values to memory-mapped files there, and whichever worker answers a scrape sums
them all. Without that variable (an app built in-process) the app's own registry is read.

Requests are counted by route TEMPLATE (`/{user}/{index}/+simple/{project}`), never by the raw
path, and by a method from a fixed list: a client cannot create new series by inventing URLs.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from packyard.core.tokens import Action
from packyard.errors import ConfigError, Forbidden, Unauthenticated
from packyard.services.mirror.upstream import MirrorStats
from packyard.services.telemetry import summed_exposition
from packyard.web.auth import client_address, current_user
from packyard.web.lookup import services_of
from packyard.web.scopes import classify, content_type, matched_route

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "PUSH", "OPTIONS"})
UNMATCHED = "(unmatched)"  # every path no route takes, as one series
# Seconds: from a cached page (well under a millisecond) to a large file or a slow upstream.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclasses.dataclass
class RequestLabels:
    """What one request is counted under: bounded sets only (see module doc)."""

    route: str
    method: str
    is_upload: bool


def request_labels(scope: Scope) -> RequestLabels:
    method = scope["method"] if scope["method"] in METHODS else "OTHER"
    matched = matched_route(scope)
    if matched is None:
        return RequestLabels(UNMATCHED, method, False)
    template, params = matched
    need = classify(template, method, params, content_type(scope))
    return RequestLabels(template, method, need is not None and need.action is Action.UPLOAD)


class Metrics:
    """The host's metrics; one per app (its registry serves in-process apps)."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allowed_networks = _networks(allow)
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV, "")
        registry = self.registry
        self.requests = Counter(
            "packyard_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "packyard_request_duration_seconds", "Seconds from request to the response's end",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.uploads = Counter(
            "packyard_uploads", "Uploads (files, tox results) by status", ["status"],
            registry=registry,
        )  # fmt: skip
        self.mirror = Counter(
            "packyard_mirror", "Mirror cache events: file hits and misses, bytes from the cache"
            " and from the upstream, upstream errors, page fetches", ["event"], registry=registry,
        )  # fmt: skip
        self.serial = Gauge(
            "packyard_change_serial", "The change serial this host has seen",
            multiprocess_mode="max", registry=registry,
        )  # fmt: skip
        self._mirror_seen = MirrorStats()

    def record(self, labels: RequestLabels, status: int, seconds: float) -> None:
        self.requests.labels(labels.route, labels.method, str(status)).inc()
        self.latency.labels(labels.route, labels.method).observe(seconds)
        if labels.is_upload:
            self.uploads.labels(str(status)).inc()

    def follow_mirror(self, stats: MirrorStats) -> None:
        """Add what this worker's mirror counted since the last call (a compare when nothing
        changed: the counters live in the service, which knows nothing of Prometheus)."""
        if stats == self._mirror_seen:
            return
        now = dataclasses.replace(stats)
        for event, value in now.as_dict().items():
            delta = value - getattr(self._mirror_seen, event)
            if delta > 0:
                self.mirror.labels(event).inc(delta)
        self._mirror_seen = now

    async def exposition(self) -> bytes:
        """The text format: every worker's files summed, or this app's registry."""
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        return await summed_exposition(self.multiprocess_dir)


async def metrics_page(request: Request) -> Response:
    """`GET /+metrics` for the addresses in `metrics_allow`, and for root."""
    services = services_of(request)
    metrics: Metrics = request.app.state.metrics
    if not _address_allowed(client_address(request), metrics.allowed_networks):
        user = await current_user(request, services)
        if user is None:
            raise Unauthenticated("the metrics are for root (or the addresses in metrics_allow)")
        if user != "root":
            raise Forbidden("the metrics are for root (or the addresses in metrics_allow)")
    metrics.serial.set(services.serial)
    metrics.follow_mirror(services.mirrors.stats)
    body = await metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(allow: Iterable[str]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(network, strict=False) for network in allow)
    except ValueError as exc:
        raise ConfigError(f"setting 'metrics_allow': {exc}") from exc


def _address_allowed(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # no address (a Unix socket): root only
    return any(ip in network for network in networks)
