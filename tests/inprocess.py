"""Helpers for in-process tests: users, indexes and uploads through the HTTP API.

Password hashing (argon2) is slow on purpose, so the helpers create users from a hash computed
once per password and authenticate with login tokens; the tests of accounts use real passwords.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from packyard.config import Settings
from packyard.services import Services, initialize, open_services
from packyard.web.app import create_app
from tests.conftest import JSON, ROOT_PASSWORD, basic_auth

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1,"
    " text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2,"
    " text/html;q=0.01"
)
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = {"Accept": "text/html"}
SIMPLE_JSON_ACCEPT = {"Accept": SIMPLE_JSON}
ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@functools.cache
def password_hash(password: str) -> str:
    return PasswordHasher().hash(password)


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def token_auth(client: TestClient, user: str) -> dict[str, str]:
    """Basic auth with a fresh login token for `user` (what `devpi install` sends)."""
    return basic_auth(user, services_of(client).accounts.issue_token(user).token)


def create_user(client: TestClient, name: str) -> dict[str, str]:
    """Create `name` with password `<name>pw`; return Basic auth headers carrying a token."""
    password = f"{name}pw"
    body = {"password": password, "pwhash": password_hash(password)}
    response = client.put(f"/{name}", json=body, headers=JSON)
    assert response.status_code == 201, response.text
    return token_auth(client, name)


def create_index(
    client: TestClient, user: str, index: str, auth: dict[str, str], **config: Any
) -> dict[str, Any]:
    response = client.put(f"/{user}/{index}", json=config, headers=JSON | auth)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def upload(client: TestClient, index: str, path: Path, auth: dict[str, str]) -> httpx2.Response:
    """Upload `path` to `index` ('user/name') through the legacy API, as twine does."""
    return client.post(
        f"/{index}/",
        data={":action": "file_upload", "protocol_version": "1"},
        files={"content": (path.name, path.read_bytes())},
        headers=auth,
    )


def upload_ok(client: TestClient, index: str, path: Path, auth: dict[str, str]) -> None:
    response = upload(client, index, path, auth)
    assert response.status_code == 200, response.text


def simple_json(client: TestClient, index: str, project: str) -> dict[str, Any]:
    response = client.get(f"/{index}/+simple/{project}/", headers=SIMPLE_JSON_ACCEPT)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def resolve(page_url: str, href: str) -> str:
    """An href as a client resolves it against the page it came from (path and query)."""
    return httpx2.URL(f"http://testserver{page_url}").join(href).raw_path.decode()


def engine_url(request: pytest.FixtureRequest) -> str:
    """For a fixture parametrized with ENGINES: '' (SQLite) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    return str(request.getfixturevalue("postgres_cluster").new_database())


@contextmanager
def running_client(serverdir: Path, storage: str) -> Iterator[TestClient]:
    """A fresh server like the `client` fixture's, for fixtures of a wider scope."""
    settings = Settings(serverdir=serverdir, storage=storage, log_requests=False)
    services = open_services(settings)
    initialize(services, root_pwhash=password_hash(ROOT_PASSWORD), root_pypi=False)
    with TestClient(create_app(services), base_url="http://testserver") as client:
        yield client
