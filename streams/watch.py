"""Vigil watching itself, the pure part: durations, heartbeat states, failure streaks, and the
``DriftEvent`` records of its own alerts (absence, repeated failures). No I/O.

An alert is one incident of one subject: a heartbeat overdue since a given time, or an agent's
streak of failed runs that began at a given time. Its event ids derive from (kind, subject, since),
so a monitor that retries after a crash, or two workers racing, produce the same event, and the
router's dedup makes it one alert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ConfigurationError
from streams.drift_events import drift_record, fingerprint

#: ``source`` of every drift event Vigil raises about itself.
SOURCE = "vigil"
ABSENCE = "absence"
FAILURES = "repeated-failures"
KINDS = (ABSENCE, FAILURES)

#: Default number of failed runs in a row that raise an agent's repeated-failures alert.
DEFAULT_FAILURES_IN_A_ROW = 3

#: Heartbeat names Vigil writes itself; anything else was declared by a user.
SYSTEM_PREFIXES = {"agent:": "agent", "relay:": "relay", "schedule:": "schedule", "connector:": "connector"}

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"500ms"``."""
    raw = text.strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        parts = _DURATION.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise ConfigurationError(
                f"duration {text!r}: use a number of seconds or units like 30s, 5m, 1h30m, 2d"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigurationError(f"duration {text!r}: must be more than zero")
    return seconds


def heartbeat_kind(name: str) -> str:
    """``agent``, ``relay``, ``schedule``, ``connector`` (written by Vigil) or ``user`` (declared)."""
    for prefix, kind in SYSTEM_PREFIXES.items():
        if name.startswith(prefix):
            return kind
    return "user"


def heartbeat_state(*, status: str, next_expected_at: datetime, grace_seconds: float, now: datetime) -> str:
    """``paused``, ``ok``, ``late`` (past its time, within grace) or ``overdue`` (past the grace)."""
    if status == "paused":
        return "paused"
    late_by = (now - next_expected_at).total_seconds()
    if late_by <= 0:
        return "ok"
    return "late" if late_by <= grace_seconds else "overdue"


def failure_streak(statuses: Sequence[str]) -> int:
    """How many of the newest runs (newest first) failed in a row.

    ``failed`` is a dead-lettered run; ``succeeded`` ends the streak; a ``rejected`` run (the validator
    sent it to review: the handler worked) ends it too.
    """
    streak = 0
    for status in statuses:
        if status != "failed":
            break
        streak += 1
    return streak


@dataclass(frozen=True)
class FailureVerdict:
    """What the monitor does about one agent's newest runs: open, resolve, or nothing."""

    action: str  # "open", "resolve" or "none"
    streak: int


def failure_verdict(statuses: Sequence[str], *, threshold: int, alert_open: bool) -> FailureVerdict:
    """Open once ``threshold`` runs failed in a row; resolve an open alert at the next success."""
    streak = failure_streak(statuses)
    if not alert_open and streak >= threshold:
        return FailureVerdict("open", streak)
    if alert_open and statuses and statuses[0] == "succeeded":
        return FailureVerdict("resolve", streak)
    return FailureVerdict("none", streak)


def alert_key(kind: str, subject: str) -> str:
    return f"{kind}:{subject}"


def _labels(kind: str, subject: str) -> dict[str, str]:
    return {"kind": kind, ("heartbeat" if kind == ABSENCE else "agent"): subject}


def alert_fingerprint(kind: str, subject: str) -> str:
    return fingerprint(SOURCE, kind, _labels(kind, subject))


def alert_event_id(kind: str, subject: str, since: datetime, severity: str) -> str:
    """``vigil/<kind>/<subject>/<since µs>/<severity>``: one incident, one id per severity."""
    micros = int(_utc(since).timestamp() * 1_000_000)
    return f"{SOURCE}/{kind}/{subject}/{micros}/{severity}"


def alert_record(
    kind: str,
    subject: str,
    *,
    since: datetime,
    severity: str,
    value: float,
    observed_at: datetime,
) -> dict[str, Any]:
    """The ``DriftEvent`` of an alert (``critical``) or its end (``resolved``).

    ``value``: seconds overdue for an absence, failed runs in a row for repeated failures.
    """
    if kind not in KINDS:
        raise ConfigurationError(f"alert kind {kind!r}: use one of {', '.join(KINDS)}")
    labels = _labels(kind, subject)
    return drift_record(
        source=SOURCE,
        metric=kind,
        value=value,
        severity=severity,
        labels=labels,
        observed_at=_utc(observed_at),
        statistic=kind,
        score=value,
        fp=fingerprint(SOURCE, kind, labels),
        event_id=alert_event_id(kind, subject, since, severity),
    )


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
