"""`packyard project-status`: mark a hosted project archived, deprecated or quarantined
(PEP 792), or active again; the index's owner or root."""

from __future__ import annotations

import click

from packyard.cli.client_common import session

STATUSES = ("active", "deprecated", "archived", "quarantined")
HINTS = {
    403: "only the index's owner or root sets a project's status (a mirror passes its upstream's)",
    404: "`packyard list` shows the projects on the index",
}


@click.command("project-status")
@click.argument("target", metavar="USER/INDEX/PROJECT")
@click.argument("status", type=click.Choice(STATUSES))
@click.option("--reason", default="", help="Why (shown to pip and uv users and on the web page).")
def project_status(target: str, status: str, reason: str) -> None:
    """Set the PEP 792 status of a hosted project: quarantined (no files listed or served,
    no uploads), archived (no uploads), deprecated (just marked), or active."""
    parts = target.strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise click.BadParameter(f"{target!r}: use USER/INDEX/PROJECT")
    with session(hints=HINTS) as api:
        data = api.request("PATCH", "/".join(parts), {"status": status, "reason": reason})
    click.echo(data.get("message", "done"))
