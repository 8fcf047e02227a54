"""The prune cutoff: retention, bounded by the oldest event whose offset is not committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.prune_policy import DEFAULT_RETENTION, Retentions, prune_cutoff, retention_warnings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_default_retention_is_seven_days() -> None:
    assert prune_cutoff(NOW, DEFAULT_RETENTION) == NOW - timedelta(days=7)


def test_an_older_uncommitted_event_holds_the_cutoff_back() -> None:
    oldest_unacked = NOW - timedelta(days=9)
    assert prune_cutoff(NOW, DEFAULT_RETENTION, oldest_unacked) == oldest_unacked


def test_a_newer_uncommitted_event_does_not_move_the_cutoff_forward() -> None:
    assert prune_cutoff(NOW, DEFAULT_RETENTION, NOW - timedelta(hours=1)) == NOW - timedelta(days=7)


def test_zero_retention_prunes_up_to_now_or_the_bound() -> None:
    assert prune_cutoff(NOW, timedelta(0)) == NOW
    assert prune_cutoff(NOW, timedelta(0), NOW - timedelta(seconds=1)) == NOW - timedelta(seconds=1)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        prune_cutoff(NOW, timedelta(days=-1))
    with pytest.raises(ValueError):
        prune_cutoff(datetime(2026, 1, 1), DEFAULT_RETENTION)


def test_each_table_gets_its_own_cutoff_and_only_processed_events_is_held_back() -> None:
    retentions = Retentions.from_days(processed=7, outbox=3, runs=30, deliveries=30, reviews=14)
    held = NOW - timedelta(days=9)
    assert retentions.cutoffs(NOW, held) == {
        "processed_events": held,
        "outbox": NOW - timedelta(days=3),
        "runs": NOW - timedelta(days=30),
        "deliveries": NOW - timedelta(days=30),
        "reviews": NOW - timedelta(days=14),
        "schedule_slots": NOW - timedelta(days=30),
        "schedules": NOW - timedelta(days=30),
        "watches": NOW - timedelta(days=30),
    }


def test_what_fired_is_kept_as_long_as_the_runs_it_caused() -> None:
    retentions = Retentions.from_days(processed=7, outbox=7, runs=2, deliveries=30, reviews=30)
    cutoffs = retentions.cutoffs(
        NOW, NOW - timedelta(days=9)
    )  # the unacked bound holds back only processed rows
    assert {cutoffs[t] for t in ("schedule_slots", "schedules", "watches")} == {NOW - timedelta(days=2)}
    assert cutoffs["runs"] == NOW - timedelta(days=2)


def test_the_default_retentions_keep_deliveries_past_every_redelivery_window() -> None:
    assert retention_warnings(Retentions()) == []


def test_deliveries_shorter_than_a_redelivery_window_are_named() -> None:
    short = Retentions.from_days(processed=7, outbox=7, runs=30, deliveries=5, reviews=30)
    warnings = retention_warnings(short)
    assert len(warnings) == 2
    assert "outbox topics' retention" in warnings[0]
    assert "dedup window" in warnings[1]
    assert (
        len(retention_warnings(Retentions.from_days(processed=7, outbox=7, runs=1, deliveries=10, reviews=1)))
        == 1
    )
