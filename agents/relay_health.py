"""The outbox relay's counters and the rule that says whether it is healthy.

The relay thread updates a :class:`RelayStats` after every round; the worker and ``vigil status``
judge it with :func:`relay_health`. A relay is unhealthy when its thread is gone, or when no round
has succeeded for longer than the threshold (``VIGIL_RELAY_UNHEALTHY_AFTER_S``) since it started
or last succeeded: failing rounds, or one round stuck longer than that, both count.

Pure: no clock, no client; the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class RelayStats:
    """What the relay did since it started; written by the relay thread only."""

    started_at: datetime | None = None
    rounds: int = 0
    published: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    #: Unsent rows and the age of the oldest, as of ``backlog_at`` (None: not measured yet).
    backlog: int | None = None
    oldest_unsent_age_s: float | None = None
    backlog_at: datetime | None = None

    def succeeded(self, now: datetime, published: int) -> None:
        self.rounds += 1
        self.published += published
        self.consecutive_errors = 0
        self.last_success_at = now

    def failed(self, now: datetime, error: BaseException) -> None:
        self.rounds += 1
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = f"{type(error).__name__}: {error}"[:1000]
        self.last_error_at = now

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO strings."""
        return {
            "started_at": _iso(self.started_at),
            "rounds": self.rounds,
            "published": self.published,
            "errors": self.errors,
            "consecutive_errors": self.consecutive_errors,
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "last_success_at": _iso(self.last_success_at),
            "backlog": self.backlog,
            "oldest_unsent_age_s": self.oldest_unsent_age_s,
            "backlog_at": _iso(self.backlog_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class RelayHealth:
    healthy: bool
    reason: str | None = None


def relay_health(
    stats: RelayStats, now: datetime, *, thread_alive: bool, unhealthy_after_s: float
) -> RelayHealth:
    """Healthy while the thread runs and a round succeeded within ``unhealthy_after_s``."""
    if not thread_alive:
        return RelayHealth(False, f"the relay thread stopped; last error: {stats.last_error or 'none'}")
    since = stats.last_success_at or stats.started_at
    if since is None:
        return RelayHealth(True)  # not started yet
    stalled_s = (now - since).total_seconds()
    if stalled_s <= unhealthy_after_s:
        return RelayHealth(True)
    detail = f"{stats.consecutive_errors} failed rounds in a row, last error: {stats.last_error}"
    if not stats.consecutive_errors:
        detail = "a round has been running for that long (a stuck produce or database call?)"
    return RelayHealth(False, f"no relay round succeeded for {stalled_s:.0f}s: {detail}")
