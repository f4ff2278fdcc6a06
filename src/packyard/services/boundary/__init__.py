"""The async use cases the web layer awaits: services are the async boundary.

Each method is one use case and owns its hop to synchronous storage (`in_thread`); handlers
parse a request, make one `await` here and render, and never decide what may block. Reads
that need only the current index configuration stay on the event loop while that snapshot is
fresh (no thread hop in the steady state); everything else runs in a worker thread.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from packyard.services.boundary.accounts import AccountUseCases
from packyard.services.boundary.exemptions import ExemptionUseCases
from packyard.services.boundary.files import FileUseCases
from packyard.services.boundary.indexes import IndexUseCases
from packyard.services.boundary.packages import PackageUseCases
from packyard.services.boundary.pages import PageUseCases
from packyard.services.boundary.tokens import TokenUseCases

if TYPE_CHECKING:
    from packyard.services import Services


@dataclasses.dataclass(frozen=True)
class Boundary:
    accounts: AccountUseCases
    indexes: IndexUseCases
    packages: PackageUseCases
    files: FileUseCases
    pages: PageUseCases
    tokens: TokenUseCases
    exemptions: ExemptionUseCases

    @classmethod
    def over(cls, services: Services) -> Boundary:
        indexes = IndexUseCases(services)
        packages = PackageUseCases(services, indexes)
        return cls(
            accounts=AccountUseCases(services),
            indexes=indexes,
            packages=packages,
            files=FileUseCases(services, indexes),
            pages=PageUseCases(services, indexes, packages),
            tokens=TokenUseCases(services),
            exemptions=ExemptionUseCases(services, indexes),
        )
