"""A throwaway PostgreSQL server for tests, started with the real initdb/pg_ctl.

Set PACKYARD_TEST_POSTGRES_URL to use an existing server instead (a database per test is
created in it).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found: install the Debian package 'postgresql'"
        )
    return candidates[-1]


class PostgresCluster:
    def __init__(self) -> None:
        # Not under pytest's tmp dir: PostgreSQL refuses to run as root, and the 'postgres'
        # user must be able to reach its data directory.
        self.directory = Path(tempfile.mkdtemp(prefix="packyard-pg-"))
        self.external = os.environ.get("PACKYARD_TEST_POSTGRES_URL", "")
        self.port = 0
        self._counter = itertools.count()

    def start(self) -> None:
        if self.external:
            return
        data = self.directory / "data"
        run_as: dict[str, object] = {}
        self._run_as = run_as
        if os.geteuid() == 0:
            # initdb refuses to run as root; use the 'postgres' system user when present.
            import pwd

            owner = pwd.getpwnam("postgres")
            shutil.chown(self.directory, owner.pw_uid, owner.pw_gid)
            run_as = {"user": owner.pw_uid, "group": owner.pw_gid}
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        subprocess.run(
            [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            **run_as,  # type: ignore[arg-type]
        )
        self._run_as = run_as
        self.pg_ctl("start", "-w")

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on this cluster as its owner: ("start", "-w") with this cluster's
        options, or e.g. ("stop", "-m", "fast")."""
        options: list[str] = []
        if args[:1] == ("start",):
            options = [
                "-l",
                str(self.directory / "log"),
                "-o",
                f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ]
        subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(self.directory / "data"), *options, *args],
            check=True,
            capture_output=True,
            **self._run_as,  # type: ignore[arg-type]
        )

    def stop(self) -> None:
        if self.external:
            return
        subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
            **self._run_as,  # type: ignore[arg-type]
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        return self.external or f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        name = f"packyard_test_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        base = self.admin_url.rsplit("/", 1)[0]
        return f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"
