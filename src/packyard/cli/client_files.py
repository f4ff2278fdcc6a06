"""Client verbs about distributions: upload, list, remove, install, getjson, push, yank, unyank."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import click
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from packyard.cli.client_common import (
    LOGIN_HINT,
    emit,
    index_option,
    json_option,
    not_logged_in,
    session,
)
from packyard.client import dists, installers, uploads
from packyard.client.api import Api, ClientError
from packyard.client.uploads import Outcome

NOT_THERE = {404: "`packyard list` shows the projects on the index"}
SHOWN_FAILURES = 5

# --- uploading --------------------------------------------------------------------------------


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@index_option
@click.option(
    "--formats", default="sdist,bdist_wheel", show_default=True,
    help="What to build from a project dir: sdist, bdist_wheel.",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what would be uploaded; upload nothing.")
def upload(paths: tuple[Path, ...], index: str | None, formats: str, dry_run: bool) -> None:
    """Upload distributions: files, wheelhouse dirs, or a project dir (built first).

    Without PATHS, builds the project in the current directory. Files the index already
    holds with the same sha256 are skipped, so a re-run uploads only what is new.
    """
    with session() as api, tempfile.TemporaryDirectory(prefix="packyard-build-") as built:
        where = api.index_path(index)
        if not (dry_run or api.state.has_credentials()):
            raise click.ClickException(f"nothing uploaded\n  hint: {not_logged_in(api.state)}")
        api.result("GET", where, no_projects="")  # a missing index fails here, before building
        targets = _collect(paths, formats.split(","), Path(built))
        todo, there = uploads.partition(api, where, targets)
        if dry_run:
            for path in todo:
                click.echo(f"would upload {path.name}")
            click.echo(f"dry run: would upload {len(todo)}, skip {len(there)} (already on {where})")
            if not api.state.has_credentials():
                click.echo(f"  note: {not_logged_in(api.state)}")
            return
        outcomes = _upload_with_progress(api, where, todo) if todo else []
    _summarize(outcomes, len(there), where)


def _collect(paths: tuple[Path, ...], formats: list[str], outdir: Path) -> list[Path]:
    if not paths:
        if not dists.is_project_dir(Path.cwd()):
            raise click.ClickException(
                "nothing to upload: this directory has no pyproject.toml or setup.py\n"
                "  hint: run in a project dir, or name files or wheelhouse directories"
            )
        paths = (Path.cwd(),)
    found: list[Path] = []
    for number, path in enumerate(paths):
        if dists.is_project_dir(path):
            click.echo(f"building {path} ({', '.join(formats)})")
            try:
                found.extend(dists.build(path, formats, outdir / str(number)))
            except (RuntimeError, ValueError) as exc:
                raise click.ClickException(str(exc)) from exc
        else:
            try:
                found.extend(dists.find_distributions([path]))
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
    if not found:
        raise click.ClickException("nothing to upload: no .whl, .tar.gz or .zip found")
    return found


def _upload_with_progress(api: Api, where: str, todo: list[Path]) -> list[Outcome]:
    """A progress bar on a terminal; one line per file in logs (CI)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        return uploads.upload_all(api, where, todo, _print_outcome)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"uploading to {where}", total=len(todo))

        def advance(outcome: Outcome) -> None:
            if not outcome.ok:
                progress.console.print(
                    f"  FAILED {outcome.path.name}: {outcome.error}", markup=False, soft_wrap=True
                )
            elif outcome.note:
                progress.console.print(
                    f"  uploaded {outcome.path.name}: {outcome.note}", markup=False, soft_wrap=True
                )
            progress.advance(task)

        return uploads.upload_all(api, where, todo, advance)


def _print_outcome(outcome: Outcome) -> None:
    if outcome.ok:
        note = f": {outcome.note}" if outcome.note else ""
        click.echo(f"  uploaded {outcome.path.name}{note}")
    else:
        click.echo(f"  FAILED   {outcome.path.name}: {outcome.error}")


