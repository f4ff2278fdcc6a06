"""`packyard token create | list | revoke`: scoped API tokens of the logged-in user."""

from __future__ import annotations

import re
from typing import Any

import click

from packyard.cli.client_common import LOGIN_HINT, emit, json_option, session
from packyard.client.api import Api

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TOKEN_HINTS = {403: "tokens are managed with your password login (`packyard login`), not a token"}


def parse_duration(text: str) -> int:
    """'30d', '12h', '90m', '45s', '2w' or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r}: use a positive number with s, m, h, d or w (30d)")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _user(api: Api, user: str | None) -> str:
    chosen = user or api.state.user
    if not chosen:
        raise click.ClickException(f"not logged in: {LOGIN_HINT}")
    return chosen


def _line(token: dict[str, Any]) -> str:
    scope = f"{','.join(token['actions'])} on {','.join(token['indexes'])}"
    expires = token.get("expires") or "never"
    used = token.get("last_used") or "never"
    text = f"{token['id']}  {scope:<32} expires {expires}  last used {used}"
    return f"{text}  {token['description']}" if token.get("description") else text


@click.group()
def token() -> None:
    """Scoped API tokens, for twine, uv publish, pip and CI (user __token__)."""


@token.command()
@click.option(
    "--index", "indexes", multiple=True,
    help="USER/INDEX the token works on (repeat for more; '*': all). Default: the current index.",
)  # fmt: skip
@click.option(
    "--actions", default="read,upload", show_default=True,
    help="Comma-separated, of read, upload and admin (deletes, yanks, index settings).",
)  # fmt: skip
@click.option("--expires", help="Lifetime, e.g. 30d, 12h, 90m (default: never expires).")
@click.option("--description", default="", help="What the token is for (shown in lists).")
@json_option
def create(
    indexes: tuple[str, ...], actions: str, expires: str | None, description: str, as_json: bool
) -> None:
    """Create a token; its text is printed once (the server keeps only its hash)."""
    body: dict[str, Any] = {
        "actions": [action.strip() for action in actions.split(",") if action.strip()],
        "description": description,
        "expires_in": parse_duration(expires) if expires else None,
    }
    with session(hints=TOKEN_HINTS) as api:
        owner = _user(api, None)
        body["indexes"] = list(indexes) or [api.index_path()]
        made = api.result("POST", f"{owner}/+tokens", body)
    emit(made, as_json, [
        f"token {made['id']} created: {_line(made)}",
        f"  {made['token']}",
        "shown only now: store it safely. Use it as the password of user __token__, e.g.",
        "  twine upload -u __token__ -p TOKEN ...   or   uv publish --token TOKEN ...",
    ])  # fmt: skip


@token.command("list")
@click.option("--user", help="Whose tokens (root may list anyone's). Default: yours.")
@json_option
def list_tokens(user: str | None, as_json: bool) -> None:
    """List tokens (never their text)."""
    with session(hints=TOKEN_HINTS) as api:
        tokens = api.result("GET", f"{_user(api, user)}/+tokens")
    emit(tokens, as_json, [_line(t) for t in tokens] or ["no tokens"])


@token.command()
@click.argument("token_id")
@click.option("--user", help="Whose token (root may revoke anyone's). Default: yours.")
def revoke(token_id: str, user: str | None) -> None:
    """Revoke token TOKEN_ID: it stops working at once."""
    with session(hints=TOKEN_HINTS | {404: "`packyard token list` shows the ids"}) as api:
        owner = _user(api, user)
        api.request("DELETE", f"{owner}/+tokens/{token_id}")
    click.echo(f"token {token_id} of {owner} revoked")
