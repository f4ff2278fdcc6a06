"""The index the machine's pip is configured with: where `root/pypi` mirrors from, and where
`packyard bundle create` resolves when no packyard server is selected.

Shared by the server and the client (neither imports the other), so it stands beside
config.py, outside both; it asks pip itself, so pip.conf files and PIP_INDEX_URL count.
"""

from __future__ import annotations

import subprocess
import sys


def pip_index_url() -> str:
    """The index the machine's pip is configured with, else pip's own PyPI default."""
    try:
        output = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(".index-url"):
            return value.strip().strip("'\"")
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)
