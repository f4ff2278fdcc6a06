"""The server verbs: `init`, `serve`, `reset-passwd`, `drop-cache`, `export`, `import`."""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from packyard import __version__
from packyard.cli import bundle, client, exempt, move, tokens
from packyard.cli.client_common import with_hint
from packyard.cli.workers import serve_one, serve_workers
from packyard.client.errors import ClientError
from packyard.config import ENV_PREFIX, ROOT_PASSWORD_ENV, Settings, load_settings
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


@contextmanager
def existing_server(serverdir: Path | None, storage: str | None) -> Iterator[Services]:
    """The services of an existing server dir, for every server verb but `init`, `serve` and
    `import` (which create one): a missing dir is refused, never created empty. Domain errors
    become CLI errors."""
    from packyard.services import is_server_dir, open_services

    settings = _settings(serverdir=serverdir, storage=storage)
    if not is_server_dir(settings):
        raise click.ClickException(
            f"no packyard server directory at {settings.serverdir}: give --serverdir DIR"
            " (or set PACKYARD_SERVERDIR), or create one with `packyard init`"
        )
    services = open_services(settings)
    _act_as_command()
    try:
        yield services
    except PackyardError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        services.close()


def _act_as_command() -> None:
    """What this server verb changes is recorded in the audit trail as `(packyard VERB)`'s."""
    from packyard.services.audit import command_actor, set_actor

    set_actor(command_actor(click.get_current_context().info_name or "command"))


# --root-passwd is kept for compatibility, but other users of the machine see it in `ps`.
root_passwd_option = click.option(
    "--root-passwd",
    envvar=ROOT_PASSWORD_ENV,
    show_envvar=True,
    help="Password for user root (better: the environment variable, which `ps` does not show).",
)


def _warn_if_visible(root_passwd: str | None) -> None:
    source = click.get_current_context().get_parameter_source("root_passwd")
    if root_passwd and source is click.core.ParameterSource.COMMANDLINE:
        click.echo(
            f"warning: --root-passwd is visible to every user in `ps`; set {ROOT_PASSWORD_ENV}"
            " instead",
            err=True,
        )


def _init(services: Services, root_passwd: str | None, no_root_pypi: bool) -> None:
    from packyard.services import initialize

    generated = initialize(services, root_password=root_passwd, root_pypi=not no_root_pypi)
    click.echo(f"initialized {services.settings.serverdir}")
    if generated:
        click.echo(f"generated password for user root (shown once): {generated}")


