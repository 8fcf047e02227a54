"""The prune cutoff: retention, bounded by the oldest event whose offset is not committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.prune_policy import DEFAULT_RETENTION, prune_cutoff

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
