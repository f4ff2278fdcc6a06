"""Install targets for closed-network bundles: a platform tag plus a CPython version.

`win_amd64-cp313` means "CPython 3.13 on 64-bit Windows". A target knows how to ask pip
(platform tags) and uv (platform triples, so that markers such as sys_platform are evaluated
for the target and not for the machine making the bundle) for that environment.
"""

from __future__ import annotations

import dataclasses
import re

from packyard.errors import InvalidInput

_PYTHON = re.compile(r"^cp(\d)(\d+)$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(x86_64|aarch64)$")
_LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(x86_64|arm64|universal2)$")
_SIMPLE = {
    "win_amd64": "x86_64-pc-windows-msvc",
    "win32": "i686-pc-windows-msvc",
    "win_arm64": "aarch64-pc-windows-msvc",
    "linux_x86_64": "x86_64-unknown-linux-gnu",
    "linux_aarch64": "aarch64-unknown-linux-gnu",
}


@dataclasses.dataclass(frozen=True)
class Target:
    platform: str  # a wheel platform tag, e.g. manylinux2014_x86_64
    python: str  # e.g. cp311

    @property
    def name(self) -> str:
        return f"{self.platform}-{self.python}"

    @property
    def python_version(self) -> str:
        match = _PYTHON.match(self.python)
        assert match is not None
        return f"{match[1]}.{match[2]}"

    def pip_args(self) -> list[str]:
        """pip's options for choosing wheels of this target (needs --only-binary=:all:)."""
        return [
            "--platform", self.platform, "--python-version", self.python_version,
            "--implementation", "cp", "--abi", self.python, "--abi", "abi3", "--abi", "none",
        ]  # fmt: skip

    def uv_platform(self) -> str:
        """uv's --python-platform for this target."""
        if self.platform in _SIMPLE:
            return _SIMPLE[self.platform]
        legacy, _, arch = self.platform.partition("_")
        if legacy in _LEGACY_MANYLINUX:
            major, minor = _LEGACY_MANYLINUX[legacy]
            return f"{arch}-manylinux_{major}_{minor}"
        if match := _MANYLINUX.match(self.platform):
            return f"{match[3]}-manylinux_{match[1]}_{match[2]}"
        if self.platform.startswith("musllinux_"):
            return f"{self.platform.rsplit('_', 1)[-1]}-unknown-linux-musl"
        if match := _MACOS.match(self.platform):
            return "aarch64-apple-darwin" if match[3] == "arm64" else "x86_64-apple-darwin"
        raise InvalidInput(f"platform {self.platform!r} is not one packyard can target")

    def uv_environment(self) -> dict[str, str]:
        """Extra environment for uv (the macOS version a macosx tag names)."""
        if match := _MACOS.match(self.platform):
            return {"MACOSX_DEPLOYMENT_TARGET": f"{match[1]}.{match[2]}"}
        return {}


def parse_target(text: str) -> Target:
    """'win_amd64-cp313' -> Target; a clear error for anything else."""
    platform, sep, python = text.strip().rpartition("-")
    if not sep or not platform or not _PYTHON.match(python):
        raise InvalidInput(
            f"target {text!r} is not PLATFORM-PYTHON, e.g. win_amd64-cp313 or"
            " manylinux2014_x86_64-cp311"
        )
    target = Target(platform, python)
    target.uv_platform()
    return target
