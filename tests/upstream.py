"""A small upstream index on loopback for the mirror tests.

It serves what the test publishes: `/simple/` and `/simple/<project>/` as PEP 691 JSON (or
PEP 503 HTML when asked, or always with `html_only`), `/files/<name>` with the bytes and
`/files/<name>.metadata` (PEP 658) for wheels. Pages carry an `ETag` and answer
`If-None-Match` with 304. The test flips switches while it runs:

- `stop()`            the server is shut down: connections are refused
- `hanging = True`    connections are accepted, requests read and never answered
- `tampered`          file names (`.metadata` ones too) served with their last byte flipped
- `file_delay`        seconds every file response waits before it starts
- `hashless`          file names listed without any hash (no `#sha256=`, empty `hashes`)
- `link_texts`        file name -> the anchor text its HTML link shows instead of the name
- `url_names`         file name -> the last segment of its URL (e.g. percent-encoded)
- `empty_projects`    project names whose page is served (200) with no files
- `replaced`          file name -> other bytes served for it from now on
- `project_statuses`  project -> PEP 792 `project-status` object its pages state

and reads `count(path)` (requests per path, hanging ones included) and `if_none_match(path)`.
It runs uvicorn in a background thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import json
import socket
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@dataclasses.dataclass(frozen=True)
class Published:
    """One file of the upstream, with what its pages say about it."""

    filename: str
    data: bytes
    upload_time: datetime
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    requires_python: str | None = None
    metadata: bytes | None = None  # the wheel's METADATA, served as PEP 658 `.metadata`

    @property
    def project(self) -> str:
        if self.filename.endswith(".whl"):
            return str(parse_wheel_filename(self.filename)[0])
        return str(parse_sdist_filename(self.filename)[0])

    @property
    def version(self) -> str:
        if self.filename.endswith(".whl"):
            return str(parse_wheel_filename(self.filename)[1])
        return str(parse_sdist_filename(self.filename)[1])

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def upload_time_text(self) -> str:
        return self.upload_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Upstream:
    """A PEP 503/691 index of published files, served on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.files: dict[str, Published] = {}
        self.hanging = False
        self.tampered: set[str] = set()
        self.file_delay = 0.0
        self.html_only = False
        self.hashless: set[str] = set()
        self.link_texts: dict[str, str] = {}
        self.url_names: dict[str, str] = {}
        self.empty_projects: set[str] = set()
        self.replaced: dict[str, bytes] = {}
        self.project_statuses: dict[str, dict[str, str]] = {}
        self.port = 0
        self._counts: Counter[str] = Counter()
        self._if_none_match: dict[str, list[str | None]] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app = Starlette(
            routes=[
                Route("/simple/", self._project_list),
                Route("/simple/{project}/", self._project_page),
                Route("/files/{filename}", self._file),
            ]
        )

    # --- what the test does ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    def publish(
        self,
        path: Path,
        yanked: str | None = None,
        requires_python: str | None = None,
        upload_time: datetime | None = None,
    ) -> Published:
        """Serve the built distribution at `path` (wheels with their `.metadata`)."""
        data = path.read_bytes()
        metadata = _wheel_metadata(path) if path.name.endswith(".whl") else None
        moment = upload_time or datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
        published = Published(path.name, data, moment, yanked, requires_python, metadata)
        self.files[path.name] = published
        return published

    def count(self, path: str) -> int:
        with self._lock:
            return self._counts[path]

    def if_none_match(self, path: str) -> list[str | None]:
        """The If-None-Match header of every request for `path`, in order (None: absent)."""
        with self._lock:
            return list(self._if_none_match.get(path, []))

    def start(self) -> None:
        """Listen (again, on the same port after a stop) and wait until requests are served."""
        # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets; without it every
        # answer on a kept-alive connection waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            loop="asyncio",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._closing = False
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the upstream did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Shut the server down; afterwards connections to its port are refused."""
        if self._server is None or self._thread is None:
            return
        self._closing = True
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._server = None

    # --- the app -----------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
            with self._lock:
                self._counts[path] += 1
                self._if_none_match.setdefault(path, []).append(headers.get("if-none-match"))
            while self.hanging and not self._closing:
                await asyncio.sleep(0.05)
        await self._app(scope, receive, send)

    def _wants_json(self, request: Request) -> bool:
        return not self.html_only and JSON_V1 in request.headers.get("accept", "")

    async def _project_list(self, request: Request) -> Response:
        names = sorted({file.project for file in self.files.values()})
        if self._wants_json(request):
            document = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            return _page(request, json.dumps(document).encode(), JSON_V1)
        anchors = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
        return _page(request, f"<!DOCTYPE html><html><body>{anchors}</body></html>".encode())

    async def _project_page(self, request: Request) -> Response:
        project = request.path_params["project"]
        if canonicalize_name(project) != project:
            return Response(status_code=301, headers={"Location": f"/simple/{project}/"})
        files = [file for file in self.files.values() if file.project == project]
        if not files and project not in self.empty_projects:
            return Response("not found", status_code=404)
        status = self.project_statuses.get(project)
        if self._wants_json(request):
            return _page(request, _json_page(project, files, self._listing, status), JSON_V1)
        return _page(request, _html_page(files, self._listing, status))

    def _sha256(self, file: Published) -> str:
        return hashlib.sha256(self.replaced.get(file.filename, file.data)).hexdigest()

    def _listing(self, file: Published) -> Listing:
        return Listing(
            url=f"/files/{self.url_names.get(file.filename, file.filename)}",
            text=self.link_texts.get(file.filename, file.filename),
            sha256=None if file.filename in self.hashless else self._sha256(file),
        )

    async def _file(self, request: Request) -> Response:
        if self.file_delay:
            await asyncio.sleep(self.file_delay)
        filename: str = request.path_params["filename"]
        published = self.files.get(filename.removesuffix(".metadata"))
        if published is None:
            return Response("not found", status_code=404)
        data = self.replaced.get(published.filename, published.data)
        if filename.endswith(".metadata"):
            if published.metadata is None:
                return Response("not found", status_code=404)
            data = published.metadata
        if filename in self.tampered:
            data = tamper(data)
        return Response(data, media_type="application/octet-stream")


def tamper(data: bytes) -> bytes:
    """The same bytes but the last one flipped: same size, another hash."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _page(request: Request, body: bytes, media_type: str = "text/html") -> Response:
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type=media_type, headers={"ETag": etag})


