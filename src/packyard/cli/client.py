"""Client verbs, devpi's names: use, login, logoff, user, passwd, index, upload, list, remove,
install, getjson, push, yank, unyank. They talk HTTP only (packyard.client)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from packyard.client import dists
from packyard.client.api import Api, ClientError, sha256_of
from packyard.client.state import ClientState

console = Console()
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
index_option = click.option("--index", help="USER/INDEX instead of the current one.")


@contextmanager
def session(save: bool = False) -> Iterator[Api]:
    """An Api over the saved client state; ClientError becomes a readable CLI error."""
    state = ClientState.load()
    api = Api(state)
    try:
        yield api
        if save:
            state.save()
    except ClientError as exc:
        raise click.ClickException(_with_hint(exc)) from exc
    finally:
        api.close()


def _with_hint(exc: ClientError) -> str:
    hints = {
        401: "log in with `packyard login USER`",
        403: "your user may not do this here; ask the index owner (or root)",
        404: "check the name; `packyard use -l` lists indexes",
    }
    hint = hints.get(exc.status)
    return f"{exc.message}\n  hint: {hint}" if hint else exc.message


def _emit(data: Any, as_json: bool, lines: Iterable[str]) -> None:
    """JSON for scripts, or the given lines for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


def _key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: use key=value")
        values[key] = value
    return values


def register(main: click.Group) -> None:
    for command in (use, login, logoff, user, passwd, index, upload, list_command, remove,
                    install, getjson, push, yank, unyank):  # fmt: skip
        main.add_command(command)


# --- server and index -------------------------------------------------------------------------


@click.command()
@click.argument("target", required=False)
@click.option("-l", "--list", "list_indexes", is_flag=True, help="List all indexes.")
@click.option("--set-cfg", is_flag=True, help="Point pip's and uv's config at the index.")
@json_option
def use(target: str | None, list_indexes: bool, set_cfg: bool, as_json: bool) -> None:
    """Select a server (URL) and/or an index (USER/INDEX or a full index URL)."""
    with session(save=True) as api:
        if target:
            _select(api, target)
        state = api.state
        if list_indexes:
            users = api.result("GET", "")
            rows = [
                (f"{name}/{index}", config)
                for name, data in sorted(users.items())
                for index, config in sorted(data.get("indexes", {}).items())
            ]
            _emit(
                {name: config for name, config in rows},
                as_json,
                [_index_line(name, config) for name, config in rows],
            )
            return
        if set_cfg:
            simple = f"{state.url}/{api.index_path()}/+simple/"
            for written in write_installer_config(simple):
                click.echo(f"wrote {written}")
        current = {"url": state.url, "index": state.index, "user": state.user or None}
        _emit(current, as_json, _current_lines(state))


def _select(api: Api, target: str) -> None:
    state = api.state
    if target.startswith(("http://", "https://")):
        discovery = api.result("GET", target.rstrip("/") + "/+api")
        state.url = discovery["login"].rsplit("/+login", 1)[0]
        index_url = discovery.get("index", "")
        state.index = index_url[len(state.url) :].strip("/") if index_url else ""
        return
    api.result("GET", f"{api.index_path(target)}/+api")
    state.index = target.strip("/")


def _current_lines(state: ClientState) -> list[str]:
    return [
        f"server: {state.url or '(none)'}",
        f"index:  {state.index or '(none)'}",
        f"user:   {state.user or '(not logged in)'}",
    ]


def _index_line(name: str, config: dict[str, Any]) -> str:
    bases = ",".join(config.get("bases", []))
    return f"{name:<24} bases={bases:<20} volatile={config.get('volatile')}"


