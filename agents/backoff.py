"""Retry delays: exponential backoff with a cap and jitter, as plain arithmetic.

Pure: no clock, no sleeping. The caller passes the random source (a seeded ``random.Random`` in
tests) and does the waiting. Shared by the sinks and the agent unit of work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    factor: float = 2.0,
    max_delay: float = 30.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    The undisturbed delay is ``base * factor ** (attempt - 1)``, capped at ``max_delay``. ``jitter``
    is the fraction of it drawn at random: 0 keeps the exact schedule, 1 is "full jitter" (anything
    from 0 to the delay). Jitter only shortens a delay, so ``max_delay`` is a true bound.
    """
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if base < 0 or factor < 1 or max_delay < 0:
        raise ValueError("backoff needs base >= 0, factor >= 1 and max_delay >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a fraction in [0, 1], got {jitter}")
    # Grow in floats but stop early: factor ** attempt overflows long before it matters.
    delay = base
    for _ in range(attempt - 1):
        delay *= factor
        if delay >= max_delay:
            break
    delay = min(delay, max_delay)
    if jitter:
        draw = (rng or random).random()
        delay *= 1.0 - jitter * draw
    return delay


def backoff_delays(
    attempts: int,
    *,
    base: float = 0.5,
    factor: float = 2.0,
    max_delay: float = 30.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> list[float]:
    """The delays after each of the first ``attempts`` failed attempts."""
    return [
        backoff_delay(n, base=base, factor=factor, max_delay=max_delay, jitter=jitter, rng=rng)
        for n in range(1, attempts + 1)
    ]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry: ``max_attempts`` tries in all, backoff between them."""

    max_attempts: int = 5
    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        # Validates the other fields once, at construction.
        backoff_delay(1, base=self.base, factor=self.factor, max_delay=self.max_delay, jitter=self.jitter)

    def delay(
        self, attempt: int, rng: random.Random | None = None, retry_after: float | None = None
    ) -> float:
        """Wait after failed ``attempt``; a server's ``Retry-After`` lengthens it, up to ``max_delay``."""
        delay = backoff_delay(
            attempt,
            base=self.base,
            factor=self.factor,
            max_delay=self.max_delay,
            jitter=self.jitter,
            rng=rng,
        )
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, self.max_delay)
        return delay

    def gives_up_after(self, attempt: int) -> bool:
        """True when ``attempt`` failed attempts use up the budget."""
        return attempt >= self.max_attempts

    def worst_case_wait(self) -> float:
        """Total sleeping before giving up, without jitter (keep it under max.poll.interval.ms)."""
        return sum(
            backoff_delays(
                self.max_attempts - 1,
                base=self.base,
                factor=self.factor,
                max_delay=self.max_delay,
                jitter=0.0,
            )
        )