@dataclasses.dataclass(frozen=True)
class Listing:
    """How a page lists one file: its URL, its anchor text, its hash (None: not given)."""

    url: str
    text: str
    sha256: str | None


def _json_page(
    project: str,
    files: list[Published],
    listing: Callable[[Published], Listing],
    status: dict[str, str] | None = None,
) -> bytes:
    entries = []
    for file in files:
        listed = listing(file)
        entry: dict[str, object] = {
            "filename": file.filename,
            "url": listed.url,
            "hashes": {"sha256": listed.sha256} if listed.sha256 else {},
            "size": len(file.data),
            "upload-time": file.upload_time_text,
            "yanked": file.yanked if file.yanked is not None else False,
        }
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        if file.metadata is not None:
            entry["core-metadata"] = {"sha256": hashlib.sha256(file.metadata).hexdigest()}
        entries.append(entry)
    versions = sorted({file.version for file in files})
    document = {
        "meta": {"api-version": "1.1"},
        "name": project,
        "versions": versions,
        "files": entries,
    }
    if status is not None:
        document["project-status"] = status
    return json.dumps(document).encode()


def _html_page(
    files: list[Published],
    listing: Callable[[Published], Listing],
    status: dict[str, str] | None = None,
) -> bytes:
    anchors = []
    for file in files:
        listed = listing(file)
        fragment = f"#sha256={listed.sha256}" if listed.sha256 else ""
        attributes = [f'href="{html.escape(listed.url)}{fragment}"']
        if file.requires_python:
            attributes.append(f'data-requires-python="{html.escape(file.requires_python)}"')
        if file.yanked is not None:
            attributes.append(f'data-yanked="{html.escape(file.yanked)}"')
        if file.metadata is not None:
            digest = hashlib.sha256(file.metadata).hexdigest()
            attributes.append(f'data-core-metadata="sha256={digest}"')
        anchors.append(f"<a {' '.join(attributes)}>{html.escape(listed.text)}</a><br/>")
    body = "\n".join(anchors)
    head = "".join(
        f'<meta name="pypi:project-{key}" content="{html.escape(value)}">'
        for key, value in (("status", (status or {}).get("status")),
                           ("status-reason", (status or {}).get("reason")))
        if value
    )  # fmt: skip
    return f"<!DOCTYPE html><html><head>{head}</head><body>\n{body}\n</body></html>".encode()


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name)
