"""docs/cli.md holds every command's `--help`; these fail when the two drift apart."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from packyard.cli.docs import REGENERATE, WIDTH, render
from packyard.cli.main import main

CLI_MD = Path(__file__).parents[1] / "docs" / "cli.md"


def test_docs_cli_md_is_what_the_commands_print() -> None:
    expected, actual = render(), CLI_MD.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/cli.md (committed)",
                "docs/cli.md (from the commands)",
            )
        )
        pytest.fail(f"docs/cli.md is out of date; regenerate it with `{REGENERATE}`\n{diff}")


def documented_sections() -> dict[str, str]:
    text = CLI_MD.read_text()
    found = re.findall(r"^## `([^`]+)`\n\n```\n(.*?)\n```$", text, flags=re.MULTILINE | re.DOTALL)
    return dict(found)


def test_each_section_is_the_real_help_of_its_command() -> None:
    """What `packyard ... --help` prints, section by section: the docs show the real thing."""
    sections = documented_sections()
    assert "packyard upload" in sections and "packyard use" in sections
    runner = CliRunner()
    for path, text in sections.items():
        args = [*path.split()[1:], "--help"]
        result = runner.invoke(
            main, args, prog_name="packyard", terminal_width=WIDTH, max_content_width=WIDTH
        )
        assert result.exit_code == 0, (path, result.output)
        assert result.output.rstrip("\n") == text, (
            f"`{path} --help` differs from docs/cli.md; regenerate it with `{REGENERATE}`"
        )
