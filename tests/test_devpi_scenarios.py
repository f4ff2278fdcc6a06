"""The devpi scenarios, each driven in-process (protocol) and by the real `devpi` (client)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.devpi_client import Devpi, devpi_executable  # noqa: F401 (a fixture)
from tests.devpi_scenarios import SCENARIOS, DevpiDriver, Driver, InProcessDriver
from tests.inprocess import running_client


@pytest.fixture(params=["in-process", pytest.param("devpi", marks=pytest.mark.e2e)])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    if request.param == "in-process":
        with running_client(tmp_path / "server", "") as client:
            yield InProcessDriver(client)
        return
    server: ServerProcess = request.getfixturevalue("live_server")
    devpi = Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")
    yield DevpiDriver(devpi, server.url)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_scenario(scenario: Callable[[Driver, Path], None], driver: Driver, tmp_path: Path) -> None:
    """§18: 5, 7, 9, 14, 15, 18, 19, 23, 24, 26, 27, 28, 37, 39 (see each scenario)."""
    scenario(driver, tmp_path / "dists")
