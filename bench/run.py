"""Benchmark packyard against devpi-server, side by side on loopback. See bench/README.md.

Run: /work/main/.venv/bin/python bench/run.py [--quick] [--servers devpi,packyard-1w,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from dataset import BIG_PROJECT, CHAIN_PREFIX, SMALL_PROJECT, Dataset, build_dataset
from indexapi import count_files, create_user_and_indexes, upload
from loads import WrkLoad, ensure_wrk, pip_install_seconds, pip_version
from report import ratios, table, write_json
from servers import (
    Devpi,
    Packyard,
    Running,
    Server,
    empty_trash,
    ensure_devpi_venv,
    ensure_packyard_venv,
    log,
    packyard_revision,
    running,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
USER, PASSWORD = "bench", "benchpw"
SERVER_LABELS = ("devpi", "packyard-1w", "packyard-2w")
# One at a time: devpi answers concurrent uploads into a project with many releases with
# 500 "database is locked" (its upload time grows with the project's history).
SETUP_WORKERS = 1
QUIET_LOAD = 0.5  # --wait-quiet: 1-minute load average to wait for before each server
QUIET_PATIENCE_S = 300


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of everything: the full run, or a smaller `--quick` one."""

    big_files: int = 2000
    upload_files: int = 500
    chain_length: int = 20
    upload_workers: int = 4
    upload_rounds: int = 3
    wrk_seconds: int = 10
    warmup_seconds: int = 2
    wrk_connections: int = 8
    wrk_threads: int = 1
    pip_runs: int = 5

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            big_files=200,
            upload_files=100,
            upload_rounds=1,
            wrk_seconds=3,
            warmup_seconds=1,
            pip_runs=1,
        )


def measure_page(load: WrkLoad, page_url: str, files: int, warmup_s: int) -> dict[str, Any]:
    """Check the page lists `files` files, warm it up, then measure it with wrk."""
    listed, content_type = count_files(page_url)
    if listed != files:
        raise RuntimeError(f"{page_url} lists {listed} files, expected {files}")
    load.run(page_url, warmup_s)
    result, output = load.run(page_url)
    log(f"  {page_url}: {result.requests_per_s:,.0f} req/s, {result.errors} errors")
    if result.errors:
        raise RuntimeError(f"wrk saw errors on {page_url}:\n{output}")
    return {**dataclasses.asdict(result), "content_type": content_type, "files": files}


def measure_uploads(server: Server, data: Dataset, plan: Plan) -> dict[str, Any]:
    """The timed uploads, `plan.upload_rounds` times, each into a fresh server: one round of
    500 small files lasts about a second, too short to trust alone."""
    rates = []
    for round_number in range(plan.upload_rounds):
        with running(server, WORK / "upload-rounds" / str(round_number)) as live:
            auth = create_user_and_indexes(live.url, USER, PASSWORD, ["upload"])
            url = f"{live.url}/{USER}/upload/"
            seconds = upload(url, auth, data.uploads, plan.upload_workers)
        rates.append(len(data.uploads) / seconds)
        log(f"  upload: {len(data.uploads)} files in {seconds:.2f}s = {rates[-1]:.1f} files/s")
    return {
        "files": len(data.uploads),
        "rounds_files_per_s": [round(rate, 1) for rate in rates],
        "files_per_s": statistics.median(rates),
    }


def measure_pip(label: str, server: Running, data: Dataset, plan: Plan) -> dict[str, Any]:
    index_url = f"{server.url}/{USER}/data/+simple/"
    expected = (CHAIN_PREFIX.replace("-", "_"), plan.chain_length)
    pip_log = WORK / f"pip-{label}.log"
    pip_log.unlink(missing_ok=True)
    runs = [
        pip_install_seconds(index_url, data.chain_root, expected, WORK, pip_log)
        for _ in range(plan.pip_runs)
    ]
    log(f"  pip install: {', '.join(f'{run:.2f}s' for run in runs)}")
    return {"runs_s": [round(run, 3) for run in runs], "median_s": statistics.median(runs)}


