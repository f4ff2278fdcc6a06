"""pip and uv: the commands that install from an index, and the config that points them at it."""

from __future__ import annotations

import configparser
import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from packyard.client.errors import InstallerError

__all__ = ["InstallerError"]


def needs_trusted_host(url: str) -> str:
    """The host pip must be told to trust: plain http to anything but loopback, else ''."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or host == "localhost":
        return ""
    try:
        return "" if ipaddress.ip_address(host).is_loopback else host
    except ValueError:
        return host


def find_uv() -> str:
    """The uv beside this Python (a venv that has packyard and uv), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if not found:
        raise InstallerError("uv is not installed: `pip install uv`, or leave out --uv")
    return found


def ensure_venv(venv: Path, use_uv: bool) -> tuple[Path, bool]:
    """The venv's python, creating the venv first if the directory is missing or empty."""
    python = venv / "bin" / "python"
    if python.exists():
        return python, False
    if venv.exists() and any(venv.iterdir()):
        raise InstallerError(
            f"{venv} is not a virtualenv (no bin/python): give a new directory or a virtualenv"
        )
    command = [find_uv(), "venv", "-q", str(venv)] if use_uv else [sys.executable, "-m", "venv"]
    if not use_uv:
        command.append(str(venv))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InstallerError(f"creating {venv} failed:\n{result.stdout}{result.stderr}")
    return python, True


def install_command(
    simple_url: str, requirements: Sequence[str], python: Path | None, use_uv: bool
) -> list[str]:
    """`pip install` (or `uv pip install`) of `requirements` from the index at `simple_url`."""
    if use_uv:
        target = str(python or sys.executable)
        return [find_uv(), "pip", "install", "--python", target, "--index-url", simple_url,
                *requirements]  # fmt: skip
    if python is None:
        pip = [sys.executable, "-m", "pip"]
    elif (python.parent / "pip").exists():
        pip = [str(python), "-m", "pip"]
    else:  # a venv without pip (uv venv, --without-pip): this Python's pip installs into it
        pip = [sys.executable, "-m", "pip", "--python", str(python)]
    trusted = needs_trusted_host(simple_url)
    extra = ["--trusted-host", trusted] if trusted else []
    return [*pip, "install", "--index-url", simple_url, *extra, *requirements]


def write_config(simple_url: str, config_home: Path) -> list[Path]:
    """Make plain `pip install` and `uv` use the index: user-level pip.conf and uv.toml."""
    pip_conf = config_home / "pip" / "pip.conf"
    parser = configparser.ConfigParser()
    parser.read(pip_conf)
    if not parser.has_section("global"):
        parser.add_section("global")
    parser.set("global", "index-url", simple_url)
    trusted = needs_trusted_host(simple_url)
    if trusted:
        parser.set("global", "trusted-host", trusted)
    pip_conf.parent.mkdir(parents=True, exist_ok=True)
    with pip_conf.open("w") as handle:
        parser.write(handle)
    uv_toml = config_home / "uv" / "uv.toml"
    kept = _without_managed_block(uv_toml.read_text() if uv_toml.exists() else "")
    block = f'# packyard begin\n[[index]]\nurl = "{simple_url}"\ndefault = true\n# packyard end\n'
    uv_toml.parent.mkdir(parents=True, exist_ok=True)
    uv_toml.write_text(kept + block)
    return [pip_conf, uv_toml]


def _without_managed_block(text: str) -> str:
    start, end = text.find("# packyard begin"), text.find("# packyard end")
    if start < 0 or end < 0:
        return text
    return text[:start] + text[end + len("# packyard end\n") :]
