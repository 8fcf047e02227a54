"""Sink decisions: HTTP answers, claimed deliveries, dead-letter headers."""

from __future__ import annotations

import pytest

from agents.backoff import RetryPolicy
from agents.sinks.decisions import (
    ClaimDecision,
    HttpOutcome,
    classify_http_status,
    decide_claim,
    parse_retry_after,
    sink_dead_letter_headers,
)

POLICY = RetryPolicy(max_attempts=3)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, HttpOutcome.DELIVERED),
        (201, HttpOutcome.DELIVERED),
        (204, HttpOutcome.DELIVERED),
        (408, HttpOutcome.RETRY),
        (429, HttpOutcome.RETRY),
        (500, HttpOutcome.RETRY),
        (503, HttpOutcome.RETRY),
        (301, HttpOutcome.REJECTED),
        (400, HttpOutcome.REJECTED),
        (401, HttpOutcome.REJECTED),
        (404, HttpOutcome.REJECTED),
        (410, HttpOutcome.REJECTED),
        (422, HttpOutcome.REJECTED),
    ],
)
def test_http_status_classification(status: int, outcome: HttpOutcome) -> None:
    assert classify_http_status(status) is outcome


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        (None, None),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_delivered_and_failed_rows_are_never_attempted_again() -> None:
    assert decide_claim("delivered", 1, POLICY) is ClaimDecision.SKIP
    assert decide_claim("delivered", 99, POLICY) is ClaimDecision.SKIP
    assert decide_claim("failed", 3, POLICY) is ClaimDecision.SKIP


def test_pending_rows_are_attempted_within_the_budget_then_given_up() -> None:
    assert [decide_claim("pending", n, POLICY) for n in (1, 2, 3, 4)] == [
        ClaimDecision.ATTEMPT,
        ClaimDecision.ATTEMPT,
        ClaimDecision.ATTEMPT,
        ClaimDecision.GIVE_UP,
    ]


def test_sink_dead_letter_headers_name_the_sink_and_attempts() -> None:
    assert sink_dead_letter_headers("ops-hook", 5) == [("vigil-sink", b"ops-hook"), ("vigil-attempts", b"5")]
