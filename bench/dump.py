"""Export and import of 5,000 files: packyard against devpi-export/devpi-import. See README.md.

Run: /work/main/.venv/bin/python bench/dump.py [--files N] [--workers N]

Both servers receive the same generated wheels through the legacy upload API; then, with each
server stopped, the export and the import into a fresh server dir are timed as wall time of the
real commands (process start included). The devpi export is also imported by packyard, the
migration path. Everything lives in bench/.work/dump/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dataset import Wheel
from indexapi import create_user_and_indexes, upload
from servers import Devpi, Packyard, Server, empty_trash, ensure_devpi_venv, log, running

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import build_wheel  # type: ignore[import-not-found]

BENCH = Path(__file__).resolve().parent
WORK = BENCH / ".work"
DUMP_WORK = WORK / "dump"
USER, PASSWORD, INDEX = "bench", "benchpw", "dump"
VERSIONS_PER_PROJECT = 10


def build_wheels(directory: Path, count: int) -> list[Wheel]:
    """`count` tiny wheels, 10 versions per project, ordered version by version so that
    concurrent uploads go to different projects (devpi locks up on one project's history)."""
    shutil.rmtree(directory, ignore_errors=True)
    wheels = []
    projects = (count + VERSIONS_PER_PROJECT - 1) // VERSIONS_PER_PROJECT
    for version in range(VERSIONS_PER_PROJECT):
        for project in range(projects):
            if len(wheels) == count:
                break
            name = f"bench-dump-{project:04d}"
            path = build_wheel(directory, name, f"1.{version}")
            wheels.append(Wheel(name, f"1.{version}", path.name, path.read_bytes()))
    return wheels


def timed(command: list[str], log_file: Path) -> float:
    """Run a command to completion; its wall time in seconds (its output goes to `log_file`)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PACKYARD_", "DEVPI"))}
    started = time.perf_counter()
    with log_file.open("wb") as sink:
        result = subprocess.run(
            command, stdout=sink, stderr=subprocess.STDOUT, env=environment, check=False
        )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{log_file.read_text()[-3000:]}")
    return seconds


def exported_files(export: Path) -> int:
    dataindex = json.loads((export / "dataindex.json").read_text())
    return sum(len(index.get("files", [])) for index in dataindex["indexes"].values())


def export_command(label: str, bin_dir: Path, serverdir: Path, target: Path) -> list[str]:
    if label == "devpi":
        return [str(bin_dir / "devpi-export"), "--serverdir", str(serverdir), str(target)]
    return [str(bin_dir / "packyard"), "export", "--serverdir", str(serverdir), str(target)]


def import_command(label: str, bin_dir: Path, serverdir: Path, source: Path) -> list[str]:
    if label == "devpi":
        tool = [str(bin_dir / "devpi-import")]
    else:
        tool = [str(bin_dir / "packyard"), "import"]
    return [*tool, "--serverdir", str(serverdir), "--no-root-pypi", str(source)]


def fill(server: Server, wheels: list[Wheel], workers: int) -> tuple[Path, float]:
    """A fresh server dir holding every wheel; the server is stopped on return."""
    with running(server, DUMP_WORK) as live:
        log(f"{server.label}: version {live.version}; uploading {len(wheels)} wheels")
        auth = create_user_and_indexes(live.url, USER, PASSWORD, [INDEX])
        seconds = upload(f"{live.url}/{USER}/{INDEX}/", auth, wheels, workers)
        log(f"{server.label}: uploaded in {seconds:.1f}s ({len(wheels) / seconds:.1f} files/s)")
    return DUMP_WORK / "serverdirs" / server.label, seconds


def measure(label: str, bin_dir: Path, serverdir: Path, count: int) -> dict[str, Any]:
    export = DUMP_WORK / f"export-{label}"
    target = DUMP_WORK / f"imported-{label}"
    for leftover in (export, target):
        shutil.rmtree(leftover, ignore_errors=True)
    command = export_command(label, bin_dir, serverdir, export)
    export_s = timed(command, DUMP_WORK / f"export-{label}.log")
    if exported_files(export) != count:
        raise RuntimeError(f"{label} exported {exported_files(export)} files, not {count}")
    log(f"{label}: export {export_s:.1f}s")
    command = import_command(label, bin_dir, target, export)
    import_s = timed(command, DUMP_WORK / f"import-{label}.log")
    log(f"{label}: import {import_s:.1f}s")
    return {"export_s": round(export_s, 2), "import_s": round(import_s, 2)}


def table(results: dict[str, Any], count: int) -> str:
    devpi, packyard = results["devpi"], results["packyard"]
    rows = [
        ("upload (files/s, 4 in flight)", "upload_files_per_s", True),
        (f"export, {count:,} files (s)", "export_s", False),
        (f"import, {count:,} files (s)", "import_s", False),
    ]
    lines = [f"{'':34} {'devpi':>10} {'packyard':>10} {'packyard/devpi':>15}"]
    for title, key, higher_better in rows:
        ratio = packyard[key] / devpi[key]
        note = "higher is better" if higher_better else "time: lower is better"
        lines.append(
            f"{title:34} {devpi[key]:>10.2f} {packyard[key]:>10.2f} {ratio:>14.2f}x  ({note})"
        )
    migration = results["packyard_import_of_devpi_export_s"]
    lines.append(f"{'packyard import of devpi export (s)':34} {'':>10} {migration:>10.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="wheels (default 5000)")
    parser.add_argument("--workers", type=int, default=4, help="uploads in flight (default 4)")
    parser.add_argument("--output", type=Path, default=DUMP_WORK / "results.json")
    args = parser.parse_args()
    DUMP_WORK.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC)
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    devpi_venv = ensure_devpi_venv(WORK)
    packyard_bin = Path(sys.executable).parent
    log(f"building {args.files} wheels")
    wheels = build_wheels(DUMP_WORK / "wheels", args.files)
    servers: dict[str, tuple[Server, Path]] = {
        "devpi": (Devpi(devpi_venv), devpi_venv / "bin"),
        "packyard": (Packyard(packyard_bin.parent, workers=1), packyard_bin),
    }
    results: dict[str, Any] = {}
    for label, (server, bin_dir) in servers.items():
        serverdir, upload_s = fill(server, wheels, args.workers)
        results[label] = {
            "upload_files_per_s": round(len(wheels) / upload_s, 1),
            **measure(label, bin_dir, serverdir, len(wheels)),
        }
    migrated = DUMP_WORK / "imported-devpi-into-packyard"
    shutil.rmtree(migrated, ignore_errors=True)
    command = import_command("packyard", packyard_bin, migrated, DUMP_WORK / "export-devpi")
    results["packyard_import_of_devpi_export_s"] = round(
        timed(command, DUMP_WORK / "import-devpi-into-packyard.log"), 2
    )
    empty_trash()
    document = {
        "started": started.isoformat(timespec="seconds"),
        "files": len(wheels),
        "upload_workers": args.workers,
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "results": results,
        "ratios_packyard_over_devpi": {
            key: round(results["packyard"][key] / results["devpi"][key], 3)
            for key in ("upload_files_per_s", "export_s", "import_s")
        },
        "duration_s": round((datetime.datetime.now(datetime.UTC) - started).total_seconds()),
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(table(results, len(wheels)))
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
