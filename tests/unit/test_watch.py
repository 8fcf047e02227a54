"""The pure part of Vigil watching itself: durations, heartbeat states, failure streaks, alert ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.errors import ConfigurationError
from streams.watch import (
    ABSENCE,
    FAILURES,
    alert_event_id,
    alert_record,
    failure_streak,
    failure_verdict,
    heartbeat_kind,
    heartbeat_state,
    parse_duration,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("2d", 172800.0), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "0", "-3", "1h 30m"])
def test_bad_durations_name_the_fix(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"30s, 5m|more than zero"):
        parse_duration(text)


def test_heartbeat_states_by_lateness() -> None:
    due = T0
    state = lambda now, status="ok": heartbeat_state(  # noqa: E731
        status=status, next_expected_at=due, grace_seconds=10, now=now
    )
    assert state(T0 - timedelta(seconds=1)) == "ok"
    assert state(T0 + timedelta(seconds=5)) == "late"
    assert state(T0 + timedelta(seconds=11)) == "overdue"
    assert state(T0 + timedelta(days=1), "paused") == "paused"


def test_heartbeat_kinds() -> None:
    assert heartbeat_kind("agent:orders") == "agent"
    assert heartbeat_kind("relay:vigil") == "relay"
    assert heartbeat_kind("schedule:nightly") == "schedule"
    assert heartbeat_kind("nightly-backup") == "user"


def test_failure_streak_counts_the_newest_failures_only() -> None:
    assert failure_streak(["failed", "failed", "succeeded", "failed"]) == 2
    assert failure_streak(["succeeded", "failed", "failed"]) == 0
    assert failure_streak(["failed", "rejected", "failed"]) == 1
    assert failure_streak([]) == 0


def test_failure_verdict_opens_at_the_threshold_once_and_resolves_at_a_success() -> None:
    assert failure_verdict(["failed"] * 2, threshold=3, alert_open=False).action == "none"
    assert failure_verdict(["failed"] * 3, threshold=3, alert_open=False).action == "open"
    assert failure_verdict(["failed"] * 4, threshold=3, alert_open=True).action == "none"
    assert (
        failure_verdict(["succeeded", "failed", "failed"], threshold=3, alert_open=True).action == "resolve"
    )
    assert failure_verdict(["succeeded"], threshold=3, alert_open=False).action == "none"
    assert failure_verdict(["failed"], threshold=1, alert_open=False).action == "open"


def test_an_alert_is_one_event_per_incident_and_severity() -> None:
    since = T0
    first = alert_record(ABSENCE, "nightly", since=since, severity="critical", value=3, observed_at=T0)
    retried = alert_record(
        ABSENCE, "nightly", since=since, severity="critical", value=9, observed_at=T0 + timedelta(seconds=5)
    )
    assert first["id"] == retried["id"] == alert_event_id(ABSENCE, "nightly", since, "critical")
    resolved = alert_record(ABSENCE, "nightly", since=since, severity="resolved", value=0, observed_at=T0)
    assert resolved["id"] != first["id"] and resolved["fingerprint"] == first["fingerprint"]
    later = alert_record(
        ABSENCE, "nightly", since=since + timedelta(hours=1), severity="critical", value=1, observed_at=T0
    )
    assert later["id"] != first["id"]
    assert first["source"] == "vigil" and first["metric"] == "absence"
    assert first["labels"] == {"kind": "absence", "heartbeat": "nightly"}


def test_failure_alerts_name_the_agent() -> None:
    record = alert_record(FAILURES, "orders", since=T0, severity="critical", value=3, observed_at=T0)
    assert record["labels"] == {"kind": "repeated-failures", "agent": "orders"}
    other = alert_record(FAILURES, "billing", since=T0, severity="critical", value=3, observed_at=T0)
    assert other["fingerprint"] != record["fingerprint"]
    with pytest.raises(ConfigurationError):
        alert_record("nope", "x", since=T0, severity="critical", value=1, observed_at=T0)
