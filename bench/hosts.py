"""Many hosts: per-host requests/s on SQLite + files versus PostgreSQL + S3 (moto), files
streamed and redirected (302 to a presigned URL), and the change feed's lag between hosts.

Everything runs on loopback: a private PostgreSQL (initdb, needs the Debian package), a moto
server, `packyard serve --workers 1` per host, wrk. Needs the project venv with the test
extras (it reuses tests/pg.py, tests/s3.py, tests/conftest.py's ServerProcess). See
bench/README.md ("Many hosts").

Run: .venv/bin/python bench/hosts.py
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # the tests package: its real servers

from loads import WrkLoad, ensure_wrk  # noqa: E402
from report import write_json  # noqa: E402
from servers import log, packyard_revision  # noqa: E402

from tests.builders import build_wheel  # noqa: E402
from tests.conftest import ROOT_PASSWORD, ServerProcess, free_port  # noqa: E402
from tests.pg import PostgresCluster  # noqa: E402
from tests.s3 import S3Server, in_environment  # noqa: E402

WRK_SECONDS = 5
WARMUP_SECONDS = 1
CONNECTIONS = 8
PAGE_FILES = 10  # versions of the measured project, one wheel each
FEED_WRITES = 20
INDEX = "root/bench"
PROJECT = "bench-hosts"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()}


@dataclasses.dataclass(frozen=True)
class Topology:
    label: str
    postgresql: bool
    redirect: bool = False


TOPOLOGIES = (
    Topology("sqlite+files", postgresql=False),
    Topology("postgresql+s3, streamed", postgresql=True),
    Topology("postgresql+s3, 302 redirect", postgresql=True, redirect=True),
)


@dataclasses.dataclass
class Shared:
    """The PostgreSQL and the object store every PostgreSQL topology gets a fresh part of."""

    cluster: PostgresCluster
    s3: S3Server
    work: Path


@contextmanager
def hosts(topology: Topology, shared: Shared, count: int) -> Iterator[list[ServerProcess]]:
    """`count` hosts of one topology (on SQLite: one, whatever `count`)."""
    directory = Path(tempfile.mkdtemp(prefix="hosts-", dir=shared.work))
    database = shared.cluster.new_database() if topology.postgresql else ""
    settings: dict[str, str] = {}
    if topology.postgresql:
        settings["blobs"] = f"s3://{shared.s3.new_bucket()}/blobs"
        settings["blobs_redirect"] = "true" if topology.redirect else "false"
    started: list[ServerProcess] = []
    try:
        for name in "ab"[: count if topology.postgresql else 1]:
            host = ServerProcess(directory / name, free_port(), directory / f"{name}.log", database)
            host.settings = settings
            host.start("--workers", "1")  # one after the other: the first migrates
            started.append(host)
        yield started
    finally:
        for host in started:
            host.stop()


def upload(url: str, version: str, work: Path) -> tuple[str, bytes]:
    wheel = build_wheel(work / "dists", PROJECT, version)
    data = wheel.read_bytes()
    response = httpx.post(
        f"{url}/{INDEX}/",
        data={":action": "file_upload", "name": PROJECT, "version": version},
        files={"content": (wheel.name, data)},
        headers=AUTH,
        timeout=60,
    )
    if response.status_code != 200:
        raise RuntimeError(f"upload {wheel.name}: {response.status_code} {response.text}")
    return wheel.name, data


def file_path(filename: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"/{INDEX}/+f/{sha[:3]}/{sha[3:16]}/{filename}"


def measure(load: WrkLoad, url: str) -> dict[str, Any]:
    load.run(url, WARMUP_SECONDS)  # the page cached, the blob in this host's cache
    result, output = load.run(url)
    if result.errors:
        raise RuntimeError(f"{url}: {result.errors} errors\n{output}")
    return dataclasses.asdict(result)


def throughput(topology: Topology, shared: Shared, load: WrkLoad) -> dict[str, Any]:
    """Uploads through host A; wrk against host B (which has the file only in the bucket
    until its first download), or the one host on SQLite."""
    with hosts(topology, shared, 2) as started:
        writer, reader = started[0], started[-1]
        httpx.put(f"{writer.url}/{INDEX}", json={"volatile": False}, headers=AUTH, timeout=30)
        uploaded = [upload(writer.url, f"1.{n}", shared.work) for n in range(PAGE_FILES)]
        page = f"{reader.url}/{INDEX}/+simple/{PROJECT}/"
        deadline = time.monotonic() + 10
        while uploaded[-1][0] not in httpx.get(page, timeout=30).text:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{page} does not list the uploads")
            time.sleep(0.05)
        filename, data = uploaded[-1]
        download = reader.url + file_path(filename, data)
        answer = httpx.get(download, timeout=30)
        expected = 302 if topology.redirect else 200
        if answer.status_code != expected:
            raise RuntimeError(f"{download}: {answer.status_code}, not {expected}")
        log(f"{topology.label}: simple page")
        simple = measure(load, page)
        log(f"{topology.label}: file download")
        got = measure(load, download)
        return {"simple_page": simple, "file": got, "file_bytes": len(data)}


def feed_lag(shared: Shared) -> dict[str, Any]:
    """Upload on A, then poll B's page (every 2 ms) until it lists the file; 20 times."""
    topology = Topology("postgresql+s3, feed", postgresql=True)
    with hosts(topology, shared, 2) as (a, b):
        httpx.put(f"{a.url}/{INDEX}", json={"volatile": False}, headers=AUTH, timeout=30)
        page = f"{b.url}/{INDEX}/+simple/{PROJECT}/"
        lags = []
        with httpx.Client(timeout=30) as client:
            client.get(page)  # B has the page cached: only the feed makes it see a change
            for number in range(FEED_WRITES):
                filename, _data = upload(a.url, f"2.{number}", shared.work)
                began = time.perf_counter()
                while filename not in client.get(page).text:
                    if time.perf_counter() - began > 10:
                        raise RuntimeError(f"{filename} not listed on B within 10 s")
                    time.sleep(0.002)
                lags.append((time.perf_counter() - began) * 1000)
    return {
        "writes": FEED_WRITES,
        "median_ms": round(statistics.median(lags), 1),
        "max_ms": round(max(lags), 1),
    }


