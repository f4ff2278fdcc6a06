"""`packyard move`: a server from one topology to another (services/move.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from packyard.config import Settings, load_settings
from packyard.errors import ConfigError, PackyardError


@click.command("move")
@click.option("--serverdir", type=click.Path(path_type=Path), help="Server directory to move.")
@click.option("--storage", help="Its database URL, when not SQLite in the server dir.")
@click.option("--blobs", help="Its object store (s3://BUCKET/PREFIX), when not files.")
@click.option(
    "--to-serverdir",
    type=click.Path(path_type=Path),
    help="Target server dir (needed for SQLite + files; else a temporary one is used).",
)
@click.option("--to-storage", help="Target database URL, e.g. postgresql://user@host/db.")
@click.option("--to-blobs", help="Target object store: s3://BUCKET/PREFIX.")
def move(
    serverdir: Path | None,
    storage: str | None,
    blobs: str | None,
    to_serverdir: Path | None,
    to_storage: str | None,
    to_blobs: str | None,
) -> None:
    """Copy a stopped server's users, indexes, files, tokens and audit trail to other storage,
    checking every file's sha256. The target database must be empty; an interrupted move is
    resumed by running it again (files already copied are verified and kept)."""
    from packyard.services.move import move as run_move

    try:
        source = load_settings({"serverdir": serverdir, "storage": storage, "blobs": blobs})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc
    if not to_storage and not to_serverdir:
        raise click.UsageError("give --to-serverdir for SQLite + files, or --to-storage")
    scratch = None if to_serverdir else Path(tempfile.mkdtemp(prefix="packyard-move-"))
    target = Settings(
        serverdir=to_serverdir or scratch or Path(), storage=to_storage or "", blobs=to_blobs or ""
    )
    try:
        with _bars() as bars:
            report = run_move(source, target, bars.update)
    except PackyardError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    click.echo(
        f"moved {report.rows} rows; {report.blobs_copied} files copied"
        f" ({report.bytes_copied} bytes), {report.blobs_present} already there and verified"
    )


class _bars:
    """One rich progress bar per stage (files, then rows)."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.progress = Progress(*columns)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, what: str, done: int, total: int) -> None:
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(f"copying {what}", total=total)
        self.progress.update(self.tasks[what], completed=done, total=total)
