"""Install targets for closed-network bundles: a platform tag plus a CPython version.

`win_amd64-cp313` means "CPython 3.13 on 64-bit Windows". A platform is written the way wheel
tags write it, in any spelling users meet: legacy `manylinux2014_x86_64`, PEP 600
`manylinux_2_17_x86_64`, PEP 656 `musllinux_1_2_x86_64`, `macosx_11_0_arm64`, `win_amd64`, ...

A target knows every wheel tag it can install (`tags()`: PEP 600/656 say which older glibc or
musl builds a Linux runs, `packaging.tags` builds the rest), and how to hand that set to the
resolvers: pip gets every compatible platform (`--platform` repeated), uv gets the platform
triple whose semantics are the same or narrower (so environment markers such as sys_platform
are evaluated for the target and not for the machine making the bundle).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms

from packyard.errors import InvalidInput

_PYTHON = re.compile(r"^cp(\d)(\d+)$")
_LINUX_ARCHS = "x86_64|aarch64"  # what uv can target on Linux
_MANYLINUX = re.compile(rf"^manylinux_2_(\d+)_({_LINUX_ARCHS})$")
_LEGACY_MANYLINUX = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}  # glibc 2.x
_LEGACY_OF = {minor: legacy for legacy, minor in _LEGACY_MANYLINUX.items()}
_LEGACY = re.compile(rf"^({'|'.join(_LEGACY_MANYLINUX)})_({_LINUX_ARCHS})$")
_MUSLLINUX = re.compile(rf"^musllinux_1_(\d+)_({_LINUX_ARCHS})$")
_MACOS = re.compile(r"^macosx_(\d+)_(\d+)_(x86_64|arm64|universal2)$")
_SIMPLE = {
    "win_amd64": "x86_64-pc-windows-msvc",
    "win32": "i686-pc-windows-msvc",
    "win_arm64": "aarch64-pc-windows-msvc",
    "linux_x86_64": "x86_64-unknown-linux-gnu",
    "linux_aarch64": "aarch64-unknown-linux-gnu",
}
# The glibc 2.x minors uv's --python-platform offers as `ARCH-manylinux_2_N`.
_UV_GLIBC_MINORS = (17, 28, *range(31, 41))
# The oldest glibc a manylinux tag exists for (packaging's rule): 2.5 on x86, 2.17 elsewhere.
_OLDEST_GLIBC_MINOR = {"x86_64": 5, "aarch64": 17}

ACCEPTED_FORMS = (
    "PLATFORM-PYTHON, where PYTHON is cpXY (e.g. cp311) and PLATFORM is one of: "
    "win_amd64, win32, win_arm64; manylinux_2_N_ARCH (PEP 600, e.g. manylinux_2_17_x86_64); "
    "manylinux2014_ARCH, manylinux2010_ARCH, manylinux1_ARCH; musllinux_1_N_ARCH (e.g. "
    "musllinux_1_2_x86_64); linux_ARCH; macosx_X_Y_MACARCH (e.g. macosx_11_0_arm64). "
    "ARCH is x86_64 or aarch64, MACARCH x86_64, arm64 or universal2"
)


@dataclasses.dataclass(frozen=True)
class Target:
    platform: str  # a wheel platform tag as the user wrote it, e.g. manylinux2014_x86_64
    python: str  # e.g. cp311

    @property
    def name(self) -> str:
        return f"{self.platform}-{self.python}"

    @property
    def python_version(self) -> str:
        major, minor = self._version()
        return f"{major}.{minor}"

    def _version(self) -> tuple[int, int]:
        match = _PYTHON.match(self.python)
        assert match is not None
        return int(match[1]), int(match[2])

    def platform_tags(self) -> list[str]:
        """Every platform tag a wheel may carry to install on this target, best first."""
        if self.platform in _SIMPLE:
            return [self.platform]
        if match := _MACOS.match(self.platform):
            return list(mac_platforms((int(match[1]), int(match[2])), match[3]))
        if match := _MUSLLINUX.match(self.platform):  # PEP 656: musl 1.x runs 1.0 to 1.x
            return [f"musllinux_1_{minor}_{match[2]}" for minor in range(int(match[1]), -1, -1)]
        glibc_minor, arch = self._glibc()
        return _manylinux_platforms(glibc_minor, arch)

    def _glibc(self) -> tuple[int, str]:
        """(glibc 2.x minor, arch) of a manylinux platform, in either spelling."""
        if match := _LEGACY.match(self.platform):
            return _LEGACY_MANYLINUX[match[1]], match[2]
        if match := _MANYLINUX.match(self.platform):
            return int(match[1]), match[2]
        raise InvalidInput(f"platform {self.platform!r} is not one packyard can target")

    def tags(self) -> list[Tag]:
        """Every wheel tag this target installs, best first (what pip computes for it)."""
        version, platforms = self._version(), self.platform_tags()
        return [
            *cpython_tags(version, [self.python], platforms),
            *compatible_tags(version, self.python, platforms),
        ]

    def pip_args(self) -> list[str]:
        """pip's options for choosing wheels of this target (needs --only-binary=:all:): all
        of the target's platforms and ABIs, from which pip computes the same tag set."""
        tags = self.tags()
        platforms = _unique(tag.platform for tag in tags if tag.platform != "any")
        abis = _unique(tag.abi for tag in tags)
        return [
            *[arg for platform in platforms for arg in ("--platform", platform)],
            "--python-version", self.python_version, "--implementation", "cp",
            *[arg for abi in abis for arg in ("--abi", abi)],
        ]  # fmt: skip

    def uv_platform(self) -> str:
        """uv's --python-platform for this target."""
        if self.platform in _SIMPLE:
            return _SIMPLE[self.platform]
        if match := _MACOS.match(self.platform):
            return "aarch64-apple-darwin" if match[3] == "arm64" else "x86_64-apple-darwin"
        if match := _MUSLLINUX.match(self.platform):
            return f"{match[2]}-unknown-linux-musl"
        glibc_minor, arch = self._glibc()
        # The newest glibc uv knows that the target has; below uv's oldest (2.17), its oldest:
        # pip's exact tag set then refuses a file the target could not install.
        known = [minor for minor in _UV_GLIBC_MINORS if minor <= glibc_minor]
        return f"{arch}-manylinux_2_{max(known, default=_UV_GLIBC_MINORS[0])}"

    def uv_environment(self) -> dict[str, str]:
        """Extra environment for uv (the macOS version a macosx tag names)."""
        if match := _MACOS.match(self.platform):
            return {"MACOSX_DEPLOYMENT_TARGET": f"{match[1]}.{match[2]}"}
        return {}


def _manylinux_platforms(glibc_minor: int, arch: str) -> list[str]:
    """PEP 600: a glibc 2.N system runs manylinux_2_M for every M <= N (down to the oldest
    tag of the arch); the legacy aliases come right after the tag they stand for."""
    platforms = []
    for minor in range(glibc_minor, _OLDEST_GLIBC_MINOR[arch] - 1, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY_OF:
            platforms.append(f"{_LEGACY_OF[minor]}_{arch}")
    return platforms


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_target(text: str) -> Target:
    """'win_amd64-cp313' -> Target; for anything else, an error listing the accepted forms."""
    platform, sep, python = text.strip().lower().rpartition("-")
    if not sep or not platform or not _PYTHON.match(python):
        raise InvalidInput(f"target {text!r} is not {ACCEPTED_FORMS}")
    target = Target(platform, python)
    try:
        known = bool(target.platform_tags()) and bool(target.uv_platform())
    except InvalidInput:
        known = False
    if not known:
        raise InvalidInput(
            f"target {text!r}: unknown platform {platform!r}; the accepted forms are"
            f" {ACCEPTED_FORMS}"
        )
    return target