def table(document: dict[str, Any]) -> str:
    rows = [f"{'per host (req/s)':32s} {'simple page':>12s} {'file':>10s}"]
    for label, result in document["topologies"].items():
        page = result["simple_page"]["requests_per_s"]
        got = result["file"]["requests_per_s"]
        rows.append(f"{label:32s} {page:12,.0f} {got:10,.0f}")
    lag = document["feed_lag"]
    rows.append(
        f"change feed A -> B over {lag['writes']} writes: median {lag['median_ms']} ms,"
        f" max {lag['max_ms']} ms"
    )
    return "\n".join(rows)


def main() -> None:
    load = WrkLoad(ensure_wrk(), WRK_SECONDS, CONNECTIONS, threads=1)
    work = Path(tempfile.mkdtemp(prefix="packyard-bench-hosts-"))
    cluster, s3 = PostgresCluster(), S3Server(work / "moto.log")
    cluster.start()
    s3.start()
    in_environment(s3)
    shared = Shared(cluster, s3, work)
    try:
        results = {t.label: throughput(t, shared, load) for t in TOPOLOGIES}
        log("change feed lag")
        lag = feed_lag(shared)
    finally:
        s3.stop()
        cluster.stop()
    document = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "revision": packyard_revision(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "plan": {
            "wrk": f"-t 1 -c {CONNECTIONS} -d {WRK_SECONDS}s after a {WARMUP_SECONDS} s warm-up",
            "workers_per_host": 1,
            "page_files": PAGE_FILES,
        },
        "topologies": results,
        "feed_lag": lag,
    }
    write_json(document, BENCH / "hosts-results.json")
    print(table(document))


if __name__ == "__main__":
    main()
