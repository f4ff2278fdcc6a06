"""Uploading distributions: what an index already holds, then the rest, one file at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packyard.client import dists
from packyard.client.api import Api, ClientError, error_message, sha256_of

# Failures that would repeat for every other file of the run: stop at the first one.
_FATAL_STATUSES = {401, 403, 404}


@dataclass(frozen=True)
class Outcome:
    """What happened to one file; `error` is empty when it was uploaded."""

    path: Path
    error: str = ""
    note: str = ""  # what the server said about a success, e.g. which file it replaced

    @property
    def ok(self) -> bool:
        return not self.error


def partition(api: Api, where: str, targets: list[Path]) -> tuple[list[Path], list[Path]]:
    """(to upload, already there with the same sha256)."""
    known = api.existing_hashes(where, (dists.project_of(path) for path in targets))
    todo: list[Path] = []
    there: list[Path] = []
    for path in targets:
        (there if known.get(path.name) == sha256_of(path) else todo).append(path)
    return todo, there


def upload_all(
    api: Api, where: str, todo: list[Path], on_outcome: Callable[[Outcome], None]
) -> list[Outcome]:
    """Upload each file; after a failure that would repeat (auth, missing index,
    unreachable server) the remaining files are reported as not attempted."""
    outcomes: list[Outcome] = []
    stopped = ""
    for path in todo:
        if stopped:
            outcome = Outcome(path, f"not attempted after {stopped}")
        else:
            outcome = _upload_one(api, where, path)
            if outcome.error and _is_fatal(outcome.error):
                stopped = outcome.error.split(":", 1)[0]
        outcomes.append(outcome)
        on_outcome(outcome)
    return outcomes


def _upload_one(api: Api, where: str, path: Path) -> Outcome:
    try:
        fields = dists.upload_fields(path)
    except ValueError as exc:
        return Outcome(path, f"unreadable metadata: {exc}")
    try:
        response = api.upload(where, path, fields)
    except ClientError as exc:
        return Outcome(path, f"unreachable: {exc.message}")
    if response.status_code == 200:
        return Outcome(path, note=_server_note(response.reason_phrase))
    return Outcome(path, error_message(response))


def _is_fatal(error: str) -> bool:
    status = error.split(" ", 1)[0]
    return error.startswith("unreachable") or (status.isdigit() and int(status) in _FATAL_STATUSES)


def _server_note(reason: str) -> str:
    """A success's reason phrase, when it says more than "OK" (a replaced file, say)."""
    return "" if reason.strip().upper() in ("", "OK") else reason.strip()
