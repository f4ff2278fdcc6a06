"""The devpi scenarios, each driven in-process (protocol) and by the real `devpi` (client)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import ServerProcess
from tests.devpi_client import Devpi, devpi_executable  # noqa: F401 (a fixture)
from tests.devpi_scenarios import SCENARIOS, DevpiDriver, Driver, InProcessDriver

Scenario = Callable[[Driver, Path], None]
each_scenario = pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)


@each_scenario
def test_in_process(scenario: Scenario, client: TestClient, tmp_path: Path) -> None:
    """§18: 5, 6, 7, 9, 14, 15, 18, 19, 23, 24, 26, 27, 28, 37, 39 (the protocol side)"""
    scenario(InProcessDriver(client), tmp_path / "dists")


@pytest.mark.e2e
@each_scenario
def test_real_client(
    scenario: Scenario, request: pytest.FixtureRequest, live_server: ServerProcess, tmp_path: Path
) -> None:
    """§18: 5, 7, 9, 14, 15, 18, 19, 23, 24, 26, 27, 28, 37, 39 (what devpi prints)"""
    devpi = Devpi(request.getfixturevalue("devpi_executable"), tmp_path / "home")
    scenario(DevpiDriver(devpi, live_server.url), tmp_path / "dists")
