"""The one outbound request policy: every request this server makes to another host (mirror
pages, project lists, mirror files, pushes to an external upload URL) goes through `Outbound`.

What it enforces, so that no caller can forget it:

- only http and https;
- the destination is checked on the RESOLVED address of every connection, and the connection
  goes to the address that was checked (redirects and DNS rebinding gain nothing): loopback,
  link-local, private, shared, multicast, reserved and unspecified addresses are refused unless
  root names them in the setting `outbound_allowed_networks`. Origins that root did not choose
  (a file host named by an upstream page) get only public addresses and hosts named there;
- an overall deadline per fetch and a byte cap per body;
- at most `outbound_max_concurrent` fetches at once per worker, all on the event loop: a hung
  remote holds no worker thread and cannot starve request handling;
- the detail of a failure (which tells an open port from a closed one, or carries a remote
  body) is logged here; callers get an `OutboundFailure` and answer with generic words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpcore
import httpx

from packyard.config import Settings
from packyard.errors import InvalidInput

log = logging.getLogger("packyard.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
CHUNK = 256 * 1024


class OutboundFailure(Exception):
    """A fetch failed or was refused; the detail went to the log, not into this message."""


class DestinationRefused(Exception):
    """The destination's address is not one this server may connect to."""


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A whole (capped) response body with what callers need of the response."""

    status: int
    headers: httpx.Headers
    url: str
    body: bytes


def origin_of(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host.lower(), port


class DestinationRule:
    """Which addresses a connection may go to (pure, no I/O)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for entry in allowed:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def allows(self, host: str, address: IPAddress, trusted_origin: bool) -> bool:
        """Public addresses always; hosts root names always; root's networks only for origins
        root chose (an upstream page must not steer fetches into them)."""
        if host.lower().rstrip(".") in self.hosts:
            return True
        if _is_public(address):
            return True
        return trusted_origin and any(address in network for network in self.networks)

    def check_literal(self, host: str) -> None:
        """Refuse names that are internal by definition, and internal IP literals."""
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return
        if name == "localhost" or name.endswith(".localhost"):
            raise DestinationRefused(f"{host} is this machine")
        address = _literal(name)
        if address is not None and not self.allows(name, address, trusted_origin=True):
            raise DestinationRefused(f"{host} is not a public address")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# Networks that lead to this machine or into the network around it, or are no destination at
# all. Not `not is_global`: that also refuses the documentation and benchmarking ranges, which
# lead nowhere internal (and which some resolvers hand out for public hosts behind a proxy).
INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/32", "fc00::/7",
        "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