class PackyardGroup(click.Group):
    """The `packyard` command: a client error no verb handled is still a readable message
    with its hint, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            raise click.ClickException(with_hint(exc)) from exc


@click.group(cls=PackyardGroup)
@click.version_option(__version__, prog_name="packyard")
def main() -> None:
    """packyard: a private Python package index, compatible with devpi."""


client.register(main)
main.add_command(bundle.bundle)
main.add_command(bundle.check)
main.add_command(tokens.token)
main.add_command(move.move)
main.add_command(exempt.exempt)


@main.command()
@server_options
@root_passwd_option
@click.option("--no-root-pypi", is_flag=True, help="Do not create the root/pypi mirror.")
def init(
    serverdir: Path | None, storage: str | None, root_passwd: str | None, no_root_pypi: bool
) -> None:
    """Create a new server directory with user root (its password generated unless given) and
    the root/pypi mirror."""
    from packyard.services import is_initialized, open_services

    _warn_if_visible(root_passwd)
    settings = _settings(serverdir=serverdir, storage=storage)
    services = open_services(settings)
    _act_as_command()
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
@click.option("--blobs", help="Keep the files in an object store: s3://BUCKET/PREFIX.")
@root_passwd_option
@click.option("--no-root-pypi", is_flag=True, help="When initializing: no root/pypi mirror.")
@click.option("--offline", is_flag=True, default=None, help="Never contact a mirror's upstream.")
@click.option(
    "--restrict-modify",
    help="Comma-separated users (and :groups) that alone may create/modify users and indexes.",
)
def serve(root_passwd: str | None, no_root_pypi: bool, **flags: Any) -> None:
    """Run the server; a missing or empty server dir is initialized first."""
    from packyard.services import is_initialized, open_services, recover_interrupted_writes

    _warn_if_visible(root_passwd)
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
    from packyard.web.limits import raise_descriptor_limit

    os.environ.pop(ROOT_PASSWORD_ENV, None)  # used by now; workers need not inherit it
    os.environ.update(settings_environment(settings))
    _metrics_dir(settings)
    raise_descriptor_limit(settings.max_connections)  # worker processes inherit it
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
        # Only the configured proxies' X-Forwarded-* headers count (uvicorn would trust
        # 127.0.0.1's by default).
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": list(settings.forwarded_allow_ips) or None,
    }
    announce = functools.partial(click.echo, _banner(settings), err=True)
    if settings.workers > 1:
        serve_workers(settings.host, settings.port, settings.workers, options, announce)
    else:
        serve_one(settings.host, settings.port, options, announce)


def _metrics_dir(settings: Settings) -> None:
    """An empty directory for this run's per-worker metric files (web/metrics.py), named in
    the environment before any worker imports prometheus_client (it reads it on import);
    an earlier run's values would be summed in otherwise."""
    directory = settings.serverdir / "tmp" / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _banner(settings: Settings) -> str:
    """What `serve` prints once it listens (never before: the port may be taken)."""
    url = f"http://{settings.host}:{settings.port}"
    offline = " (--offline: mirrors never contact their upstream)" if settings.offline else ""
    return f"packyard {__version__} serving {settings.serverdir} at {url}/{offline}"


def settings_environment(settings: Settings) -> dict[str, str]:
    """Settings as PACKYARD_* variables, so that worker processes load the same ones."""
    environment = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        environment[ENV_PREFIX + field.name.upper()] = str(value)
    return environment


@main.command("reset-passwd")
@server_options
@click.argument("user")
def reset_passwd(serverdir: Path | None, storage: str | None, user: str) -> None:
    """Set USER's password right in the server dir, with no login (e.g. a lost root password;
    devpi-server --passwd). Asks twice; the server may be running. (`passwd` changes your own
    password through the server.)"""
    with existing_server(serverdir, storage) as services:
        services.accounts.get(user)  # before asking: an unknown user is refused at once
        password = click.prompt(
            f"new password for {user}", hide_input=True, confirmation_prompt=True, err=True
        )
        if not password.strip():
            raise click.ClickException("the password must not be empty")
        services.accounts.modify(user, user, {"password": password})
    click.echo(f"password of {user} changed")


@main.group()
def advisories() -> None:
    """OSV advisories the server applies (MAL- ones quarantine the versions they name)."""


@advisories.command("import")
@server_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def advisories_import(serverdir: Path | None, storage: str | None, file: Path) -> None:
    """Import FILE, a zip of OSV JSON records (OSV's export for the PyPI ecosystem); works
    while the server runs, and offline."""
    with existing_server(serverdir, storage) as services:
        imported = services.advisories.import_zip(file, file.name)
    click.echo(
        f"imported {imported.advisories} advisories ({imported.malicious} malicious) from"
        f" {imported.records} records of {file}"
    )


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
    with existing_server(serverdir, storage) as services:
        user, name = split_index_name(index)
        record = services.indexes.get(user, name)
        name_filter = normalize_project(project) if project else None
        count, size = services.mirrors.drop_cached(record, name_filter, unused_days)
    click.echo(f"dropped {count} cached file(s), {size} bytes, from {index}")


