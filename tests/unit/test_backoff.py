"""The backoff schedule: exponential, capped, jittered only downwards, reproducible with a seed."""

from __future__ import annotations

import random

import pytest

from agents.backoff import RetryPolicy, backoff_delay, backoff_delays


def test_exponential_then_capped_without_jitter() -> None:
    assert backoff_delays(6, base=0.5, factor=2, max_delay=5, jitter=0) == [0.5, 1, 2, 4, 5, 5]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay(10_000, base=1, factor=10, max_delay=60, jitter=0) == 60


def test_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    rng = random.Random(7)
    for attempt in range(1, 30):
        exact = backoff_delay(attempt, base=0.1, factor=3, max_delay=20, jitter=0)
        jittered = backoff_delay(attempt, base=0.1, factor=3, max_delay=20, jitter=0.25, rng=rng)
        assert exact * 0.75 <= jittered <= exact


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(1)
    draws = [backoff_delay(3, base=1, factor=2, max_delay=10, jitter=1.0, rng=rng) for _ in range(500)]
    assert min(draws) < 0.5 and max(draws) > 3.5 and all(0 <= d <= 4 for d in draws)


def test_same_seed_same_schedule() -> None:
    a = backoff_delays(8, jitter=0.5, rng=random.Random(42))
    b = backoff_delays(8, jitter=0.5, rng=random.Random(42))
    assert a == b


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"attempt": 1, "jitter": 1.5},
        {"attempt": 1, "factor": 0.5},
        {"attempt": 1, "base": -1},
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, float]) -> None:
    attempt = int(kwargs.pop("attempt"))
    with pytest.raises(ValueError):
        backoff_delay(attempt, **kwargs)


def test_policy_budget_retry_after_and_worst_case() -> None:
    policy = RetryPolicy(max_attempts=4, base=1, factor=2, max_delay=8, jitter=0)
    assert [policy.gives_up_after(n) for n in (1, 3, 4, 5)] == [False, False, True, True]
    assert policy.delay(1) == 1
    assert policy.delay(1, retry_after=5) == 5  # the server's hint lengthens the wait
    assert policy.delay(1, retry_after=100) == 8  # but never past max_delay
    assert policy.delay(3, retry_after=0.5) == 4  # and never shortens it
    assert policy.worst_case_wait() == 1 + 2 + 4
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
