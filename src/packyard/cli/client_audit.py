"""`packyard audit`: read the server's audit trail (root; an index owner for their index)."""

from __future__ import annotations

import json
from typing import Any

import click

from packyard.cli.client_common import emit, json_option, session

HINTS = {
    403: "only root reads the whole log; an index owner reads their index's: --index USER/INDEX",
}


@click.command()
@click.option("--user", help="Only changes made by this user (or e.g. '(server)').")
@click.option("--index", help="Only changes to this index (USER/INDEX); its owner may read these.")
@click.option("--since", help="From this time on: ISO 8601 (2024-05-01, 2024-05-01T12:00Z; UTC).")
@click.option("--until", help="Before this time (as --since).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@json_option
def audit(
    user: str | None,
    index: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    oldest_first: bool,
    as_json: bool,
) -> None:
    """Show who changed what on the server, when and from where (the audit log)."""
    params = {"user": user, "index": index, "since": since, "until": until}
    wanted = {key: value for key, value in params.items() if value}
    wanted |= {"limit": str(limit), "order": "oldest" if oldest_first else "newest"}
    with session(hints=HINTS) as api:
        entries = api.result("GET", "+audit", **wanted) or []
    emit(entries, as_json, [_line(entry) for entry in entries])


def _line(entry: dict[str, Any]) -> str:
    who = entry.get("user", "")
    if entry.get("token"):
        who += f" (token {entry['token']})"
    where = entry.get("address") or "-"
    target = " ".join(
        str(entry[key]) for key in ("index", "project", "version", "filename") if entry.get(key)
    )
    detail = json.dumps(entry["detail"], sort_keys=True) if entry.get("detail") else ""
    fields = [entry.get("time", ""), who, where, entry.get("action", ""), target, detail]
    return "  ".join(field for field in fields if field)
