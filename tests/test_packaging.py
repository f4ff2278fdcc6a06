"""What a wheel of packyard must carry to work when installed (not from a source checkout)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_template_and_static_file_is_package_data() -> None:
    """A wheel install must serve the UI: package-data globs cover every template."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["packyard"]
    package = REPO / "src" / "packyard"
    web = package / "web"
    for path in [*web.joinpath("templates").rglob("*.html"), *web.joinpath("static").rglob("*")]:
        relative = path.relative_to(package).as_posix()
        matched = any(
            fnmatch.fnmatch(relative, p) and relative.count("/") == p.count("/") for p in patterns
        )
        assert matched, f"{relative} is left out of the wheel"
