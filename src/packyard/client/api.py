"""A small HTTP client for packyard's (and devpi-server's) JSON and upload APIs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from packyard import __version__
from packyard.client.errors import ClientError
from packyard.client.state import ClientState

__all__ = ["Api", "ClientError"]

JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


class Api:
    """Speaks to one server as the current user of a ClientState."""

    def __init__(self, state: ClientState, timeout: float = 60.0) -> None:
        self.state = state
        self._http = httpx.Client(
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": f"packyard-client/{__version__}"},
        )

    def close(self) -> None:
        self._http.close()

    def _auth(self) -> dict[str, str]:
        secret = self.state.secret()
        if not (self.state.user and secret):
            return {}
        value = base64.b64encode(f"{self.state.user}:{secret}".encode()).decode()
        return {"X-Devpi-Auth": value}

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if not self.state.url:
            raise ClientError(
                "no server selected",
                hint="run `packyard use URL` (or set PACKYARD_URL)",
            )
        return f"{self.state.url}/{path.lstrip('/')}"

    def index_path(self, index: str | None = None) -> str:
        self.url("")  # no server, no index: say so first
        chosen = (index or self.state.index).strip("/")
        if chosen.count("/") != 1:
            raise ClientError(
                "no index selected",
                hint="run `packyard use USER/INDEX`, pass --index USER/INDEX or set PACKYARD_INDEX",
            )
        return chosen

    def request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        """A JSON API call; returns the parsed body, raises ClientError on failure."""
        url = self.url(path)
        try:
            response = self._http.request(
                method, url, headers=JSON_HEADERS | self._auth(), json=body, params=params or None
            )
        except httpx.HTTPError as exc:
            raise unreachable(url, exc) from exc
        return _json_or_error(response)

    def result(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        return self.request(method, path, body, **params).get("result")

    def login(self, user: str, password: str) -> tuple[str, int]:
        data = self.request("POST", "+login", {"user": user, "password": password})
        return data["result"]["password"], int(data["result"]["expiration"])

    def logout(self) -> None:
        """Revoke every login token of the current user on the server."""
        self.request("POST", "+logout")

    def existing_hashes(self, index: str, projects: Iterable[str]) -> dict[str, str]:
        """filename -> sha256 of the files `index` itself (not its bases) holds for these
        projects."""
        known: dict[str, str] = {}
        for project in sorted(set(projects)):
            try:
                versions = self.result("GET", f"{index}/{project}", ignore_bases="")
            except ClientError as exc:
                if exc.status == 404:
                    continue
                raise
            for data in (versions or {}).values():
                for link in data.get("+links", []):
                    if link.get("rel", "releasefile") == "releasefile":
                        name = link["href"].rsplit("/", 1)[-1]
                        known[name] = link.get("hashes", {}).get("sha256", "")
        return known

    def post_file(self, path: str, file: Path) -> Any:
        """POST a file's bytes as the body (e.g. an advisory zip to `+advisories`)."""
        url = self.url(path)
        headers = JSON_HEADERS | self._auth() | {"Content-Type": "application/zip"}
        try:
            with file.open("rb") as handle:
                response = self._http.post(url, content=handle, headers=headers)
        except httpx.HTTPError as exc:
            raise unreachable(url, exc) from exc
        return _json_or_error(response)

    def upload(self, index: str, path: Path, fields: dict[str, Any]) -> httpx.Response:
        """A legacy-API multipart upload (what twine does); returns the raw response."""
        url = self.url(f"{index}/")
        try:
            with path.open("rb") as handle:
                return self._http.post(
                    url,
                    data=fields,
                    files={"content": (path.name, handle, "application/octet-stream")},
                    headers=self._auth(),
                )
        except httpx.HTTPError as exc:
            raise unreachable(url, exc) from exc


def unreachable(url: str, exc: httpx.HTTPError) -> ClientError:
    return ClientError(
        f"cannot reach {url}: {exc or type(exc).__name__}",
        hint="is the server running? `packyard use` shows which server is selected",
    )


def error_message(response: httpx.Response) -> str:
    """'STATUS REASON: message' from an error response, on one line."""
    try:
        data = response.json() if response.content else {}
    except ValueError:
        data = {}
    message = data.get("message") if isinstance(data, dict) else None
    text = " ".join(str(message or response.text[:300]).split())
    if not message and text.startswith("<"):
        text = ""  # an HTML error page (devpi-server's): its reason phrase says it
    reason = f"{response.status_code} {response.reason_phrase}".strip()
    return f"{reason}: {text}" if text and text != response.reason_phrase else reason


def _json_or_error(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ClientError(error_message(response), response.status_code)
    try:
        return response.json() if response.content else {}
    except ValueError:
        return {}


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
