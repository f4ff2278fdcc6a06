"""The mirror's freshness policy, driven by a fake clock: time moves, nothing sleeps."""

from __future__ import annotations

from packyard.core.indexconfig import MirrorConfig
from packyard.services.mirror.freshness import (
    FAILURE_MEMORY,
    MAX_REMEMBERED,
    REFRESH_INTERVAL,
    RETRY_AFTER,
    Freshness,
)

KEY = (1, "demo")


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def policy(expiry: int = 60) -> tuple[Freshness, FakeClock]:
    clock = FakeClock()
    return Freshness(expiry, clock), clock


def test_a_fetched_page_is_fresh_for_its_expiry_then_stale() -> None:
    freshness, clock = policy()
    assert not freshness.is_fresh(KEY)
    freshness.fetched(KEY, clock.now, 60)
    clock.now += 59.9
    assert freshness.is_fresh(KEY)
    assert not freshness.is_fresh((2, "demo")), "freshness is per index"
    clock.now += 0.2
    assert not freshness.is_fresh(KEY)


def test_a_stored_page_is_judged_by_when_it_was_fetched() -> None:
    freshness, clock = policy()
    assert freshness.stored_is_fresh(clock.now - 59, 60)
    assert not freshness.stored_is_fresh(clock.now - 60, 60)


def test_the_index_expiry_wins_over_the_server_default() -> None:
    freshness, _ = policy(expiry=1800)
    url = "http://127.0.0.1:1/simple/"
    assert freshness.expiry(MirrorConfig(mirror_url=url)) == 1800
    assert freshness.expiry(MirrorConfig(mirror_url=url, mirror_cache_expiry=5)) == 5


def test_a_stale_page_served_after_a_failure_is_not_asked_for_again_for_a_while() -> None:
    freshness, clock = policy()
    freshness.served_stale(KEY)
    clock.now += RETRY_AFTER - 0.1
    assert freshness.is_fresh(KEY)
    clock.now += 0.2
    assert not freshness.is_fresh(KEY)


def test_a_failed_first_fetch_is_remembered_briefly_and_cleared_by_an_answer() -> None:
    freshness, clock = policy()
    freshness.remember_failure(KEY, "unreachable")
    assert freshness.failure(KEY) == "unreachable"
    clock.now += FAILURE_MEMORY + 0.1
    assert freshness.failure(KEY) is None
    freshness.remember_failure(KEY, "unreachable")
    freshness.fetched(KEY, clock.now, 60)
    assert freshness.failure(KEY) is None


def test_forget_makes_the_page_stale_and_forces_one_refresh() -> None:
    freshness, clock = policy()
    freshness.fetched(KEY, clock.now, 60)
    freshness.remember_failure(KEY, "unreachable")
    freshness.forget(KEY)
    assert not freshness.is_fresh(KEY)
    assert freshness.failure(KEY) is None
    assert freshness.take_forced(KEY)
    assert not freshness.take_forced(KEY), "a forced refresh is taken once"


def test_refresh_is_rate_limited_per_project() -> None:
    freshness, clock = policy()
    assert freshness.may_refresh(KEY)
    assert not freshness.may_refresh(KEY)
    assert freshness.may_refresh((1, "other"))
    clock.now += REFRESH_INTERVAL
    assert freshness.may_refresh(KEY)


def test_memory_stays_bounded_when_clients_name_endless_projects() -> None:
    freshness, clock = policy()
    for number in range(MAX_REMEMBERED + 5):
        freshness.fetched((1, f"p{number}"), clock.now, 60)
    # Nothing had expired, so the whole memory was dropped once and refilled.
    remembered = sum(freshness.is_fresh((1, f"p{n}")) for n in range(MAX_REMEMBERED + 5))
    assert remembered < MAX_REMEMBERED
    clock.now += 61
    freshness.fetched(KEY, clock.now, 60)
    assert freshness.is_fresh(KEY)
