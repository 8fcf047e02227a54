"""The plain-loop peer of ``bench drift`` decides like the router agent: same pure route, state in a dict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.peers.drift_loop import MemoryRouter
from streams.drift_events import drift_record
from streams.drift_policy import Policy

pytestmark = pytest.mark.timeout(10)
START = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _event(i: int, severity: str, seconds: float) -> dict[str, Any]:
    return drift_record(
        source="prometheus",
        metric="latency",
        value=1.0,
        severity=severity,
        labels={"service": "a"},
        observed_at=START + timedelta(seconds=seconds),
        event_id=f"e{i}",
    )


def test_a_duplicate_id_is_decided_once() -> None:
    router = MemoryRouter(Policy())
    first = router.decide(_event(1, "critical", 0))
    assert first is not None and first[0] == "critical"
    assert router.decide(_event(1, "critical", 0)) is None


def test_warnings_escalate_then_resolved_goes_to_the_tier_routed_to() -> None:
    router = MemoryRouter(Policy())
    tiers = [router.decide(_event(i, "warning", i * 400.0)) for i in range(3)]
    assert [t[0] if t else None for t in tiers] == ["warning", "warning", "critical"]
    escalated = tiers[2]
    assert escalated is not None and "escalated" in escalated[1]["labels"]["vigil_route_reason"]
    resolved = router.decide(_event(9, "resolved", 2000))
    assert resolved is not None and resolved[0] == "critical" and resolved[1]["severity"] == "resolved"