def measure(server: Server, data: Dataset, plan: Plan, load: WrkLoad) -> dict[str, Any]:
    """Timed uploads into fresh server dirs; then, on another fresh one, untimed set-up,
    simple pages and pip."""
    log(f"{server.label}: starting (load average {os.getloadavg()[0]:.2f})")
    load_average = round(os.getloadavg()[0], 2)
    uploads = measure_uploads(server, data, plan)
    with running(server, WORK) as live:
        log(f"{server.label}: version {live.version} at {live.url}")
        auth = create_user_and_indexes(live.url, USER, PASSWORD, ["data"])
        result: dict[str, Any] = {
            "version": live.version,
            "load_average": load_average,
            "upload": uploads,
        }
        log(f"{server.label}: uploading {len(data.setup_files)} set-up files (untimed)")
        upload(f"{live.url}/{USER}/data/", auth, data.setup_files, SETUP_WORKERS)
        simple = f"{live.url}/{USER}/data/+simple"
        warmup = plan.warmup_seconds
        result["simple_10"] = measure_page(load, f"{simple}/{SMALL_PROJECT}/", 10, warmup)
        result["simple_2000"] = measure_page(
            load, f"{simple}/{BIG_PROJECT}/", plan.big_files, warmup
        )
        result["pip_install"] = measure_pip(server.label, live, data, plan)
        return result


def servers_for(labels: list[str]) -> list[Server]:
    chosen: list[Server] = []
    if "devpi" in labels:
        chosen.append(Devpi(ensure_devpi_venv(WORK)))
    packyard_labels = [label for label in labels if label.startswith("packyard-")]
    if packyard_labels:
        venv = ensure_packyard_venv(WORK, REPO)
        chosen.extend(Packyard(venv, int(label[9:-1])) for label in packyard_labels)
    return chosen


def wait_for_quiet() -> None:
    """Wait (a bounded time) until other work on this machine has died down."""
    deadline = time.monotonic() + QUIET_PATIENCE_S
    while os.getloadavg()[0] > QUIET_LOAD and time.monotonic() < deadline:
        log(f"waiting for a quiet machine: load average {os.getloadavg()[0]:.2f}")
        time.sleep(15)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "pip": pip_version(),
        "packyard_revision": packyard_revision(),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    parser.add_argument(
        "--servers",
        default=",".join(SERVER_LABELS),
        help=f"comma-separated, from {', '.join(SERVER_LABELS)} (default: all)",
    )
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results.json)")
    parser.add_argument(
        "--wait-quiet",
        action="store_true",
        help=f"before each server, wait up to {QUIET_PATIENCE_S}s for load average < {QUIET_LOAD}",
    )
    args = parser.parse_args()
    args.servers = [label.strip() for label in args.servers.split(",") if label.strip()]
    unknown = set(args.servers) - set(SERVER_LABELS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    if args.output is None:
        args.output = WORK / "results-quick.json" if args.quick else BENCH / "results.json"
    return args


def main() -> None:
    args = parse_args()
    plan = Plan.quick() if args.quick else Plan()
    WORK.mkdir(parents=True, exist_ok=True)
    load = WrkLoad(ensure_wrk(), plan.wrk_seconds, plan.wrk_connections, plan.wrk_threads)
    started = datetime.datetime.now(datetime.UTC)
    host = machine()
    servers = servers_for(args.servers)
    log("building wheels")
    data = build_dataset(WORK / "wheels", plan.big_files, plan.upload_files, plan.chain_length)
    results = {}
    try:
        for server in servers:
            if args.wait_quiet:
                wait_for_quiet()
            results[server.label] = measure(server, data, plan, load)
    finally:
        empty_trash()
    document = {
        "started": started.isoformat(timespec="seconds"),
        "quick": args.quick,
        "plan": dataclasses.asdict(plan),
        "machine": host,
        "servers": results,
        "ratios": ratios(results),
        "duration_s": round((datetime.datetime.now(datetime.UTC) - started).total_seconds()),
    }
    write_json(document, args.output)
    print(table(document))
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
