"""What every client verb shares: a session over the saved state, errors with hints, output."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

from packyard.client.api import Api, ClientError
from packyard.client.errors import StateError
from packyard.client.state import ClientState

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
index_option = click.option("--index", help="USER/INDEX instead of the current one.")

LOGIN_HINT = "log in with `packyard login USER` (in CI: set PACKYARD_USER and PACKYARD_PASSWORD)"
DEFAULT_HINTS = {
    401: LOGIN_HINT,
    403: "your user may not do this here; ask the index owner (or root)",
    404: "check the name; `packyard use -l` lists indexes",
}


@contextmanager
def session(
    save: bool = False, hints: Mapping[int, str] | None = None, suggest_login: bool = True
) -> Iterator[Api]:
    """An Api over the saved client state; ClientError becomes a readable CLI error, with
    `hints` (status -> what to do) and, when not logged in, the advice to log in."""
    try:
        state = ClientState.load()
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    api = Api(state)
    try:
        yield api
        if save:
            state.save()
    except ClientError as exc:
        if exc.status in (401, 403) and not state.has_credentials() and suggest_login:
            hints = {exc.status: not_logged_in(state)}
        raise click.ClickException(with_hint(exc, hints)) from exc
    finally:
        api.close()


def with_hint(exc: ClientError, hints: Mapping[int, str] | None = None) -> str:
    """The error and what to do about it: the error's own hint, else one for its status."""
    hint = exc.hint or {**DEFAULT_HINTS, **(hints or {})}.get(exc.status, "")
    return f"{exc.message}\n  hint: {hint}" if hint else exc.message


def emit(data: Any, as_json: bool, lines: Iterable[str]) -> None:
    """JSON for scripts, or the given lines for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


def not_logged_in(state: ClientState) -> str:
    """Why there are no credentials, and what to do."""
    if state.login_expired():
        return f"your login as {state.user} has expired: `packyard login {state.user}` again"
    return f"you are not logged in: {LOGIN_HINT}"
