"""A real S3 API server on loopback for tests: moto in server mode, one per test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
from obstore.store import S3Store

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "packyard-test",
    "AWS_SECRET_ACCESS_KEY": "packyard-test-secret",
    "AWS_REGION": "us-east-1",
}


class S3Server:
    """`python -m moto.server` on a free loopback port; buckets are made per test."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def environment(self) -> Mapping[str, str]:
        """What a client (or a packyard server) needs in its environment to reach it."""
        return CREDENTIALS | {"AWS_ENDPOINT_URL": self.endpoint}

    def start(self) -> None:
        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"moto did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def new_bucket(self) -> str:
        """A fresh bucket's name (moto keeps its state in memory: a restart empties it)."""
        name = f"packyard-{uuid.uuid4().hex[:12]}"
        httpx.put(f"{self.endpoint}/{name}", timeout=10).raise_for_status()  # moto: unsigned
        return name

    def client(self, bucket: str) -> S3Store:
        return S3Store(
            bucket,
            endpoint=self.endpoint,
            access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region=CREDENTIALS["AWS_REGION"],
            client_options={"allow_http": True},
        )


def in_environment(server: S3Server) -> None:
    """Point this process's AWS environment at the test server (what packyard reads)."""
    os.environ.update(server.environment)