@main.command()
@server_options
@click.option(
    "--repair",
    is_flag=True,
    help="Remove orphaned blobs, rebuild PEP 658 files, drop damaged cached mirror files.",
)
def fsck(serverdir: Path | None, storage: str | None, repair: bool) -> None:
    """Check that every file's blob exists with the right sha256 and every blob is used.

    Exits non-zero while problems remain (damaged or missing files, orphaned blobs).
    """
    from packyard.services.fsck import Fsck

    with existing_server(serverdir, storage) as services:
        result = Fsck(services.db, services.blobs, services.sources, click.echo).run(repair)
    click.echo(str(result))
    if not result.clean:
        hint = "" if repair else "; `packyard fsck --repair` removes orphans"
        raise click.ClickException(f"the server dir has problems{hint}")


def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())


@main.command("export")
@server_options
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--include-mirrored-files", is_flag=True, help="Also export cached mirror files.")
@click.option("--hard-links", is_flag=True, help="Hard-link files instead of copying them.")
@click.option("--skip-damaged", is_flag=True, help="Leave out (and list) damaged or missing files.")
def export_command(
    serverdir: Path | None,
    storage: str | None,
    directory: Path,
    include_mirrored_files: bool,
    hard_links: bool,
    skip_damaged: bool,
) -> None:
    """Write the whole server to DIRECTORY in devpi's export format (the server may run).

    Every file is checked against its sha256 as it is written; a damaged or missing one
    fails the export (all are named) unless --skip-damaged.
    """
    from packyard.services.dump import Exporter

    with existing_server(serverdir, storage) as services, _progress_bar() as bar:
        task = bar.add_task("exporting files")

        def progress(_what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = Exporter(services.db, services.blobs, services.sources).export(
            directory, include_mirrored_files, hard_links, progress, skip_damaged
        )
    _echo_skipped(summary.skipped)
    click.echo(f"exported {summary} to {directory}")


def _echo_skipped(skipped: list[str]) -> None:
    for name in skipped:
        click.echo(f"skipped damaged file: {name}", err=True)


@main.command("import")
@server_options
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--no-root-pypi", is_flag=True, help="Neither import nor create root/pypi (as devpi-import)."
)
@click.option(
    "--root-passwd", envvar=ROOT_PASSWORD_ENV, show_envvar=True,
    help="Set root's password instead of the exported one.",
)  # fmt: skip
@click.option("--root-passwd-hash", help="Set root's password hash (argon2) instead.")
@click.option("--skip-import-type", multiple=True, help="Skip indexes of this type.")
@click.option("--hard-links", is_flag=True, help="Hard-link files instead of copying them.")
@click.option("--no-events", is_flag=True, help="Accepted for devpi compatibility; no effect.")
@click.option("--force", is_flag=True, help="Import although the server already has users.")
@click.option("--skip-damaged", is_flag=True, help="Leave out (and list) damaged or missing files.")
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
    skip_damaged: bool,
) -> None:
    """Load a packyard or devpi-server export from DIRECTORY (all or nothing).

    Every file is checked against its sha256 first; a damaged or missing one fails the
    import (all are named) unless --skip-damaged, which imports the rest.
    """
    from packyard.services import initialize, initialize_root_pypi, is_initialized, open_services
    from packyard.services.dump import Importer, ImportOptions

    _warn_if_visible(root_passwd)
    if no_events:
        click.echo("note: --no-events has no effect: packyard has no event hooks to skip")
    services = open_services(_settings(serverdir=serverdir, storage=storage))
    _act_as_command()
    options = ImportOptions(
        root_password=root_passwd,
        root_pwhash=root_passwd_hash,
        skip_types=skip_import_type,
        skip_indexes=("root/pypi",) if no_root_pypi else (),
        hard_links=hard_links,
        allow_nonempty=force,
        skip_damaged=skip_damaged,
    )
    try:
        with _progress_bar() as bar:
            task = bar.add_task("importing files")

            def progress(_what: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            summary = Importer(services.db, services.blobs, services.sources).import_(
                directory, options, progress
            )
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
    _echo_skipped(summary.skipped)
    click.echo(f"imported {summary} from {directory}")
