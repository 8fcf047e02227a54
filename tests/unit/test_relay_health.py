"""When the outbox relay counts as unhealthy: its thread gone, or no successful round for too long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.relay_health import RelayStats, relay_health

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_relay_that_succeeds_is_healthy_and_counts_what_it_published() -> None:
    stats = RelayStats(started_at=T0)
    stats.succeeded(T0 + timedelta(seconds=1), 25)
    stats.succeeded(T0 + timedelta(seconds=2), 0)
    assert relay_health(stats, T0 + timedelta(seconds=50), thread_alive=True, unhealthy_after_s=60).healthy
    assert (stats.rounds, stats.published, stats.errors) == (2, 25, 0)


def test_failing_past_the_threshold_is_unhealthy_and_names_the_error() -> None:
    stats = RelayStats(started_at=T0)
    stats.succeeded(T0, 1)
    for n in range(3):
        stats.failed(T0 + timedelta(seconds=10 * n), ConnectionError("broker unreachable"))
    assert relay_health(stats, T0 + timedelta(seconds=59), thread_alive=True, unhealthy_after_s=60).healthy
    health = relay_health(stats, T0 + timedelta(seconds=61), thread_alive=True, unhealthy_after_s=60)
    assert not health.healthy
    assert "3 failed rounds" in (health.reason or "")
    assert "ConnectionError: broker unreachable" in (health.reason or "")
    stats.succeeded(T0 + timedelta(seconds=62), 5)
    assert stats.consecutive_errors == 0 and stats.errors == 3
    assert relay_health(stats, T0 + timedelta(seconds=63), thread_alive=True, unhealthy_after_s=60).healthy


def test_a_round_stuck_past_the_threshold_or_a_dead_thread_is_unhealthy() -> None:
    stats = RelayStats(started_at=T0)
    stuck = relay_health(stats, T0 + timedelta(seconds=61), thread_alive=True, unhealthy_after_s=60)
    assert not stuck.healthy and "running for that long" in (stuck.reason or "")
    dead = relay_health(stats, T0, thread_alive=False, unhealthy_after_s=60)
    assert not dead.healthy and "thread stopped" in (dead.reason or "")


def test_a_relay_not_started_yet_is_healthy_and_stats_are_json_ready() -> None:
    assert relay_health(RelayStats(), T0, thread_alive=True, unhealthy_after_s=1).healthy
    stats = RelayStats(started_at=T0)
    stats.failed(T0, ValueError("x" * 5000))
    as_dict = stats.as_dict()
    assert as_dict["started_at"] == T0.isoformat() and len(as_dict["last_error"]) == 1000
