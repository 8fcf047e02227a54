"""The router's decisions on event sequences, with no broker: dedup, cooldown, escalation,
inhibition, resolution; and the circuit breaker."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from streams.drift_policy import Rule
from streams.drift_router import Breaker, Decision, Incident, Signal, route, trip

pytestmark = pytest.mark.timeout(30)

RULE = Rule(cooldown_s=60, escalate_after=3, escalate_window_s=300, inhibit_equal=("service",))


class Router:
    """The router's state machine with the database replaced by a dict."""

    def __init__(self, rule: Rule = RULE) -> None:
        self.rule = rule
        self.incidents: dict[str, Incident] = {}

    def feed(self, fp: str, severity: str, at: float, **labels: str) -> Decision:
        signal = Signal(fp, labels.pop("source", "prom"), severity, at, labels)
        criticals = [
            i
            for i in self.incidents.values()
            if i.source == signal.source and i.status == "open" and i.tier == "critical"
        ]
        decision = route(signal, self.incidents.get(fp), criticals, self.rule)
        if decision.incident is not None:
            self.incidents[fp] = decision.incident
        return decision

    def tiers(self, events: Iterable[tuple[str, str, float]]) -> list[str | None]:
        return [self.feed(fp, sev, at).tier for fp, sev, at in events]


def test_each_severity_goes_to_its_tier_and_repeats_are_held_by_the_cooldown() -> None:
    router = Router(Rule(cooldown_s=60, escalate_after=99))
    assert router.tiers([("a", "warning", 0), ("a", "warning", 30), ("a", "warning", 61)]) == [
        "warning",
        None,
        "warning",
    ]
    assert router.feed("a", "warning", 62).reason == "cooldown"
    assert router.tiers([("b", "critical", 0), ("b", "critical", 10), ("b", "critical", 70)]) == [
        "critical",
        None,
        "critical",
    ]


def test_going_up_a_tier_is_never_held_back() -> None:
    router = Router(Rule(cooldown_s=600, escalate_after=99))
    assert router.tiers([("a", "warning", 0), ("a", "critical", 1)]) == ["warning", "critical"]


def test_warnings_escalate_to_critical_within_the_window_only() -> None:
    router = Router(Rule(cooldown_s=0, escalate_after=3, escalate_window_s=100))
    assert router.tiers([("a", "warning", 0), ("a", "warning", 10), ("a", "warning", 200)]) == [
        "warning",
        "warning",
        "warning",
    ]
    assert router.feed("a", "warning", 250).tier == "warning"  # two within 100 s
    assert router.feed("a", "warning", 260).tier == "critical"  # three within 100 s
    escalated = Router(Rule(cooldown_s=0, escalate_after=3, escalate_window_s=100))
    tiers = escalated.tiers([("a", "warning", 0), ("a", "warning", 10), ("a", "warning", 20)])
    assert tiers == ["warning", "warning", "critical"]
    assert escalated.incidents["a"].tier == "critical"


def test_a_warning_after_a_cooldown_counts_toward_escalation_even_when_held() -> None:
    router = Router(Rule(cooldown_s=1000, escalate_after=3, escalate_window_s=100))
    decisions = [router.feed("a", "warning", t) for t in (0, 5, 10)]
    assert [d.tier for d in decisions] == ["warning", None, "critical"]
    assert decisions[2].severity == "critical" and "escalated" in decisions[2].reason


def test_an_open_critical_inhibits_warnings_with_equal_labels_only() -> None:
    router = Router(Rule(cooldown_s=0, escalate_after=99, inhibit_equal=("service",)))
    assert router.feed("crit", "critical", 0, service="orders").tier == "critical"
    muted = router.feed("w1", "warning", 1, service="orders")
    assert muted.tier is None and muted.reason.startswith("inhibited by critical crit")
    assert router.feed("w2", "warning", 2, service="billing").tier == "warning"
    assert router.feed("w3", "warning", 3, service="orders", source="other").tier == "warning"
    assert router.feed("crit", "warning", 4, service="orders").tier is None  # its own critical
    assert router.feed("crit", "resolved", 5, service="orders").tier == "critical"
    assert router.feed("w1", "warning", 6, service="orders").tier == "warning"  # inhibition ended


def test_resolved_closes_the_incident_once() -> None:
    router = Router()
    router.feed("a", "warning", 0)
    first = router.feed("a", "resolved", 10)
    assert (first.tier, first.severity) == ("warning", "resolved")
    assert router.incidents["a"].status == "closed"
    again = router.feed("a", "resolved", 11)
    assert again.tier is None and again.reason == "nothing open to resolve"
    assert router.feed("never", "resolved", 0).tier is None
    # a new firing after resolution opens a new incident and is not held by the old cooldown
    assert router.feed("a", "warning", 12).tier == "warning"


def test_the_circuit_breaker_opens_after_the_limit_and_once() -> None:
    rule = Rule(breaker_limit=3, breaker_window_s=60)
    breaker: Breaker | None = None
    acts, opened = [], []
    for t in (0, 1, 2, 3, 4):
        decision = trip(breaker, float(t), rule)
        breaker = decision.breaker
        acts.append(decision.act)
        opened.append(decision.opened_now)
    assert acts == [True, True, True, False, False]
    assert opened == [False, False, False, True, False]
    assert breaker is not None and "limit 3" in breaker.reason
    # triggers spread wider than the window never open it
    slow: Breaker | None = None
    for t in range(10):
        d = trip(slow, t * 30.0, rule)
        slow = d.breaker
        assert d.act