def _summarize(outcomes: list[Outcome], skipped: int, where: str) -> None:
    failed = [outcome for outcome in outcomes if not outcome.ok]
    line = f"uploaded {len(outcomes) - len(failed)}, skipped {skipped} (already on {where})"
    if not failed:
        click.echo(f"{line}, failed 0")
        return
    named = "; ".join(f"{o.path.name} ({o.error})" for o in failed[:SHOWN_FAILURES])
    more = f"; and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
    click.echo(f"{line}, failed {len(failed)}: {named}{more}")
    hint = _failure_hint(failed[0].error)
    if hint:
        click.echo(f"  hint: {hint}")
    raise SystemExit(1)


def _failure_hint(error: str) -> str:
    if error.startswith("401"):
        return LOGIN_HINT + "; a login lasts 10 hours"
    if error.startswith("403"):
        return "your user may not upload here: the index's acl_upload names who may"
    if error.startswith("409"):
        return "a non-volatile index keeps released files: bump the version"
    if error.startswith("unreachable"):
        return "is the server running? `packyard use` shows which server is selected"
    return ""


# --- reading and removing ---------------------------------------------------------------------


@click.command("list")
@click.argument("project", required=False)
@index_option
@json_option
def list_command(project: str | None, index: str | None, as_json: bool) -> None:
    """List the index's projects, or PROJECT's versions and files."""
    with session(hints=NOT_THERE) as api:
        where = api.index_path(index)
        if not project:
            names = api.result("GET", where).get("projects", [])
            emit(names, as_json, names)
            return
        versions = api.result("GET", f"{where}/{canonicalize_name(project)}")
        held = _held(api, where, project)
    ordered = sorted(versions, key=_version_key, reverse=True)
    if as_json:
        # newest first, as in the table: not sorted by key
        click.echo(json.dumps({v: versions[v] for v in ordered}, indent=2))
        return
    table = Table("version", "file", "sha256", "state")
    for version in sorted({*ordered, *held}, key=_version_key, reverse=True):
        if version in held:  # left out of pages and installs: say why and until when
            table.add_row(version, "", "", held[version]["reason"])
            continue
        data = versions[version]
        for link in data.get("+links", []):
            if link.get("rel") == "releasefile":
                sha = link.get("hashes", {}).get("sha256", "")[:16]
                table.add_row(version, link["href"].rsplit("/", 1)[-1], sha, _state(data, link))
    Console(soft_wrap=True).print(table)


def _held(api: Api, where: str, project: str) -> dict[str, dict[str, Any]]:
    """Versions a mirror's cooldown holds back (none from a server that has no holds)."""
    try:
        held: dict[str, dict[str, Any]] = api.result(
            "GET", f"{where}/+held/{canonicalize_name(project)}"
        )
    except ClientError:
        return {}
    return held or {}


def _state(data: dict[str, Any], link: dict[str, Any]) -> str:
    """Yanked, refused (and why: project status, advisory), advisories naming the version."""
    states = ["yanked"] if link.get("yanked") else []
    if data.get("+refused"):
        states.append(f"refused: {data['+refused']}")
    else:
        states += [f"advisory {item.get('id')}" for item in data.get("+advisories", [])]
    status = data.get("+project_status", {}).get("status")
    if status and not data.get("+refused"):
        states.append(status)
    return "; ".join(states)


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _parse_spec(spec: str) -> tuple[str, str | None]:
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise click.BadParameter(f"{spec!r}: use NAME or NAME==VERSION") from exc
    pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
    if requirement.specifier and not pins:
        raise click.BadParameter(f"{spec!r}: only NAME==VERSION is supported")
    return str(canonicalize_name(requirement.name)), pins[0] if pins else None


@click.command()
@click.argument("spec")
@index_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("-f", "--force", is_flag=True, help="Also on a non-volatile index.")
def remove(spec: str, index: str | None, yes: bool, force: bool) -> None:
    """Remove NAME (all versions) or NAME==VERSION from the index."""
    project, version = _parse_spec(spec)
    hints = NOT_THERE | {
        403: "on a non-volatile index, only --force by its owner or root removes releases"
    }
    with session(hints=hints) as api:
        where = api.index_path(index)
        path = f"{where}/{project}" + (f"/{version}" if version else "")
        what = f"{project} {version}" if version else f"{project} (all versions)"
        if not yes:
            click.confirm(f"remove {what} from {where}?", abort=True)
        api.request("DELETE", path, **({"force": ""} if force else {}))
    click.echo(f"removed {what} from {where}")


