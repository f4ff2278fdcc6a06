"""Base resolution and the mirror whitelist (devpi-protocol.md §6).

The resolution order of an index is a breadth-first walk over `bases`, each index once, with
every mirror moved to the end. For one project, a mirror contributes only while no private
stage earlier in the order has the project — unless the whitelist lets it: this is the
protection against dependency confusion.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping

from packyard.core.indexconfig import IndexConfig, InheritanceMode, MirrorConfig
from packyard.errors import InvalidInput

Config = IndexConfig


def resolution_order(name: str, configs: Mapping[str, Config]) -> list[str]:
    """Index names in the order their files count for `name`; missing bases are skipped."""
    seen: set[str] = set()
    stages: list[str] = []
    mirrors: list[str] = []
    queue = deque([name])
    while queue:
        current = queue.popleft()
        if current in seen or current not in configs:
            continue
        seen.add(current)
        config = configs[current]
        (mirrors if config.is_mirror else stages).append(current)
        queue.extend(config.bases)
    return stages + mirrors


def check_no_cycle(name: str, bases: list[str], configs: Mapping[str, Config]) -> None:
    """Refuse bases that do not exist or that would make `name` inherit from itself."""
    for base in bases:
        if base not in configs:
            raise InvalidInput(f"base index '{base}' does not exist")
    graph = {key: list(config.bases) for key, config in configs.items()}
    graph[name] = list(bases)
    stack = list(bases)
    seen: set[str] = set()
    while stack:
        current = stack.pop()
        if current == name:
            raise InvalidInput(f"bases of {name} would make it inherit from itself")
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, ()))


@dataclasses.dataclass(frozen=True)
class Contributors:
    """Which indexes serve a project, and which mirror the whitelist held back."""

    indexes: list[str]
    blocked_mirror: str | None = None


def contributing_indexes(
    project: str,
    order: list[str],
    configs: Mapping[str, Config],
    has_project: Callable[[str], bool],
) -> Contributors:
    """Walk the resolution order for one (normalised) project name, as devpi does."""
    queried = configs[order[0]] if order else None
    mode = (
        InheritanceMode.UNION
        if isinstance(queried, MirrorConfig) or queried is None
        else queried.mirror_whitelist_inheritance
    )
    whitelist: set[str] | None = None
    whitelisted = private_hit = False
    contributing: list[str] = []
    blocked: str | None = None
    for index in order:
        config = configs[index]
        if isinstance(config, MirrorConfig):
            if private_hit and not whitelisted:
                blocked = blocked or index
                continue
            if has_project(index):
                contributing.append(index)
            continue
        own = set(config.mirror_whitelist)
        if whitelist is None:
            whitelist = own
        elif mode == InheritanceMode.INTERSECTION:
            whitelist &= own
        else:
            whitelist |= own
        found = has_project(index)
        if "*" in whitelist or project in whitelist:
            whitelisted = True
        elif found:
            private_hit = True
        if found:
            contributing.append(index)
    return Contributors(contributing, blocked)
