"""`packyard bundle create|push` and `packyard check`: carrying wheels into closed networks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from packyard.cli.client_common import session
from packyard.client import bundles, uploads
from packyard.client.api import Api
from packyard.core.targets import Target, parse_target
from packyard.errors import InvalidInput
from packyard.pip_index import pip_index_url

requirements_option = click.option(
    "-r", "--requirement", "requirements", multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A requirements file (repeatable).",
)  # fmt: skip
target_option = click.option(
    "--target", "targets", multiple=True,
    help="PLATFORM-PYTHON, e.g. win_amd64-cp313, manylinux_2_17_x86_64-cp311 (or"
    " manylinux2014_x86_64-cp311), musllinux_1_2_x86_64-cp312, macosx_11_0_arm64-cp311"
    " (repeatable).",
)  # fmt: skip


def _targets(texts: tuple[str, ...]) -> list[Target]:
    try:
        return [parse_target(text) for text in texts]
    except InvalidInput as exc:
        raise click.BadParameter(exc.message) from exc


def _index_url(index: str | None) -> str:
    """The simple index to resolve from: --index, else the current packyard index, else (no
    server selected, e.g. outside a closed network) the index pip itself is configured with."""
    if index and index.startswith(("http://", "https://")):
        return index
    with session() as api:
        if index is None and not api.state.url:
            url = pip_index_url()
            click.echo(
                f"no packyard server selected: resolving from {url}, the index pip is"
                " configured with (--index to choose another)",
                err=True,
            )
            return url
        return api.url(f"{api.index_path(index)}/+simple/")


@click.group()
def bundle() -> None:
    """Bundles of wheels for closed networks: create outside, push inside."""


@bundle.command("create")
@requirements_option
@target_option
@click.option(
    "--index",
    help="Simple index URL or USER/INDEX to resolve from (default: the current index; with no"
    " server selected, the index pip is configured with).",
)
@click.option(
    "-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Bundle directory (re-running resumes it).",
)  # fmt: skip
@click.option("--allow-sdist", is_flag=True, help="Allow sdists where no wheel exists.")
@click.option(
    "--since", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier bundle's manifest.json: carry only what it did not.",
)  # fmt: skip
@click.option(
    "--from-mirror-cache", "mirror",
    help="USER/INDEX of a mirror: bundle the files it has served, instead of resolving.",
)  # fmt: skip
@click.option(
    "--advisories", "advisories", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An OSV export zip to carry along; `bundle push` imports it first (as root).",
)  # fmt: skip
def create(
    requirements: tuple[Path, ...],
    targets: tuple[str, ...],
    index: str | None,
    output: Path,
    allow_sdist: bool,
    since: Path | None,
    mirror: str | None,
    advisories: Path | None,
) -> None:
    """Resolve the full closure for every target, then download exactly those files."""
    _create(requirements, targets, index, output, allow_sdist, since, mirror)
    if advisories is not None:
        bundles.carry_advisories(output, advisories)
        click.echo(f"bundle {output}: carries the advisories of {advisories}")


def _create(
    requirements: tuple[Path, ...],
    targets: tuple[str, ...],
    index: str | None,
    output: Path,
    allow_sdist: bool,
    since: Path | None,
    mirror: str | None,
) -> None:
    if mirror:
        if requirements or targets:
            raise click.UsageError("--from-mirror-cache takes no -r or --target")
        _from_mirror(mirror, output, since)
        return
    if not requirements or not targets:
        raise click.UsageError("give -r REQUIREMENTS and --target (or --from-mirror-cache)")
    chosen = _targets(targets)
    url = _index_url(index)
    try:
        with _progress_bar() as progress:
            manifest = bundles.create(
                list(requirements), chosen, url, output, allow_sdist, since, progress
            )
    except bundles.ClosureError as exc:
        raise click.ClickException(
            f"not every target can be resolved from {url}; nothing was downloaded.\n\n{exc}"
        ) from exc
    except bundles.BundleError as exc:
        raise click.ClickException(str(exc)) from exc
    for name, packages in manifest["targets"].items():
        click.echo(f"{name}: {len(packages)} files")
    skipped = len(manifest["carried_before"])
    click.echo(
        f"bundle {output}: {len(manifest['files'])} files to carry, {skipped} carried before"
    )


@contextmanager
def _progress_bar() -> Iterator[bundles.Progress]:
    """A bar on stderr that says which step (resolving, downloading) it counts."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("resolving")

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        yield progress


def _from_mirror(mirror: str, output: Path, since: Path | None) -> None:
    with session() as api:
        where = api.index_path(mirror)
        cached = api.result("GET", f"{where}/+cached")
        root = api.url("")
    try:
        with _progress_bar() as progress:
            manifest = bundles.from_mirror_cache(cached, root, output, progress, since)
    except bundles.BundleError as exc:
        raise click.ClickException(str(exc)) from exc
    skipped = len(manifest["carried_before"])
    click.echo(
        f"bundle {output}: {len(manifest['files'])} files cached by {where}"
        f" ({skipped} carried before)"
    )


ADVISORY_HINTS = {403: "a bundle's advisories are imported by root: `packyard login root`"}


def _import(api: Api, advisories: Path) -> dict[str, Any]:
    result: dict[str, Any] = api.post_file("+advisories", advisories)["result"]
    return result


@bundle.command("push")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("index")
def push_bundle(path: Path, index: str) -> None:
    """Verify every file of the bundle at PATH, then upload what INDEX (USER/INDEX) lacks."""
    try:
        files = bundles.verified_files(path)
        advisories = bundles.verified_advisories(path)
    except bundles.BundleError as exc:
        raise click.ClickException(f"{path}: refusing to push: {exc}") from exc
    with session(hints=ADVISORY_HINTS) as api:
        if advisories is not None:  # first: the files they name are then refused
            imported = _import(api, advisories)
            click.echo(f"imported {imported['advisories']} advisories from the bundle")
        where = api.index_path(index)
        todo, there = uploads.partition(api, where, files)

        def report(outcome: uploads.Outcome) -> None:
            if not outcome.ok:
                click.echo(f"failed {outcome.path.name}: {outcome.error}")

        outcomes = uploads.upload_all(api, where, todo, report)
    failed = sum(not outcome.ok for outcome in outcomes)
    uploaded = len(outcomes) - failed
    click.echo(f"uploaded {uploaded}, skipped {len(there)} (already there), failed {failed}")
    if failed:
        raise SystemExit(1)


@click.command()
@requirements_option
@target_option
@click.option("--index", help="Simple index URL or USER/INDEX to check (default: current).")
def check(requirements: tuple[Path, ...], targets: tuple[str, ...], index: str | None) -> None:
    """Would the requirements install on each target from this index alone? (installs nothing)"""
    if not requirements or not targets:
        raise click.UsageError("give -r REQUIREMENTS and --target")
    chosen = _targets(targets)
    problems = bundles.check(list(requirements), chosen, _index_url(index))
    for target in chosen:
        mine = [p for p in problems if p.target == target.name]
        if not mine:
            click.echo(f"{target.name}: ok, installs from this index alone")
        for problem in mine:
            click.echo(str(problem))
    if problems:
        raise SystemExit(1)