# IPv6 forms that carry an IPv4 address, which is what the connection reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return not any(address in network for network in INTERNAL_NETWORKS)


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to checked addresses: the host is resolved here, every address checked,
    and the socket opened to the checked address (TLS still verifies the host name)."""

    def __init__(self, rule: DestinationRule, trusted_origin: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._rule = rule
        self._trusted = trusted_origin

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        allowed = [a for a in addresses if self._rule.allows(host, a, self._trusted)]
        if not allowed or len(allowed) < len(addresses):
            shown = ", ".join(map(str, addresses)) or "nothing"
            raise DestinationRefused(f"{host} resolves to {shown}: not an allowed destination")
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}")
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix sockets are not a destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    found = dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    return list(found)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on the checking network backend."""

    def __init__(self, backend: _CheckedBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx has no parameter for httpcore's network backend; the pool is swapped for one
        # built like httpx's own, on the checking backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


class Outbound:
    """Makes every server-side request, under the policy described in the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.rule = DestinationRule(settings.outbound_allowed_networks)
        self._slots = asyncio.Semaphore(settings.outbound_max_concurrent)
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def check_url(self, url: str, what: str) -> None:
        """Refuse a URL that could never be fetched (scheme, internal literal); for config
        checks, with the reason (InvalidInput). Names are looked up by `check_resolved`."""
        parsed = _parsed(url, what)
        try:
            self.rule.check_literal(parsed.host)
        except DestinationRefused as exc:
            raise InvalidInput(_refused_message(what, url, exc)) from exc

    def check_resolved(self, url: str, what: str) -> None:
        """`check_url`, then the host's current addresses (blocking; for config changes)."""
        self.check_url(url, what)
        parsed = httpx.URL(url)
        if _literal(parsed.host) is not None or parsed.host.lower() in self.rule.hosts:
            return
        port = origin_of(parsed)[2]
        try:
            infos = socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # not resolvable now (an offline server): every fetch checks again
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not self.rule.allows(parsed.host, address, trusted_origin=True):
                refused = DestinationRefused(f"{parsed.host} resolves to {address}")
                raise InvalidInput(_refused_message(what, url, refused))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def _client(self, trusted_origin: bool) -> httpx.AsyncClient:
        client = self._clients.get(trusted_origin)
        if client is None:
            limits = httpx.Limits(max_connections=self._settings.outbound_max_concurrent)
            backend = _CheckedBackend(self.rule, trusted_origin)
            client = httpx.AsyncClient(
                transport=_CheckedTransport(backend, limits),
                timeout=httpx.Timeout(float(self._settings.mirror_timeout)),
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[trusted_origin] = client
        return client

    async def get(
        self,
        url: str,
        *,
        trusted: Collection[str],
        max_bytes: int,
        deadline: float,
        headers: Mapping[str, str] | None = None,
    ) -> Fetched:
        """GET a whole body of at most `max_bytes` within `deadline` seconds."""
        async with self.stream(
            "GET", url, trusted=trusted, deadline=deadline, headers=headers
        ) as response:
            body = bytearray()
            async for chunk in capped_chunks(response, max_bytes):
                body += chunk
            return Fetched(response.status_code, response.headers, str(response.url), bytes(body))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        trusted: Collection[str],
        deadline: float,
        headers: Mapping[str, str] | None = None,
        **send: Any,
    ) -> AsyncIterator[httpx.Response]:
        """A response whose body is read by the caller, all within `deadline` seconds.

        `trusted` are the URLs whose origins root chose (a mirror's upstream): only those may
        reach root's allowed networks. GET follows redirects, each hop checked again.
        """
        trusted_origins = {origin_of(item) for item in trusted}
        try:
            async with asyncio.timeout(deadline), self._slots:
                response = await self._send(method, url, trusted_origins, headers, send)
                try:
                    yield response
                finally:
                    await response.aclose()
        except (httpx.HTTPError, httpcore.ConnectError, TimeoutError, DestinationRefused,
                BodyTooLarge) as exc:  # fmt: skip
            log.warning("outbound %s %s failed: %s", method, url, describe(exc))
            raise OutboundFailure(describe(exc)) from exc

    async def _send(
        self,
        method: str,
        url: str,
        trusted: set[tuple[str, str, int]],
        headers: Mapping[str, str] | None,
        send: dict[str, Any],
    ) -> httpx.Response:
        for _hop in range(MAX_REDIRECTS + 1):
            parsed = _parsed(url, "URL", error=DestinationRefused)
            self.rule.check_literal(parsed.host)
            client = self._client(origin_of(parsed) in trusted)
            request = client.build_request(method, parsed, headers=headers, **send)
            response = await client.send(request, stream=True)
            if method != "GET" or not response.has_redirect_location:
                return response
            url = str(response.url.join(response.headers["location"]))
            await response.aclose()
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")


class BodyTooLarge(Exception):
    """A response body is larger than its cap."""


async def capped_chunks(response: httpx.Response, max_bytes: int) -> AsyncIterator[bytes]:
    """The body in chunks, refused as soon as it (or its declared length) exceeds `max_bytes`."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"declared {declared} bytes, more than the cap of {max_bytes}")
    seen = 0
    async for chunk in response.aiter_bytes(CHUNK):
        seen += len(chunk)
        if seen > max_bytes:
            raise BodyTooLarge(f"more than the cap of {max_bytes} bytes")
        yield chunk


def _parsed(url: str, what: str, error: type[Exception] = InvalidInput) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise error(f"{what} {url!r} is not a URL") from exc
    if parsed.scheme not in SCHEMES or not parsed.host:
        raise error(f"{what} must be an http:// or https:// URL with a host, not {url!r}")
    return parsed


def _refused_message(what: str, url: str, exc: DestinationRefused) -> str:
    return (
        f"{what} {url!r} is not an allowed destination ({exc}); root can allow internal"
        " hosts and networks with the setting outbound_allowed_networks"
    )


def describe(problem: object) -> str:
    """A log line's words for a failure."""
    if isinstance(problem, TimeoutError):
        return "timed out"
    if isinstance(problem, BaseException):
        return f"{type(problem).__name__}: {problem}" if str(problem) else type(problem).__name__
    return str(problem)
