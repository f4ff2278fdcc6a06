"""`packyard init` and `packyard serve`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from packyard import __version__
from packyard.cli import bundle, client
from packyard.cli.workers import serve_workers
from packyard.config import ENV_PREFIX, Settings, load_settings
from packyard.core.names import normalize_project, split_index_name
from packyard.errors import ConfigError, PackyardError

if TYPE_CHECKING:
    from packyard.services import Services

# The server's modules (SQLAlchemy, uvicorn, the services) are imported by the commands that
# use them, so that the client verbs start in a fraction of the time.

SERVER_OPTIONS = [
    click.option("--serverdir", type=click.Path(path_type=Path), help="Server directory."),
    click.option("--storage", help="Database URL, e.g. postgresql://user@host/db."),
]


def server_options(func: Any) -> Any:
    for option in reversed(SERVER_OPTIONS):
        func = option(func)
    return func


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(flags)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from exc


def _init(services: Services, root_passwd: str | None, no_root_pypi: bool) -> None:
    from packyard.services import initialize

    generated = initialize(services, root_password=root_passwd, root_pypi=not no_root_pypi)
    click.echo(f"initialized {services.settings.serverdir}")
    if generated:
        click.echo(f"generated password for user root (shown once): {generated}")


@click.group()
@click.version_option(__version__, prog_name="packyard")
def main() -> None:
    """packyard: a private Python package index, compatible with devpi."""


client.register(main)
main.add_command(bundle.bundle)
main.add_command(bundle.check)


@main.command()
@server_options
@click.option("--root-passwd", help="Password for user root (generated when not given).")
@click.option("--no-root-pypi", is_flag=True, help="Do not create the root/pypi mirror.")
def init(
    serverdir: Path | None, storage: str | None, root_passwd: str | None, no_root_pypi: bool
) -> None:
    """Create a new server directory with user root and the root/pypi mirror."""
    from packyard.services import is_initialized, open_services

    settings = _settings(serverdir=serverdir, storage=storage)
    services = open_services(settings)
    try:
        if is_initialized(services):
            raise click.ClickException(f"{settings.serverdir} is already initialized")
        _init(services, root_passwd, no_root_pypi)
    finally:
        services.close()


@main.command()
@server_options
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 3141).")
@click.option("--workers", type=int, help="Worker processes (default 1).")
@click.option("--outside-url", help="Absolute URL clients reach the server at.")
@click.option("--root-passwd", help="Root password, if this start initializes the server dir.")
@click.option("--no-root-pypi", is_flag=True, help="When initializing: no root/pypi mirror.")
@click.option("--offline", is_flag=True, default=None, help="Never contact a mirror's upstream.")
@click.option(
    "--restrict-modify",
    help="Comma-separated users (and :groups) that alone may create/modify users and indexes.",
)
def serve(root_passwd: str | None, no_root_pypi: bool, **flags: Any) -> None:
    """Run the server; a missing or empty server dir is initialized first."""
    from packyard.services import is_initialized, open_services, recover_interrupted_writes

    settings = _settings(**flags)
    services = open_services(settings)
    try:
        if not is_initialized(services):
            _init(services, root_passwd, no_root_pypi)
        settled = recover_interrupted_writes(services)
        if settled:
            click.echo(f"settled {settled} file(s) left by an interrupted run")
    finally:
        services.close()
    _run(settings)


def _run(settings: Settings) -> None:
    import uvicorn

    from packyard.web.limits import raise_descriptor_limit

    os.environ.update(settings_environment(settings))
    raise_descriptor_limit(settings.max_connections)  # worker processes inherit it
    url = f"http://{settings.host}:{settings.port}"
    click.echo(f"packyard {__version__} serving {settings.serverdir} at {url}/", err=True)
    options: dict[str, Any] = {
        "app": "packyard.web.app:app_from_environment",
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "http": "packyard.web.server:ReasonPhraseProtocol",
        "loop": "uvloop",
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 10,
        "server_header": False,
    }
    if settings.workers > 1:
        serve_workers(settings.host, settings.port, settings.workers, options)
    else:
        uvicorn.run(**options)


def settings_environment(settings: Settings) -> dict[str, str]:
    """Settings as PACKYARD_* variables, so that worker processes load the same ones."""
    environment = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        environment[ENV_PREFIX + field.name.upper()] = str(value)
    return environment


@main.command("drop-cache")
@server_options
@click.argument("index")
@click.option("--project", help="Only this project's files.")
@click.option("--unused-days", type=float, help="Only files not served for this many days.")
def drop_cache(
    serverdir: Path | None,
    storage: str | None,
    index: str,
    project: str | None,
    unused_days: float | None,
) -> None:
    """Drop cached files of the mirror INDEX (user/name); pages keep listing them."""
    from packyard.services import open_services

    settings = _settings(serverdir=serverdir, storage=storage)
    services = open_services(settings)
    try:
        user, name = split_index_name(index)
        record = services.indexes.get(user, name)
        name_filter = normalize_project(project) if project else None
        count, size = services.mirrors.drop_cached(record, name_filter, unused_days)
    except PackyardError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        services.close()
    click.echo(f"dropped {count} cached file(s), {size} bytes, from {index}")


def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())


@main.command("export")
@server_options
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--include-mirrored-files", is_flag=True, help="Also export cached mirror files.")
@click.option("--hard-links", is_flag=True, help="Hard-link files instead of copying them.")
def export_command(
    serverdir: Path | None,
    storage: str | None,
    directory: Path,
    include_mirrored_files: bool,
    hard_links: bool,
) -> None:
    """Write the whole server to DIRECTORY in devpi's export format (the server may run)."""
    from packyard.services import open_services
    from packyard.services.dump import Exporter

    services = open_services(_settings(serverdir=serverdir, storage=storage))
    try:
        with _progress_bar() as bar:
            task = bar.add_task("exporting files")

            def progress(_what: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = Exporter(services.db, services.blobs).export(
                directory, include_mirrored_files, hard_links, progress
            )
    except PackyardError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        services.close()
    click.echo(f"exported {summary} to {directory}")


@main.command("import")
@server_options
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--no-root-pypi", is_flag=True, help="Neither import nor create root/pypi (as devpi-import)."
)
@click.option("--root-passwd", help="Set root's password instead of the exported one.")
@click.option("--root-passwd-hash", help="Set root's password hash (argon2) instead.")
@click.option("--skip-import-type", multiple=True, help="Skip indexes of this type.")
@click.option("--hard-links", is_flag=True, help="Hard-link files instead of copying them.")
@click.option("--no-events", is_flag=True, help="Accepted for devpi compatibility; no effect.")
@click.option("--force", is_flag=True, help="Import although the server already has users.")
def import_command(
    serverdir: Path | None,
    storage: str | None,
    directory: Path,
    no_root_pypi: bool,
    root_passwd: str | None,
    root_passwd_hash: str | None,
    skip_import_type: tuple[str, ...],
    hard_links: bool,
    no_events: bool,
    force: bool,
) -> None:
    """Load a packyard or devpi-server export from DIRECTORY (all or nothing)."""
    from packyard.services import initialize, initialize_root_pypi, is_initialized, open_services
    from packyard.services.dump import Importer, ImportOptions

    if no_events:
        click.echo("note: --no-events has no effect: packyard has no event hooks to skip")
    services = open_services(_settings(serverdir=serverdir, storage=storage))
    options = ImportOptions(
        root_password=root_passwd,
        root_pwhash=root_passwd_hash,
        skip_types=skip_import_type,
        skip_indexes=("root/pypi",) if no_root_pypi else (),
        hard_links=hard_links,
        allow_nonempty=force,
    )
    try:
        with _progress_bar() as bar:
            task = bar.add_task("importing files")

            def progress(_what: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = Importer(services.db, services.blobs).import_(directory, options, progress)
        if not is_initialized(services):  # an export without root: create it, as devpi-import
            generated = initialize(
                services, root_password=root_passwd, root_pwhash=root_passwd_hash, root_pypi=False
            )
            if generated:
                click.echo(f"generated password for user root (shown once): {generated}")
        if not no_root_pypi and "root/pypi" not in services.indexes.all():
            initialize_root_pypi(services)
    except PackyardError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        services.close()
    click.echo(f"imported {summary} from {directory}")
