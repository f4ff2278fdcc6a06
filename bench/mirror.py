"""Mirror indexes: packyard against devpi-server on the same loopback upstream. See README.md.

Run: /work/main/.venv/bin/python bench/mirror.py [--names N] [--runs N]

A PEP 503/691 upstream (tests/upstream.py, in a thread of this process) serves 30 small wheels
(30 projects) and a root `/simple/` list of those 30 plus N generated names. Each server gets a
fresh server dir with a mirror index `root/mirror` of that upstream and is measured on:
`pip download` of the 30 projects cold (first fill) and warm (median of --runs), warm
`uv pip install --target` of the same projects, and the full project list
`/root/mirror/+simple/` (time until complete, then steady state). The list is measured on a
second fresh server dir, so that neither measurement warms the other. `pip download` of the same
wheels from a local directory, with no server, gives pip's own time: the floor under any
server's warm time.
Everything lives in bench/.work/mirror/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from indexapi import JSON_HEADERS, PIP_ACCEPT, login
from loads import pip_version
from servers import (
    Devpi,
    Packyard,
    Server,
    empty_trash,
    ensure_devpi_venv,
    log,
    packyard_revision,
    running,
)
from starlette.requests import Request
from starlette.responses import Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import build_wheel  # type: ignore[import-not-found]
from upstream import JSON_V1, Upstream  # type: ignore[import-not-found]

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
MIRROR_WORK = WORK / "mirror"
ROOT_PASSWORD = "rootpw"  # what servers.py gives both servers
PROJECT_PREFIX = "mirror-bench-"
EXTRA_PREFIX = "mirror-extra-"
PROJECTS = 30
LIST_DEADLINE = 180.0
POLL_INTERVAL = 0.05


class BenchUpstream(Upstream):
    """tests/upstream.py's upstream with a large root list: the published projects plus
    generated names, rendered once (JSON and HTML) and served with an ETag."""

    def __init__(self, extra_names: int) -> None:
        super().__init__()
        self.extra = [f"{EXTRA_PREFIX}{n:06d}" for n in range(extra_names)]
        self._bodies: dict[bool, tuple[bytes, str]] = {}

    def all_names(self) -> set[str]:
        return {file.project for file in self.files.values()} | set(self.extra)

    def _body(self, as_json: bool) -> tuple[bytes, str]:
        if as_json not in self._bodies:
            names = sorted(self.all_names())
            if as_json:
                document = {
                    "meta": {"api-version": "1.1"},
                    "projects": [{"name": n} for n in names],
                }
                body = json.dumps(document).encode()
            else:
                anchors = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
                body = f"<!DOCTYPE html><html><body>{anchors}</body></html>".encode()
            etag = f'"list-{int(as_json)}-{len(names)}"'
            self._bodies[as_json] = (body, etag)
        return self._bodies[as_json]

    async def _project_list(self, request: Request) -> Response:
        as_json = self._wants_json(request)
        body, etag = self._body(as_json)
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers={"ETag": etag})
        media_type = JSON_V1 if as_json else "text/html"
        return Response(body, media_type=media_type, headers={"ETag": etag})


def build_projects(directory: Path) -> list[Path]:
    """One small wheel for each of PROJECTS independent projects, built from scratch."""
    shutil.rmtree(directory, ignore_errors=True)
    return [build_wheel(directory, f"{PROJECT_PREFIX}{n:02d}", "1.0") for n in range(PROJECTS)]


def create_mirror(base_url: str, upstream_url: str) -> str:
    """`PUT /root/mirror` (type mirror) with root's token; the index's simple URL."""
    auth = login(base_url, "root", ROOT_PASSWORD)
    config = {"type": "mirror", "mirror_url": upstream_url, "mirror_cache_expiry": 3600}
    response = httpx.put(
        f"{base_url}/root/mirror",
        content=json.dumps(config),
        headers={**JSON_HEADERS, **auth},
        timeout=30,
    )
    if response.status_code >= 300:
        raise RuntimeError(f"PUT /root/mirror -> {response.status_code}: {response.text[:500]}")
    return f"{base_url}/root/mirror/+simple/"


def _pip_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def pip_download(index_url: str, projects: list[str], target: Path, log_file: Path) -> float:
    """Wall time of `pip download --no-deps` of every project into a fresh `target`."""
    shutil.rmtree(target, ignore_errors=True)
    command = [
        *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"),
        *("-d", str(target), "--index-url", index_url, *projects),
    ]
    elapsed = _timed(command, log_file, _pip_environment())
    got = len(list(target.glob("*.whl")))
    if got != len(projects):
        raise RuntimeError(f"pip download gave {got} wheels, not {len(projects)}: {log_file}")
    return elapsed


def pip_floor(wheel_dir: Path, projects: list[str], runs: int) -> list[float]:
    """`pip download` of the same projects from a local directory, no server at all: the
    time pip itself needs, which no index server can take away."""
    target, log_file = MIRROR_WORK / "download-floor", MIRROR_WORK / "pip-floor.log"
    log_file.unlink(missing_ok=True)
    times = []
    for _ in range(runs):
        shutil.rmtree(target, ignore_errors=True)
        command = [
            *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"),
            *("--no-index", "--find-links", str(wheel_dir), "-d", str(target), *projects),
        ]
        times.append(_timed(command, log_file, _pip_environment()))
    return times


def uv_install(index_url: str, projects: list[str], target: Path, log_file: Path) -> float:
    """Wall time of `uv pip install --no-deps --no-cache --target` of every project."""
    shutil.rmtree(target, ignore_errors=True)
    uv = Path(sys.executable).parent / "uv"
    command = [
        *(str(uv), "pip", "install", "--no-deps", "--no-cache", "--python", sys.executable),
        *("--target", str(target), "--index-url", index_url, *projects),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    return _timed(command, log_file, env)


def _timed(command: list[str], log_file: Path, env: dict[str, str]) -> float:
    with log_file.open("a") as output:
        output.write(f"$ {' '.join(command)}\n")
        output.flush()
        started = time.perf_counter()
        result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}), see {log_file}")
    return elapsed


def list_names(response: httpx.Response) -> set[str]:
    if "json" in response.headers.get("content-type", ""):
        return {project["name"] for project in response.json()["projects"]}
    text = response.text
    names = set()
    for part in text.split("<a ")[1:]:
        names.add(part.split(">", 1)[1].split("<", 1)[0].strip())
    return names


def get_list(client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(url, headers={"Accept": PIP_ACCEPT})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} -> {response.status_code}: {response.text[:300]}")
    return elapsed, response


def measure_fill(
    server: Server, upstream: BenchUpstream, projects: list[str], runs: int
) -> dict[str, Any]:
    work = MIRROR_WORK / "fill"
    with running(server, work) as live:
        log(f"{server.label}: version {live.version}; mirror of {upstream.simple_url}")
        index_url = create_mirror(live.url, upstream.simple_url)
        pip_log = work / f"pip-{server.label}.log"
        pip_log.unlink(missing_ok=True)
        target = work / f"download-{server.label}"
        list_fetches_before = upstream.count("/simple/")
        cold = pip_download(index_url, projects, target, pip_log)
        log(f"{server.label}: cold fill {cold:.2f}s")
        warm = [pip_download(index_url, projects, target, pip_log) for _ in range(runs)]
        log(f"{server.label}: warm {', '.join(f'{s:.2f}' for s in warm)}s")
        uv_log, uv_target = work / f"uv-{server.label}.log", work / f"uv-target-{server.label}"
        uv_log.unlink(missing_ok=True)
        uv_warm = [uv_install(index_url, projects, uv_target, uv_log) for _ in range(runs)]
        log(f"{server.label}: warm uv {', '.join(f'{s:.3f}' for s in uv_warm)}s")
        return {
            "warm_uv_s": round(statistics.median(uv_warm), 3),
            "warm_uv_runs_s": [round(s, 3) for s in uv_warm],
            "server_version": live.version,
            "cold_fill_s": round(cold, 3),
            "warm_s": round(statistics.median(warm), 3),
            "warm_runs_s": [round(s, 3) for s in warm],
            "upstream_list_fetches_during_downloads": upstream.count("/simple/")
            - list_fetches_before,
        }


def measure_list(server: Server, upstream: BenchUpstream, runs: int) -> dict[str, Any]:
    expected = upstream.all_names()
    with running(server, MIRROR_WORK / "list") as live:
        index_url = create_mirror(live.url, upstream.simple_url)
        timeout = httpx.Timeout(LIST_DEADLINE)
        with httpx.Client(timeout=timeout) as client:
            started = time.perf_counter()
            polls, first_count = 0, None
            while True:
                _, response = get_list(client, index_url)
                polls += 1
                names = list_names(response)
                if first_count is None:
                    first_count = len(names)
                if expected <= names:
                    break
                if time.perf_counter() - started > LIST_DEADLINE:
                    raise RuntimeError(
                        f"{server.label}: list incomplete after {LIST_DEADLINE}s "
                        f"({len(names)} of {len(expected)} names)"
                    )
                time.sleep(POLL_INTERVAL)
            until_complete = time.perf_counter() - started
            log(f"{server.label}: full list complete after {until_complete:.2f}s ({polls} GETs)")
            steady = []
            for _ in range(runs):
                elapsed, response = get_list(client, index_url)
                if not expected <= list_names(response):
                    raise RuntimeError(f"{server.label}: a later list lacks names")
                steady.append(elapsed)
            log(f"{server.label}: full list steady {', '.join(f'{s:.3f}' for s in steady)}s")
            return {
                "list_until_complete_s": round(until_complete, 3),
                "list_gets_until_complete": polls,
                "list_names_in_first_answer": first_count,
                "list_steady_s": round(statistics.median(steady), 4),
                "list_steady_runs_s": [round(s, 4) for s in steady],
                "list_content_type": response.headers.get("content-type", ""),
                "list_content_encoding": response.headers.get("content-encoding", ""),
                "list_bytes_on_wire": int(response.headers.get("content-length", 0) or 0),
            }


ROWS = [
    ("cold fill: pip download, 30 projects (s)", "cold_fill_s"),
    ("warm: pip download, 30 projects (s)", "warm_s"),
    ("warm: uv pip install --target, 30 projects (s)", "warm_uv_s"),
    ("full list: until complete (s)", "list_until_complete_s"),
    ("full list: steady GET (s)", "list_steady_s"),
]


def ratios(results: dict[str, Any]) -> dict[str, float]:
    devpi, packyard = results["devpi"], results["packyard"]
    return {key: round(packyard[key] / devpi[key], 3) for _, key in ROWS}


def table(results: dict[str, Any], names: int, floor: float) -> str:
    devpi, packyard = results["devpi"], results["packyard"]
    header = f"{'':44} {'devpi':>9} {'packyard':>9} {'packyard/devpi':>15}"
    lines = [f"(full list: {names:,} names; times, lower is better)", header]
    lines.append(
        f"{'pip download with no server (--find-links)':44} {floor:>9.3f} {floor:>9.3f}"
        f"   lowest reachable warm ratio: {floor / devpi['warm_s']:.2f}x"
    )
    for title, key in ROWS:
        ratio = packyard[key] / devpi[key]
        target = ""
        if key == "warm_s":
            target = f"  (target <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})"
        lines.append(f"{title:44} {devpi[key]:>9.3f} {packyard[key]:>9.3f} {ratio:>14.2f}x{target}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=100_000, help="generated list names")
    parser.add_argument("--runs", type=int, default=5, help="warm and steady runs (median)")
    parser.add_argument("--output", type=Path, default=BENCH / "mirror-results.json")
    args = parser.parse_args()
    MIRROR_WORK.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC)
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    devpi_venv = ensure_devpi_venv(WORK)
    packyard_prefix = Path(sys.executable).parent.parent
    upstream = BenchUpstream(args.names)
    wheels = build_projects(MIRROR_WORK / "wheels")
    for path in wheels:
        upstream.publish(path)
    projects = sorted({file.project for file in upstream.files.values()})
    upstream.start()
    log(f"upstream on {upstream.url}: {len(projects)} projects, {args.names:,} extra names")
    servers: dict[str, Server] = {
        "devpi": Devpi(devpi_venv),
        "packyard": Packyard(packyard_prefix, workers=1),
    }
    results: dict[str, Any] = {}
    floor = pip_floor(MIRROR_WORK / "wheels", projects, args.runs)
    log(f"pip alone (no server): {', '.join(f'{s:.2f}' for s in floor)}s")
    try:
        for label, server in servers.items():
            results[label] = {
                **measure_fill(server, upstream, projects, args.runs),
                **measure_list(server, upstream, args.runs),
            }
    finally:
        upstream.stop()
        empty_trash()
    document = {
        "started": started.isoformat(timespec="seconds"),
        "projects": len(projects),
        "list_names": len(upstream.all_names()),
        "runs": args.runs,
        "pip": pip_version(),
        "packyard_revision": packyard_revision(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "results": results,
        "ratios_packyard_over_devpi": ratios(results),
        "pip_floor_s": round(statistics.median(floor), 3),
        "pip_floor_runs_s": [round(s, 3) for s in floor],
        "lowest_reachable_warm_ratio": round(
            statistics.median(floor) / results["devpi"]["warm_s"], 3
        ),
        "duration_s": round((datetime.datetime.now(datetime.UTC) - started).total_seconds()),
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(table(results, len(upstream.all_names()), document["pip_floor_s"]))
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
