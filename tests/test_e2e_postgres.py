"""The real server with its metadata in a real PostgreSQL: upload with twine, install with uv."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel
from tests.conftest import JSON, ServerProcess, basic_auth, clean_env, tool
from tests.pg import PostgresCluster

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_twine_upload_and_uv_install_with_postgresql_storage(
    server_factory: object, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres_cluster.new_database().replace("postgresql+psycopg://", "postgresql://")
    server: ServerProcess = server_factory(storage=url)  # type: ignore[operator]
    server.start()
    assert not (server.serverdir / "packyard.sqlite3").exists()
    assert httpx.put(f"{server.url}/alice", json={"password": "pw"}, headers=JSON).is_success
    created = httpx.put(
        f"{server.url}/alice/dev", json={}, headers=JSON | basic_auth("alice", "pw")
    )
    assert created.status_code == 200
    dist = tmp_path / "dist"
    files = [build_wheel(dist, "pgdemo", "1.0"), build_sdist(dist, "pgdemo", "1.0")]
    twine = subprocess.run(
        [tool("twine"), "upload", "--disable-progress-bar", "--repository-url",
         f"{server.url}/alice/dev/", "-u", "alice", "-p", "pw", *map(str, files)],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    assert twine.returncode == 0, twine.stdout + twine.stderr
    venv = tmp_path / "venv"
    subprocess.run([tool("uv"), "venv", "-q", str(venv)], check=True, env=clean_env())
    install = subprocess.run(
        [tool("uv"), "pip", "install", "--python", str(venv / "bin" / "python"), "--no-cache",
         "--index-url", f"{server.url}/alice/dev/+simple/", "pgdemo==1.0"],
        capture_output=True, text=True, env=clean_env(), timeout=120,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pgdemo; print(pgdemo.__version__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "1.0"
