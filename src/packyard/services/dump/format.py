"""What a dump's writer and reader share: its version, the user keys it carries, the summary
both report and the error naming damaged files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from packyard.errors import Damaged

DUMP_VERSION = "2"
USER_KEYS = ("email", "title", "description", "custom_data")
Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclasses.dataclass
class Summary:
    users: int = 0
    indexes: int = 0
    projects: int = 0
    files: int = 0
    bytes: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)  # damaged, left out

    def __str__(self) -> str:
        text = (
            f"{self.users} users, {self.indexes} indexes, {self.projects} projects,"
            f" {self.files} files, {self.bytes} bytes"
        )
        return text + (f" ({len(self.skipped)} damaged files skipped)" if self.skipped else "")


def damaged_error(names: list[str], what: str) -> Damaged:
    listing = "".join(f"\n  {name}" for name in names)
    return Damaged(
        f"{len(names)} damaged or missing file(s), so nothing was {what}:{listing}\n"
        f"Pass --skip-damaged to go on without them."
    )


def no_progress(_what: str, _done: int, _total: int) -> None:
    return None
