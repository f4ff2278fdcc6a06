"""One client for both servers: devpi's JSON API for set-up and the legacy upload API."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence

import httpx
from dataset import Wheel

JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


class UploadFailed(RuntimeError):
    pass


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} -> "
            f"{response.status_code} {response.reason_phrase}: {response.text[:500]}"
        )
    return response


def login(base_url: str, user: str, password: str) -> dict[str, str]:
    """`POST /+login`; the `X-Devpi-Auth` header that carries the token."""
    body = json.dumps({"user": user, "password": password})
    response = _check(httpx.post(f"{base_url}/+login", content=body, headers=JSON_HEADERS))
    token = response.json()["result"]["password"]
    credentials = base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"X-Devpi-Auth": credentials}


def create_user_and_indexes(
    base_url: str, user: str, password: str, indexes: Sequence[str]
) -> dict[str, str]:
    """Create `user` and volatile indexes without bases; return the auth header."""
    body = json.dumps({"password": password})
    _check(httpx.put(f"{base_url}/{user}", content=body, headers=JSON_HEADERS))
    auth = login(base_url, user, password)
    config = json.dumps({"bases": "", "volatile": "True"})
    for index in indexes:
        url = f"{base_url}/{user}/{index}"
        _check(httpx.put(url, content=config, headers={**JSON_HEADERS, **auth}))
    return auth


def _form(wheel: Wheel) -> dict[str, str]:
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": wheel.name,
        "version": wheel.version,
        "filetype": "bdist_wheel",
        "pyversion": "3",
        "metadata_version": "2.1",
    }


async def _upload_one(client: httpx.AsyncClient, url: str, wheel: Wheel) -> None:
    files = {"content": (wheel.filename, wheel.content, "application/octet-stream")}
    response = await client.post(url, data=_form(wheel), files=files)
    if response.status_code != 200:
        raise UploadFailed(
            f"{wheel.filename}: {response.status_code} {response.reason_phrase} "
            f"{response.text[:300]}"
        )


async def _upload_all(
    index_url: str, auth: dict[str, str], wheels: Sequence[Wheel], workers: int
) -> None:
    queue = list(reversed(wheels))
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(headers=auth, limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            while queue:
                await _upload_one(client, index_url, queue.pop())

        await asyncio.gather(*(worker() for _ in range(workers)))


def upload(index_url: str, auth: dict[str, str], wheels: Sequence[Wheel], workers: int) -> float:
    """Upload every wheel with `workers` concurrent requests; the wall time in seconds."""
    started = time.perf_counter()
    asyncio.run(_upload_all(index_url, auth, wheels, workers))
    return time.perf_counter() - started


def count_files(page_url: str) -> tuple[int, str]:
    """Files listed on a simple page fetched as pip fetches it, and its content type."""
    response = _check(httpx.get(page_url, headers={"Accept": PIP_ACCEPT}, timeout=120))
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        return len(response.json()["files"]), content_type
    return response.text.count("<a "), content_type
