"""Issue 17 as a user lives it, in one story on the real server with real clients: a private
index (`acl_read`), a CI job holding only an upload token, installs with a read token, the
token revoked — and the audit trail telling each step, in order, with the acting user or
token."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from packyard.core.tokens import parse_token
from tests.builders import build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth, tool
from tests.e2e_support import PASSWORD, assert_succeeded, create_user, run_tool, running_server

pytestmark = pytest.mark.e2e

PROJECT = "secret-sauce"
OWNER = JSON | basic_auth("olga", PASSWORD)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("private")) as started:
        yield started


def token_for(http: httpx.Client, actions: list[str]) -> tuple[str, str]:
    body = {"indexes": ["olga/private"], "actions": actions, "description": "CI"}
    response = http.post("/olga/+tokens", json=body, headers=OWNER)
    assert response.status_code == 201, response.text
    token: str = response.json()["result"]["token"]
    parsed = parse_token(token)
    assert parsed is not None
    return token, parsed.id


def pip_install(url: str, target: Path) -> Any:
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--no-deps"]
    return run_tool([*pip, "--target", target, "--index-url", url, PROJECT])


def test_a_private_index_with_tokens_and_its_audit_trail(
    server: ServerProcess, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        create_user(http, "olga")
        config = {"type": "stage", "volatile": False, "acl_read": ["olga"]}
        assert http.put("/olga/private", json=config, headers=OWNER).status_code == 200
        uploader, uploader_id = token_for(http, ["upload"])
        reader, reader_id = token_for(http, ["read"])

        wheel = build_wheel(tmp_path, PROJECT, "1.0")
        twine = [tool("twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        target = ["--repository-url", f"{server.url}/olga/private/", "-u", "__token__"]
        assert_succeeded(run_tool([*twine, *target, "-p", uploader, wheel]))

        anonymous = pip_install(f"{server.url}/olga/private/+simple/", tmp_path / "anon")
        assert anonymous.returncode != 0
        assert not (tmp_path / "anon").exists() or not any((tmp_path / "anon").iterdir())
        with_token = f"http://__token__:{reader}@127.0.0.1:{server.port}/olga/private/+simple/"
        assert_succeeded(pip_install(with_token, tmp_path / "installed"))
        assert (tmp_path / "installed" / "secret_sauce" / "__init__.py").is_file()

        # The upload token reads nothing, even of its own index (upload implies no read).
        assert (
            http.get(
                "/olga/private/+simple/", headers=basic_auth("__token__", uploader)
            ).status_code
            == 403
        )
        revoked = http.delete(f"/olga/+tokens/{uploader_id}", headers=OWNER)
        assert revoked.status_code == 200
        again = run_tool([*twine, *target, "-p", uploader, build_wheel(tmp_path, PROJECT, "1.1")])
        assert again.returncode != 0 and "401" in again.stdout + again.stderr

        response = http.get("/+audit", params={"user": "olga", "order": "oldest"}, headers=OWNER)
        assert response.status_code == 403  # the whole trail is root's; owners ask per index
        trail = http.get(
            "/+audit", params={"index": "olga/private", "order": "oldest"}, headers=OWNER
        )
        assert trail.status_code == 200, trail.text
        steps = [(e["action"], e["user"], e.get("token")) for e in trail.json()["result"]]
    assert steps[0] == ("index.create", "olga", None)
    assert ("upload", "olga", uploader_id) in steps
    assert steps.index(("upload", "olga", uploader_id)) > 0
    assert reader_id not in {token for _, _, token in steps}  # reads are not changes
