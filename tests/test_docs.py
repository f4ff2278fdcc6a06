"""Documentation that must not drift from the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from packyard.config import Settings

DOCS = Path(__file__).parents[1] / "docs"


def test_every_setting_is_documented_and_nothing_else() -> None:
    text = (DOCS / "settings.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert documented == fields, (
        f"docs/settings.md is out of date: undocumented {sorted(fields - documented)},"
        f" no longer settings {sorted(documented - fields)}"
    )


def test_documented_defaults_match_the_code() -> None:
    text = (DOCS / "settings.md").read_text()
    for field in dataclasses.fields(Settings):
        row = re.search(rf"^\| `{field.name}` \| ([^|]+) \|", text, flags=re.MULTILINE)
        assert row, field.name
        default = getattr(Settings, field.name)
        if isinstance(default, bool):
            assert row[1].strip() == f"`{str(default).lower()}`", field.name
        elif isinstance(default, int):
            assert row[1].strip() == f"`{default}`", field.name


def test_security_limits_name_real_settings() -> None:
    """docs/security.md's table of limits names settings that exist (and the key ones)."""
    text = (DOCS / "security.md").read_text()
    named = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.MULTILINE))
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert named <= fields, f"not settings: {sorted(named - fields)}"
    assert {"max_body_size", "max_header_size", "outbound_allowed_networks"} <= named
