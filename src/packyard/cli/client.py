"""Client verbs, devpi's names: use, login, logoff, user, passwd, index (here), and upload,
list, remove, install, getjson, push, yank, unyank (in client_files). HTTP only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from packyard.cli import client_audit, client_files, client_status
from packyard.cli.client_common import LOGIN_HINT, emit, json_option, session
from packyard.client import installers
from packyard.client.api import Api, ClientError
from packyard.client.state import ClientState


def _key_values(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: use key=value")
        values[key] = value
    return values


def register(main: click.Group) -> None:
    commands = (use, login, logoff, user, passwd, index, client_audit.audit,
                client_status.project_status)  # fmt: skip
    for command in (*commands, *client_files.COMMANDS):
        main.add_command(command)


# --- server and index -------------------------------------------------------------------------


@click.command()
@click.argument("target", required=False)
@click.option("-l", "--list", "list_indexes", is_flag=True, help="List all indexes.")
@click.option(
    "--set-cfg", is_flag=True,
    help="Point pip's and uv's user config (under $XDG_CONFIG_HOME) at the index.",
)  # fmt: skip
@json_option
def use(target: str | None, list_indexes: bool, set_cfg: bool, as_json: bool) -> None:
    """Select a server (URL) and/or an index (USER/INDEX or a full index URL).

    Without arguments, show the current server, index and user.
    """
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
            emit(dict(rows), as_json, [_index_line(name, config) for name, config in rows])
            return
        if set_cfg:
            simple = f"{state.url}/{api.index_path()}/+simple/"
            home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
            for written in installers.write_config(simple, home):
                click.echo(f"wrote {written}", err=as_json)
        current = {
            "url": state.url,
            "index": state.index,
            "user": state.user or None,
            "login_expired": state.login_expired(),
        }
        emit(current, as_json, _current_lines(state))


def _select(api: Api, target: str) -> None:
    state = api.state
    if target.startswith(("http://", "https://")):
        discovery = api.result("GET", target.rstrip("/") + "/+api")
        url = discovery["login"].rsplit("/+login", 1)[0]
        if url != state.url and state.user not in state.tokens.get(url, {}):
            state.user = ""  # a login belongs to one server
        state.url = url
        index_url = discovery.get("index", "")
        state.index = index_url[len(url) :].strip("/") if index_url else ""
        return
    api.result("GET", f"{api.index_path(target)}/+api")
    state.index = target.strip("/")


def _current_lines(state: ClientState) -> list[str]:
    user = state.user or "(not logged in)"
    if state.login_expired():
        user += f" (login expired: `packyard login {state.user}` again)"
    return [
        f"server: {state.url or '(none)'}",
        f"index:  {state.index or '(none)'}",
        f"user:   {user}",
    ]


def _index_line(name: str, config: dict[str, Any]) -> str:
    bases = ",".join(config.get("bases", []))
    return f"{name:<24} bases={bases:<20} volatile={config.get('volatile')}"


# --- users and login --------------------------------------------------------------------------


@click.command()
@click.argument("name")
@click.option("--password", help="Asked for when not given.")
def login(name: str, password: str | None) -> None:
    """Log in as NAME; the token is kept (mode 0600) for this server."""
    password = password or click.prompt("password", hide_input=True)
    hints = {401: "check the user name and the password"}
    with session(save=True, hints=hints, suggest_login=False) as api:
        token, expiration = api.login(name, password)
        api.state.remember(name, token, valid_for=expiration)
    click.echo(f"logged in as {name}, credentials valid for {expiration / 3600:.2f} hours")


@click.command()
def logoff() -> None:
    """Log out: revoke the login's tokens on the server, and forget it here."""
    revoked = ""
    with session(save=True) as api:
        was = api.state.user
        if api.state.saved_token():
            try:
                api.logout()
                revoked = " (its tokens are revoked on the server)"
            except ClientError as exc:  # offline, or the token is dead already: forget it anyway
                click.echo(f"note: the server did not revoke the login: {exc.message}", err=True)
        api.state.forget()
    click.echo(f"logged off {was}{revoked}" if was else "not logged in")


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
    with session(hints={404: "`packyard user -l` lists users"}) as api:
        if list_users or not name:
            users = api.result("GET", "")
            emit(sorted(users), as_json, sorted(users))
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
            emit(data, as_json, _mapping_lines(data, skip={"indexes"}))


@click.command()
@click.argument("name", required=False)
def passwd(name: str | None) -> None:
    """Change the password of NAME (default: the logged-in user)."""
    with session(save=True) as api:
        target = name or api.state.user
        if not target:
            raise click.ClickException(f"not logged in: pass a user name, or {LOGIN_HINT}")
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
@click.option("-l", "--list", "list_indexes", is_flag=True, help="List your (or NAME's) indexes.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def index(
    name: str | None, settings: tuple[str, ...], create: bool, delete: bool,
    list_indexes: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Create, change (key=value, key+=value, key-=value), show, list or delete indexes.

    NAME is USER/INDEX, or INDEX of the logged-in user; without NAME, the current index.
    """
    with session() as api:
        if list_indexes:
            owner = name or api.state.user
            if not owner:
                raise click.ClickException(f"whose indexes? give a user name, or {LOGIN_HINT}")
            data = api.result("GET", owner)["indexes"]
            full = {f"{owner}/{n}": data[n] for n in sorted(data)}
            emit(full, as_json, list(full))
            return
        path = _index_name(api, name)
        done = ""
        if create:
            config = api.result("PUT", path, _key_values(settings))
            done = f"index created: {path}"
        elif delete:
            if not yes:
                click.confirm(f"delete index {path} and everything in it?", abort=True)
            api.request("DELETE", path)
            click.echo(f"index deleted: {path}")
            return
        elif settings:
            config = api.result("PATCH", path, list(settings))
            done = f"index modified: {path}"
        else:
            config = api.result("GET", path, no_projects="")
        emit(config, as_json, [done or f"{path}:", *_mapping_lines(config)])


def _index_name(api: Api, name: str | None) -> str:
    if not name:
        return api.index_path()
    if "/" in name:
        return name.strip("/")
    if not api.state.user:
        raise click.ClickException(f"give USER/INDEX, or {LOGIN_HINT} to name your own indexes")
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
