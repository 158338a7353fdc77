"""The circuit breaker's states over a fake clock: closed → open → half-open → closed or open again."""

from __future__ import annotations

import pytest

from aoc_common.circuit_breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 30, clock=clock)

    assert [breaker.record_failure() for _ in range(2)] == [False, False]
    assert breaker.state == "closed" and breaker.retry_in_s() == 0
    assert breaker.record_failure() is True
    assert breaker.state == "open"
    assert breaker.retry_in_s() == 30


def test_a_success_forgets_earlier_failures() -> None:
    breaker = CircuitBreaker(2, 30, clock=FakeClock())

    breaker.record_failure()
    breaker.record_success()

    assert breaker.record_failure() is False
    assert breaker.state == "closed"


def test_after_the_cool_down_one_trial_decides() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 30, clock=clock)
    breaker.record_failure()

    clock.now += 29
    assert breaker.state == "open" and breaker.retry_in_s() == pytest.approx(1)
    clock.now += 1
    assert breaker.state == "half_open" and breaker.retry_in_s() == 0

    assert breaker.record_failure() is True  # the trial failed: a whole new cool-down
    assert breaker.retry_in_s() == 30
    clock.now += 30
    breaker.record_success()
    assert breaker.state == "closed"


def test_a_failure_while_half_open_reopens_even_below_the_threshold() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5, 10, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 10

    assert breaker.record_failure() is True
    assert breaker.state == "open"


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, 0.0)])
def test_nonsense_limits_are_refused(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, cooldown)