@click.command()
@click.argument("packages", nargs=-1)
@index_option
@click.option("-r", "--requirement", "requirements", multiple=True, type=click.Path(exists=True),
              help="Install from this requirements file (repeatable).")  # fmt: skip
@click.option("--venv", type=click.Path(path_type=Path),
              help="Install into this virtualenv, created first if it does not exist "
                   "(default: the active one, $VIRTUAL_ENV).")  # fmt: skip
@click.option("--uv", "use_uv", is_flag=True, help="Install with uv instead of pip.")
def install(
    packages: tuple[str, ...], index: str | None, requirements: tuple[str, ...],
    venv: Path | None, use_uv: bool,
) -> None:  # fmt: skip
    """Install PACKAGES from the index with pip (or uv), into --venv, the active virtualenv,
    or else the Python packyard runs on."""
    if not (packages or requirements):
        raise click.UsageError("name PACKAGES to install, or -r REQUIREMENTS_FILE")
    with session() as api:
        simple = api.url(f"{api.index_path(index)}/+simple/")
        api.result("GET", f"{api.index_path(index)}/+api")  # a wrong index fails here
    wanted = [*packages, *(arg for path in requirements for arg in ("-r", path))]
    try:
        python = None
        venv = venv or (Path(os.environ["VIRTUAL_ENV"]) if os.environ.get("VIRTUAL_ENV") else None)
        if venv is not None:
            python, created = installers.ensure_venv(venv, use_uv)
            if created:
                click.echo(f"created virtualenv {venv}")
        command = installers.install_command(simple, wanted, python, use_uv)
    except installers.InstallerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("$ " + " ".join(command))
    raise SystemExit(subprocess.call(command))


@click.command()
@click.argument("path")
def getjson(path: str) -> None:
    """Print the JSON the server answers for PATH (relative to the server root, or a URL)."""
    with session() as api:
        click.echo(json.dumps(api.request("GET", path), indent=2, sort_keys=True))


@click.command()
@click.argument("spec")
@click.argument("target")
@index_option
def push(spec: str, target: str, index: str | None) -> None:
    """Copy release NAME==VERSION to the index TARGET (USER/INDEX)."""
    project, version = _parse_spec(spec)
    if version is None:
        raise click.BadParameter("push needs NAME==VERSION")
    with session() as api:
        body = {"name": project, "version": version, "targetindex": target}
        rows = api.result("POST", api.index_path(index), body)
    for row in rows or []:
        click.echo("  ".join(map(str, row)))
    click.echo(f"pushed {project} {version} to {target}")


def _yank(spec: str, index: str | None, value: Any) -> None:
    project, version = _parse_spec(spec)
    with session(hints=NOT_THERE) as api:
        path = f"{api.index_path(index)}/{project}" + (f"/{version}" if version else "")
        try:
            data = api.request("PATCH", path, {"yanked": value})
        except ClientError as exc:
            if exc.status in (404, 405) and _exists(api, path):
                raise click.ClickException(
                    f"{api.state.url} cannot yank: it answered {exc.message}\n"
                    "  hint: yanking (PEP 592) needs packyard or a devpi-server that supports it"
                ) from exc
            raise
    click.echo(data.get("message", "done"))


def _exists(api: Api, path: str) -> bool:
    try:
        api.request("GET", path)
    except ClientError:
        return False
    return True


@click.command()
@click.argument("spec")
@index_option
@click.option("--reason", default="", help="Why (shown to pip and uv users).")
def yank(spec: str, index: str | None, reason: str) -> None:
    """Yank NAME==VERSION (or all of NAME): installers skip it unless pinned (PEP 592)."""
    _yank(spec, index, reason or True)


@click.command()
@click.argument("spec")
@index_option
def unyank(spec: str, index: str | None) -> None:
    """Undo a yank of NAME==VERSION (or all of NAME)."""
    _yank(spec, index, False)


COMMANDS = (upload, list_command, remove, install, getjson, push, yank, unyank)
