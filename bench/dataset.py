"""The generated wheels both servers receive: one set, built once per run, read into memory."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from builders import build_wheel  # type: ignore[import-not-found]
from servers import discard

SMALL_PROJECT = "bench-small"
BIG_PROJECT = "bench-big"
CHAIN_PREFIX = "bench-chain-"
UPLOAD_PREFIX = "bench-up-"
UPLOAD_VERSIONS_PER_PROJECT = 10
# The big project is built like a compiled library's: every release has one wheel per tag.
BIG_TAGS = [
    f"{python}-{python}-{platform}"
    for python in ("cp39", "cp310", "cp311", "cp312", "cp313")
    for platform in (
        "manylinux_2_17_x86_64",
        "manylinux_2_17_aarch64",
        "macosx_11_0_arm64",
        "win_amd64",
    )
]


@dataclasses.dataclass(frozen=True)
class Wheel:
    """One wheel file, held in memory so that reading the disk is never part of a timing."""

    name: str
    version: str
    filename: str
    content: bytes


@dataclasses.dataclass(frozen=True)
class Dataset:
    small: list[Wheel]  # one project, the "10-file page"
    big: list[Wheel]  # one project, the "2,000-file page"
    chain: list[Wheel]  # a dependency chain for `pip install`
    uploads: list[Wheel]  # the timed uploads, to an empty index
    chain_root: str

    @property
    def setup_files(self) -> list[Wheel]:
        """Everything uploaded before the measurements, untimed."""
        return [*self.small, *self.chain, *self.big]


def _wheel(
    directory: Path,
    name: str,
    version: str,
    requires: list[str] | None = None,
    tag: str = "py3-none-any",
) -> Wheel:
    path = build_wheel(directory, name, version, requires=requires, tag=tag)
    return Wheel(name, version, path.name, path.read_bytes())


def _project(directory: Path, name: str, versions: list[str]) -> list[Wheel]:
    return [_wheel(directory, name, version) for version in versions]


def _big(directory: Path, files: int) -> list[Wheel]:
    """`files` wheels: files/20 releases with one wheel per tag in BIG_TAGS."""
    releases = [f"1.{n}" for n in range(files // len(BIG_TAGS))]
    return [_wheel(directory, BIG_PROJECT, v, tag=tag) for v in releases for tag in BIG_TAGS]


def _chain(directory: Path, length: int) -> list[Wheel]:
    """`bench-chain-00` needs `-01`, ... needs `-NN`: pip resolves and installs all of them."""
    wheels = []
    for position in range(length):
        name = f"{CHAIN_PREFIX}{position:02d}"
        following = f"{CHAIN_PREFIX}{position + 1:02d}"
        requires = [f"{following}>=1.0"] if position + 1 < length else []
        for version in ("1.0", "1.1"):
            wheels.append(_wheel(directory, name, version, requires))
    return wheels


def _uploads(directory: Path, count: int) -> list[Wheel]:
    """`count` wheels: `UPLOAD_VERSIONS_PER_PROJECT` versions each of count/10 projects."""
    wheels = []
    for number in range(count):
        project, version = divmod(number, UPLOAD_VERSIONS_PER_PROJECT)
        wheels.append(_wheel(directory, f"{UPLOAD_PREFIX}{project:03d}", f"1.{version}"))
    return wheels


def build_dataset(directory: Path, big_files: int, upload_files: int, chain_length: int) -> Dataset:
    """Build every wheel from scratch into `directory` (its old content goes to the trash)."""
    discard(directory)
    data = Dataset(
        small=_project(directory / "small", SMALL_PROJECT, [f"1.{n}" for n in range(10)]),
        big=_big(directory / "big", big_files),
        chain=_chain(directory / "chain", chain_length),
        uploads=_uploads(directory / "uploads", upload_files),
        chain_root=f"{CHAIN_PREFIX}00",
    )
    os.sync()  # what was just written reaches the disk before anything is measured
    return data
