"""One source type per index kind: a stage's rows (`StageSource`) or a mirror's stored copy of
its upstream (`MirrorSource`), both answering the `Source` protocol.

The index kind picks the source once (`Sources.source_for`); callers walk the resolution order
asking each source, and never branch on the kind themselves (devpi's `PrivateStage` and
`MirrorStage` are the model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from packyard.config import Settings
from packyard.core.indexconfig import IndexType
from packyard.core.models import IndexRecord
from packyard.services.exemptions import HoldCounts
from packyard.services.mirror import Mirrors
from packyard.services.sources.base import (
    Dropped,
    Release,
    Source,
    Upstream,
    VersionData,
    version_sort_key,
)
from packyard.services.sources.mirror import MirrorSource
from packyard.services.sources.stage import StageSource

if TYPE_CHECKING:
    from packyard.services.package_edits import PackageEdits

__all__ = [
    "Dropped",
    "MirrorSource",
    "Release",
    "Source",
    "Sources",
    "StageSource",
    "Upstream",
    "VersionData",
    "version_sort_key",
]


class Sources:
    """Makes the source of an index, chosen by its kind (the one place that chooses)."""

    def __init__(
        self,
        mirrors: Mirrors,
        edits: PackageEdits,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The clock serve-time holds are judged by (injected: tests move it, nothing sleeps).
        self.clock = clock
        self.hold_counts = HoldCounts()
        self._kinds: Mapping[IndexType, Callable[[IndexRecord], Source]] = {
            IndexType.STAGE: lambda record: StageSource(record, edits),
            IndexType.MIRROR: lambda record: MirrorSource(
                record, mirrors, settings, self.now, self.hold_counts
            ),
        }

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def source_for(self, record: IndexRecord) -> Source:
        return self._kinds[record.index_config.type](record)

    def sources_for(self, records: list[IndexRecord]) -> list[Source]:
        return [self.source_for(record) for record in records]
