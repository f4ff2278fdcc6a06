"""A mirror's upstream: requests through the outbound policy, and what its pages say.

What an upstream said is logged; clients get generic words (an error text must not tell an
open port from a closed one). The parsers are synchronous: callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import httpx
from pypi_simple import DistributionPackage, ProjectPage

from packyard.config import Settings
from packyard.core.dists import check_safe_filename
from packyard.core.indexconfig import MirrorConfig
from packyard.core.mirror import MirrorLink
from packyard.core.models import IndexRecord, MirrorPage, PageStatus
from packyard.core.names import normalize_project
from packyard.core.simple import upload_time_text
from packyard.core.status import from_upstream
from packyard.errors import InvalidInput, PackyardError, UpstreamUnavailable
from packyard.services.outbound import Fetched, Outbound, OutboundFailure

log = logging.getLogger("packyard.mirror")
# httpx logs every request at INFO; the request log already says what matters.
logging.getLogger("httpx").setLevel(logging.WARNING)
# What a client is told when the upstream failed, whatever the reason (the log has it).
NO_ANSWER = "no usable answer from the upstream"

ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2,"
    " text/html;q=0.01"
)


@dataclasses.dataclass
class MirrorStats:
    """Counters of one worker process, shown in /+status."""

    page_fetches: int = 0
    page_revalidations: int = 0
    stale_pages_served: int = 0
    upstream_errors: int = 0
    file_hits: int = 0
    file_misses: int = 0
    bytes_from_cache: int = 0
    bytes_from_upstream: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def mirror_config(record: IndexRecord) -> MirrorConfig:
    """The typed config of a mirror index; a stage is refused."""
    config = record.index_config
    if not isinstance(config, MirrorConfig):
        raise InvalidInput(f"{record.full_name} is not a mirror index")
    return config


def upstream_url(record: IndexRecord) -> str:
    return mirror_config(record).mirror_url


class Upstream:
    """The one way a mirror asks its upstream: through the outbound policy, trusting only the
    index's own upstream URL, every failure logged and counted and told generically."""

    def __init__(self, outbound: Outbound, settings: Settings, stats: MirrorStats) -> None:
        self._outbound = outbound
        self._settings = settings
        self._stats = stats

    async def get(
        self,
        record: IndexRecord,
        url: str,
        max_bytes: int,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> Fetched:
        """A whole upstream body under the outbound policy; failures become generic."""
        try:
            return await self._outbound.get(
                url, trusted=[upstream_url(record)], max_bytes=max_bytes, headers=headers,
                deadline=deadline or self._settings.mirror_timeout,
            )  # fmt: skip
        except OutboundFailure as exc:
            self.failed(url, exc)

    @contextlib.asynccontextmanager
    async def stream(self, record: IndexRecord, url: str) -> AsyncIterator[httpx.Response]:
        """A streamed upstream GET (a file), under the file deadline."""
        async with self._outbound.stream(
            "GET", url, trusted=[upstream_url(record)],
            deadline=self._settings.outbound_file_deadline,
        ) as response:  # fmt: skip
            yield response

    def failed(self, url: str, problem: object, told: str = NO_ANSWER) -> NoReturn:
        """Log what went wrong; tell the client only `told`."""
        self.count_failure(url, problem)
        raise UpstreamUnavailable(told)

    def count_failure(self, url: str, problem: object) -> None:
        self._stats.upstream_errors += 1
        log.warning("upstream error for %s: %s", url, describe(problem))


def parse_page(
    upstream: Upstream,
    record: IndexRecord,
    project: str,
    response: Fetched,
    now: float,
    max_links: int,
) -> MirrorPage:
    """The page an upstream answered for `project` (PEP 691 JSON or PEP 503 HTML); one
    listing more than `max_links` files, or unreadable, is refused."""
    base = response.url
    stated: object = None
    try:
        if "json" in response.headers.get("content-type", ""):
            data = json.loads(response.body)
            count = len(data.get("files") or ())
            if count <= max_links:
                parsed = ProjectPage.from_json_data(data, base_url=base)
                stated = data.get("project-status")
        else:
            count = response.body.count(b"<a") + response.body.count(b"<A")
            if count <= max_links:
                parsed = ProjectPage.from_html(project, response.body, base_url=base)
                stated = _html_project_status(response.body)
    except (ValueError, TypeError, AttributeError) as exc:
        upstream.failed(base, f"unreadable project page: {exc}")
    if count > max_links:
        told = (
            f"the upstream page of {project!r} lists more than {max_links} files, the limit"
            " set by outbound_max_page_links"
        )
        upstream.failed(base, f"{count} links", told)
    # PEP 503: an HTML page names a file by its URL; the link text is only for show.
    from_url = "json" not in response.headers.get("content-type", "")
    found = (_mirror_link(package, from_url) for package in parsed.packages)
    links = [link.to_json() for link in found if link]
    serial = _int(str(parsed.last_serial or response.headers.get("x-pypi-last-serial") or ""))
    # PEP 792: the upstream's status passes through, kept with the page (bounded, checked).
    project_status = from_upstream(stated).to_json() if isinstance(stated, dict) else None
    return MirrorPage(
        record.id, project, PageStatus.OK, now, response.headers.get("etag"),
        response.headers.get("last-modified"), serial, links, project_status,
    )  # fmt: skip


def went_backwards(record: IndexRecord, stored: MirrorPage | None, page: MirrorPage) -> bool:
    """Whether the upstream's serial is older than the stored page's (a stale upstream node)."""
    if mirror_config(record).mirror_ignore_serial_header or stored is None:
        return False
    return bool(stored.upstream_serial and page.upstream_serial) and (
        (page.upstream_serial or 0) < (stored.upstream_serial or 0)
    )


def parse_project_list(response: Fetched) -> list[str]:
    """Normalised project names from an upstream's root page, PEP 691 JSON or PEP 503 HTML."""
    if "json" in response.headers.get("content-type", ""):
        names = [entry["name"] for entry in json.loads(response.body).get("projects", ())]
    else:
        collector = _AnchorTexts()
        collector.feed(response.body.decode("utf-8", "replace"))
        names = collector.texts
    return list(dict.fromkeys(normalize_project(name) for name in names if name.strip()))


class _StatusMeta(HTMLParser):
    """PEP 792's `pypi:project-status` and `pypi:project-status-reason` meta tags."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            named = dict(attrs)
            name, content = named.get("name"), named.get("content")
            key = {"pypi:project-status": "status", "pypi:project-status-reason": "reason"}
            if name in key and content:
                self.found[key[name]] = content


def _html_project_status(body: bytes) -> dict[str, str] | None:
    """The status an HTML page states in its head (None when it states none)."""
    head = body.split(b"</head>", 1)[0] if b"</head>" in body else b""
    parser = _StatusMeta()
    parser.feed(head.decode("utf-8", "replace"))
    return parser.found or None


class _AnchorTexts(HTMLParser):
    """Collects the text of every <a> element (PEP 503: the text is the project name)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._in_anchor = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._in_anchor = True
            self.texts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor = False

    def handle_data(self, data: str) -> None:
        if self._in_anchor:
            self.texts[-1] += data


def _mirror_link(package: DistributionPackage, name_from_url: bool) -> MirrorLink | None:
    """What we keep of one upstream file; None for a name that is no safe file name. A file
    without a sha256 is kept, its hash to be trusted on first use."""
    url = package.url.split("#", 1)[0]
    filename = _url_filename(url) if name_from_url else package.filename
    try:
        check_safe_filename(filename)
    except InvalidInput:
        log.warning("skipping upstream file with an unsafe name: %r", filename)
        return None
    sha256 = (package.digests or {}).get("sha256") or ""
    if not _is_sha256(sha256):
        sha256 = ""  # a malformed hash is no hash: the first download decides
    yanked = (package.yanked_reason or "") if package.is_yanked else None
    metadata_sha = (package.metadata_digests or {}).get("sha256")
    return MirrorLink(
        filename=filename,
        url=url,
        sha256=sha256.lower(),
        trusted_on_first_use=not sha256,
        size=package.size,
        upload_time=upload_time_text(package.upload_time) if package.upload_time else None,
        requires_python=package.requires_python,
        yanked=yanked,
        core_metadata=bool(package.has_metadata),
        core_metadata_sha256=metadata_sha.lower() if metadata_sha else None,
    )


def _url_filename(url: str) -> str:
    """The last segment of a URL's path, percent-decoded (PEP 503: the file's name)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(char in "0123456789abcdefABCDEF" for char in text)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def told(exc: Exception) -> str:
    """What a client may read of a failure: our own words, never the upstream's."""
    return exc.message if isinstance(exc, UpstreamUnavailable) else NO_ANSWER


def describe(problem: object) -> str:
    """A failure as the log tells it."""
    if isinstance(problem, PackyardError):
        return problem.message
    if isinstance(problem, TimeoutError):
        return "timed out"
    if isinstance(problem, BaseException):
        return f"{type(problem).__name__}: {problem}" if str(problem) else type(problem).__name__
    return str(problem)