def write_installer_config(simple_url: str) -> list[Path]:
    """Make plain `pip install` and `uv` use the index (user-level config files)."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    pip_conf = base / "pip" / "pip.conf"
    parser = configparser.ConfigParser()
    parser.read(pip_conf)
    if not parser.has_section("global"):
        parser.add_section("global")
    parser.set("global", "index-url", simple_url)
    pip_conf.parent.mkdir(parents=True, exist_ok=True)
    with pip_conf.open("w") as handle:
        parser.write(handle)
    uv_toml = base / "uv" / "uv.toml"
    kept = _without_managed_block(uv_toml.read_text() if uv_toml.exists() else "")
    block = f'# packyard begin\n[[index]]\nurl = "{simple_url}"\ndefault = true\n# packyard end\n'
    uv_toml.parent.mkdir(parents=True, exist_ok=True)
    uv_toml.write_text(kept + block)
    return [pip_conf, uv_toml]


def _without_managed_block(text: str) -> str:
    start, end = text.find("# packyard begin"), text.find("# packyard end")
    if start < 0 or end < 0:
        return text
    return text[:start] + text[end + len("# packyard end\n") :]


# --- users and login --------------------------------------------------------------------------


@click.command()
@click.argument("name")
@click.option("--password", help="Asked for when not given.")
def login(name: str, password: str | None) -> None:
    """Log in as NAME; the token is kept (mode 0600) for this server."""
    password = password or click.prompt("password", hide_input=True)
    with session(save=True) as api:
        token, expiration = api.login(name, password)
        api.state.remember(name, token)
    click.echo(f"logged in as {name}, credentials valid for {expiration / 3600:.2f} hours")


@click.command()
def logoff() -> None:
    """Forget the current login on this server."""
    with session(save=True) as api:
        api.state.forget()
    click.echo("logged off")


@click.command()
@click.argument("name", required=False)
@click.argument("settings", nargs=-1)
@click.option("-c", "--create", is_flag=True, help="Create user NAME (password=... required).")
@click.option("-m", "--modify", is_flag=True, help="Change settings of user NAME.")
@click.option("-l", "--list", "list_users", is_flag=True, help="List users.")
@click.option("--delete", is_flag=True, help="Delete user NAME and their indexes.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def user(
    name: str | None, settings: tuple[str, ...], create: bool, modify: bool, list_users: bool,
    delete: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Create, change, list, show or delete users (`key=value` settings, e.g. email=...)."""
    values = _key_values(settings)
    with session() as api:
        if list_users or not name:
            users = api.result("GET", "")
            _emit(sorted(users), as_json, sorted(users))
            return
        if create:
            if "password" not in values:
                values["password"] = click.prompt(
                    "password", hide_input=True, confirmation_prompt=True
                )
            api.request("PUT", name, values)
            click.echo(f"user created: {name}")
        elif modify:
            api.request("PATCH", name, values)
            click.echo(f"user modified: {name}")
        elif delete:
            if not yes:
                click.confirm(f"delete user {name} and all their indexes?", abort=True)
            api.request("DELETE", name)
            click.echo(f"user deleted: {name}")
        else:
            data = api.result("GET", name)
            _emit(data, as_json, _mapping_lines(data, skip={"indexes"}))


@click.command()
@click.argument("name", required=False)
def passwd(name: str | None) -> None:
    """Change the password of NAME (default: the logged-in user)."""
    with session(save=True) as api:
        target = name or api.state.user
        if not target:
            raise click.ClickException("not logged in: pass a user name or log in first")
        password = click.prompt("new password", hide_input=True, confirmation_prompt=True)
        data = api.request("PATCH", target, {"password": password})
        if target == api.state.user and isinstance(data.get("result"), dict):
            api.state.remember(target, data["result"]["password"])
    click.echo(f"password changed for {target}")


# --- indexes ----------------------------------------------------------------------------------


