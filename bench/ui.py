"""How fast the web UI renders with many projects in one index.

Registers N projects (10,000 by default) in one index through the legacy API's
`:action=submit` (a version without a file, so no wheels are built), then times the HTML
index page, a project page, a version page and the search page: the median of R requests each.

Run: /work/main/.venv/bin/python bench/ui.py [--projects 10000] [--repeat 20] [--workers 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from servers import Packyard, running

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
WORDS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite", "harbor", "iris"]
USER, INDEX = "bench", "big"


def project_name(number: int) -> str:
    return f"proj-{number:05d}"


def description(number: int) -> str:
    word = WORDS[number % len(WORDS)]
    return f"# {project_name(number)}\n\nA {word} package, number {number}.\n\n- one\n- two\n"


def register(client: httpx.Client, number: int) -> None:
    form = {
        ":action": "submit",
        "name": project_name(number),
        "version": "1.0",
        "summary": f"project number {number}",
        "description": description(number),
        "description_content_type": "text/markdown",
    }
    # The legacy API is multipart/form-data, as twine and the devpi client send it.
    parts = {key: (None, value) for key, value in form.items()}
    response = client.post(f"/{USER}/{INDEX}/", files=parts)
    response.raise_for_status()


def populate(url: str, projects: int, workers: int) -> float:
    """Create the user, the index and `projects` registered projects; seconds taken."""
    auth = (USER, "pw")
    with httpx.Client(base_url=url, timeout=60) as client:
        client.put(f"/{USER}", json={"password": "pw"}, headers=JSON).raise_for_status()
        client.put(f"/{USER}/{INDEX}", json={}, headers=JSON, auth=auth).raise_for_status()
    started = time.perf_counter()
    clients = [httpx.Client(base_url=url, auth=auth, timeout=60) for _ in range(workers)]
    try:
        with ThreadPoolExecutor(workers) as pool:
            jobs = [
                pool.submit(register, clients[number % workers], number)
                for number in range(projects)
            ]
            for done, job in enumerate(jobs, 1):
                job.result()
                if done % 2000 == 0:
                    print(f"  registered {done}/{projects}", file=sys.stderr)
    finally:
        for client in clients:
            client.close()
    return time.perf_counter() - started


def median_ms(fetch: Callable[[], httpx.Response], repeat: int) -> tuple[float, int]:
    """Median wall time of `repeat` requests after one warm-up; and the body size."""
    size = len(fetch().content)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = fetch()
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(timings), size


def measure(url: str, projects: int, repeat: int) -> list[tuple[str, float, int]]:
    middle = project_name(projects // 2)
    pages = [
        ("index page (HTML)", f"/{USER}/{INDEX}", HTML),
        ("index (JSON, for comparison)", f"/{USER}/{INDEX}", JSON),
        ("project page (HTML)", f"/{USER}/{INDEX}/{middle}", HTML),
        ("version page (HTML)", f"/{USER}/{INDEX}/{middle}/1.0", HTML),
        ("search page, 1 hit (HTML)", f"/+search?q={middle}", HTML),
        ("search page, a word in 1/9 of them (HTML)", "/+search?q=cobalt", HTML),
    ]
    results = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for label, path, headers in pages:

            def fetch(path: str = path, headers: dict[str, str] = headers) -> httpx.Response:
                return client.get(path, headers=headers)

            median, size = median_ms(fetch, repeat)
            results.append((label, median, size))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="clients registering at once")
    args = parser.parse_args()
    venv = Path(sys.executable).parent.parent
    with (
        tempfile.TemporaryDirectory(prefix="packyard-ui-bench-") as work,
        running(Packyard(venv, workers=1), Path(work)) as server,
    ):
        print(f"packyard {server.version} at {server.url}", file=sys.stderr)
        seconds = populate(server.url, args.projects, args.workers)
        print(f"registered {args.projects} projects in {seconds:.1f} s")
        results = measure(server.url, args.projects, args.repeat)
    print(f"median of {args.repeat} requests, {args.projects} projects in one index:")
    for label, median, size in results:
        print(f"  {label:<40} {median:8.1f} ms  {size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
