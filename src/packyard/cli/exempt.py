"""`packyard exempt add | list | remove`: break-glass exemptions past a mirror's cooldown."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from packaging.requirements import InvalidRequirement, Requirement

from packyard.cli.client_common import emit, index_option, json_option, session
from packyard.cli.tokens import parse_duration

HINTS = {
    403: "exemptions are set by the mirror's owner or root (`packyard login`)",
    404: "`packyard exempt list` shows the ids",
}
_DURATION = re.compile(r"^\s*\d+\s*[smhdw]?\s*$")


def _line(item: dict[str, Any]) -> str:
    what = item["project"] + (f"=={item['version']}" if item.get("version") else " (every version)")
    expires = item.get("expires") or "never"
    return f"{item['id']}  {what:<32} expires {expires}  by {item['created_by']}: {item['reason']}"


def _expires(text: str | None) -> str | None:
    """A lifetime (`2d`, `12h`) from now, or an ISO date or time the server reads."""
    if not text:
        return None
    if _DURATION.match(text):
        moment = datetime.now(UTC) + timedelta(seconds=parse_duration(text))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


def _target(spec: str) -> tuple[str, str | None]:
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise click.BadParameter(f"{spec!r}: use NAME or NAME==VERSION") from exc
    pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
    if requirement.specifier and not pins:
        raise click.BadParameter(f"{spec!r}: use NAME or NAME==VERSION")
    return requirement.name, pins[0] if pins else None


@click.group()
def exempt() -> None:
    """Allow a project or one version past a mirror's cooldown ("break glass")."""


@exempt.command()
@click.argument("spec")
@click.option("--reason", required=True, help="Why (who asked; the ticket): kept with it.")
@click.option("--expires", help="A lifetime (2d, 12h) or an ISO date/time in UTC; default never.")
@index_option
@json_option
def add(spec: str, reason: str, expires: str | None, index: str | None, as_json: bool) -> None:
    """Exempt SPEC (NAME or NAME==VERSION) on the mirror index."""
    project, version = _target(spec)
    body = {"project": project, "version": version, "reason": reason, "expires": _expires(expires)}
    with session(hints=HINTS) as api:
        made = api.result("POST", f"{api.index_path(index)}/+exemptions", body)
    emit(made, as_json, [f"exemption added: {_line(made)}"])


@exempt.command("list")
@index_option
@json_option
def list_exemptions(index: str | None, as_json: bool) -> None:
    """List the mirror index's exemptions (expired ones too)."""
    with session(hints=HINTS) as api:
        found = api.result("GET", f"{api.index_path(index)}/+exemptions")
    emit(found, as_json, [_line(item) for item in found] or ["no exemptions"])


@exempt.command()
@click.argument("exemption_id", type=int)
@index_option
def remove(exemption_id: int, index: str | None) -> None:
    """Remove exemption EXEMPTION_ID: its versions are held again."""
    with session(hints=HINTS) as api:
        api.request("DELETE", f"{api.index_path(index)}/+exemptions/{exemption_id}")
    click.echo(f"exemption {exemption_id} removed")