@click.command()
@click.argument("name", required=False)
@click.argument("settings", nargs=-1)
@click.option("-c", "--create", is_flag=True, help="Create index NAME.")
@click.option("--delete", is_flag=True, help="Delete index NAME.")
@click.option("-l", "--list", "list_indexes", is_flag=True, help="List your indexes.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def index(
    name: str | None, settings: tuple[str, ...], create: bool, delete: bool,
    list_indexes: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Create, change (key=value, key+=value, key-=value), show, list or delete indexes."""
    with session() as api:
        if list_indexes:
            owner = name or api.state.user
            data = api.result("GET", owner)["indexes"]
            _emit(data, as_json, [f"{owner}/{n}" for n in sorted(data)])
            return
        path = _index_name(api, name)
        if create:
            config = api.result("PUT", path, _key_values(settings))
        elif delete:
            if not yes:
                click.confirm(f"delete index {path} and everything in it?", abort=True)
            api.request("DELETE", path)
            click.echo(f"index deleted: {path}")
            return
        elif settings:
            config = api.result("PATCH", path, list(settings))
        else:
            config = api.result("GET", path, no_projects="")
        _emit(config, as_json, [f"{path}:", *_mapping_lines(config)])


def _index_name(api: Api, name: str | None) -> str:
    if not name:
        return api.index_path()
    if "/" in name:
        return name.strip("/")
    if not api.state.user:
        raise click.ClickException("give USER/INDEX, or log in to name your own indexes")
    return f"{api.state.user}/{name}"


def _mapping_lines(data: dict[str, Any], skip: set[str] | None = None) -> list[str]:
    lines = []
    for key in sorted(data):
        if key in (skip or set()):
            continue
        value = data[key]
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        lines.append(f"  {key}={shown}")
    return lines


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

    Files already on the index with the same hash are skipped, so a re-run is cheap.
    """
    targets = _collect(paths or (Path.cwd(),), formats.split(","))
    with session() as api:
        where = api.index_path(index)
        existing = _existing_hashes(api, where, targets)
        todo = [p for p in targets if existing.get(p.name) != sha256_of(p)]
        skipped = len(targets) - len(todo)
        if dry_run:
            for path in todo:
                click.echo(f"would upload {path.name}")
            click.echo(f"{len(todo)} to upload, {skipped} already there (dry run)")
            return
        failed = _upload_all(api, where, todo) if todo else []
    done = len(todo) - len(failed)
    click.echo(f"uploaded {done}, skipped {skipped} (already there), failed {len(failed)}")
    if failed:
        raise SystemExit(1)


def _collect(paths: tuple[Path, ...], formats: list[str]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir() and ((path / "pyproject.toml").exists() or (path / "setup.py").exists()):
            click.echo(f"building {path} ({', '.join(formats)})")
            try:
                found.extend(dists.build(path, formats))
            except (RuntimeError, KeyError) as exc:
                raise click.ClickException(str(exc)) from exc
        else:
            try:
                found.extend(dists.find_distributions([path]))
            except ValueError as exc:
                raise click.ClickException(str(exc)) from exc
    if not found:
        raise click.ClickException("nothing to upload: no .whl, .tar.gz or .zip found")
    return found


def _existing_hashes(api: Api, where: str, targets: list[Path]) -> dict[str, str]:
    """filename -> sha256 of what the index already holds for these projects."""
    known: dict[str, str] = {}
    for project in sorted({dists.project_of(path) for path in targets}):
        try:
            versions = api.result("GET", f"{where}/{project}", ignore_bases="")
        except ClientError as exc:
            if exc.status == 404:
                continue
            raise
        for data in versions.values():
            for link in data.get("+links", []):
                known[link["href"].rsplit("/", 1)[-1]] = link.get("hashes", {}).get("sha256", "")
    return known


def _upload_all(api: Api, where: str, todo: list[Path]) -> list[Path]:
    failed = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("uploading", total=len(todo))
        for path in todo:
            current = progress.add_task(f"  {path.name}", total=1)
            response = api.upload(where, path, dists.upload_fields(path))
            progress.update(current, completed=1)
            if response.status_code != 200:
                failed.append(path)
                reason = f"{response.status_code} {response.reason_phrase}"
                progress.console.print(f"[red]failed[/red] {path.name}: {reason}")
            progress.remove_task(current)
            progress.advance(overall)
    return failed


# --- reading and removing ---------------------------------------------------------------------


@click.command("list")
@click.argument("project", required=False)
@index_option
@json_option
def list_command(project: str | None, index: str | None, as_json: bool) -> None:
    """List the index's projects, or PROJECT's versions and files."""
    with session() as api:
        where = api.index_path(index)
        if not project:
            names = api.result("GET", where).get("projects", [])
            _emit(names, as_json, names)
            return
        versions = api.result("GET", f"{where}/{canonicalize_name(project)}")
    ordered = sorted(versions, key=_version_key, reverse=True)
    if as_json:
        click.echo(json.dumps({v: versions[v] for v in ordered}, indent=2, sort_keys=True))
        return
    table = Table("version", "file", "sha256", "state")
    for version in ordered:
        for link in versions[version].get("+links", []):
            if link.get("rel") == "releasefile":
                state = "yanked" if link.get("yanked") else ""
                sha = link.get("hashes", {}).get("sha256", "")[:16]
                table.add_row(version, link["href"].rsplit("/", 1)[-1], sha, state)
    console.print(table)


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
    with session() as api:
        where = api.index_path(index)
        path = f"{where}/{project}" + (f"/{version}" if version else "")
        if not yes:
            click.confirm(f"remove {path}?", abort=True)
        params = {"force": ""} if force else {}
        data = api.request("DELETE", path, **params)
    click.echo(data.get("message", f"removed {path}"))


@click.command()
@click.argument("packages", nargs=-1, required=True)
@index_option
@click.option("--venv", type=click.Path(path_type=Path), help="Install into this virtualenv.")
@click.option("--uv", "use_uv", is_flag=True, help="Install with uv instead of pip.")
def install(packages: tuple[str, ...], index: str | None, venv: Path | None, use_uv: bool) -> None:
    """Install PACKAGES from the index with pip (or uv)."""
    with session() as api:
        simple = api.url(f"{api.index_path(index)}/+simple/")
    python = str(venv / "bin" / "python") if venv else sys.executable
    if use_uv:
        command = ["uv", "pip", "install", "--python", python, "--index-url", simple, *packages]
    else:
        command = [python, "-m", "pip", "install", "--index-url", simple, *packages]
    click.echo(" ".join(command))
    raise SystemExit(subprocess.call(command))


@click.command()
@click.argument("path")
def getjson(path: str) -> None:
    """Print the JSON the server answers for PATH (relative to the server root)."""
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
    for row in rows:
        click.echo("  ".join(map(str, row)))


def _yank(spec: str, index: str | None, value: Any) -> None:
    project, version = _parse_spec(spec)
    with session() as api:
        path = f"{api.index_path(index)}/{project}" + (f"/{version}" if version else "")
        data = api.request("PATCH", path, {"yanked": value})
    click.echo(data.get("message", "done"))


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
