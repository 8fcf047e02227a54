"""The two-tier drift router's decisions, and the circuit breaker's. Pure: state in, state out.

The router agent (``agents/drift/router.py``) loads an :class:`Incident` per fingerprint from
Postgres, asks :func:`route` what to do with one drift event, writes the new incident back in the
event's transaction and sends the event to the tier it names. Time is the event's own
``observed_at``, never the clock, so a replay decides the same.

The rules, in order:

- **resolved** closes the fingerprint's open incident and goes to the tier it was routed to; with no
  open incident there is nothing to resolve and nothing is sent.
- **escalation**: a warning is counted; ``escalate_after`` warnings of one fingerprint within
  ``escalate_window_s`` are routed as critical.
- **inhibition**: a warning is muted while a critical is open for the same fingerprint, or for
  another fingerprint of the same source whose ``inhibit_equal`` labels have equal values
  (Alertmanager's ``equal``).
- **cooldown**: a fingerprint already routed to a tier is not routed to that tier again within
  ``cooldown_s``; going up from warning to critical is never held back.
- otherwise the event is routed to its own severity's tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from streams.drift_policy import Rule

Tier = Literal["warning", "critical"]


@dataclass(frozen=True)
class Incident:
    """What the router remembers about one fingerprint."""

    fingerprint: str
    source: str
    labels: Mapping[str, str]
    status: Literal["open", "closed"]
    tier: Tier
    opened_at: float
    last_routed_at: float | None = None
    warnings: tuple[float, ...] = ()


@dataclass(frozen=True)
class Signal:
    """The parts of a drift event the router looks at."""

    fingerprint: str
    source: str
    severity: str
    at: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """Where the event goes (``tier`` None: nowhere), as what severity, why, and the state to keep."""

    tier: Tier | None
    severity: str
    reason: str
    incident: Incident | None


def inhibits(critical: Incident, signal: Signal, equal: Sequence[str]) -> bool:
    """Whether an open critical ``critical`` mutes a warning ``signal``."""
    if critical.status != "open" or critical.tier != "critical":
        return False
    if critical.fingerprint == signal.fingerprint:
        return True
    return critical.source == signal.source and all(
        critical.labels.get(name) == signal.labels.get(name) for name in equal
    )


def route(
    signal: Signal, incident: Incident | None, open_criticals: Sequence[Incident], rule: Rule
) -> Decision:
    """Decide one event. ``open_criticals``: the source's open critical incidents (for inhibition)."""
    current = incident if incident is not None and incident.status == "open" else None
    if signal.severity == "resolved":
        if current is None:
            return Decision(None, "resolved", "nothing open to resolve", None)
        return Decision(current.tier, "resolved", "resolved", replace(current, status="closed", warnings=()))

    previous = incident.warnings if incident is not None else ()
    warnings = tuple(t for t in previous if signal.at - t < rule.escalate_window_s)
    tier: Tier = "critical" if signal.severity == "critical" else "warning"
    reason = "routed"
    if tier == "warning":
        warnings += (signal.at,)
        if len(warnings) >= rule.escalate_after:
            tier, reason, warnings = "critical", f"escalated after {len(warnings)} warnings", ()

    base = current or Incident(
        signal.fingerprint, signal.source, dict(signal.labels), "open", tier, opened_at=signal.at
    )
    kept = replace(base, warnings=warnings)
    if tier == "warning":
        muting = [
            c
            for c in [*open_criticals, *([current] if current else [])]
            if inhibits(c, signal, rule.inhibit_equal)
        ]
        if muting:
            return Decision(None, "warning", f"inhibited by critical {muting[0].fingerprint}", kept)
    if (
        current is not None
        and current.last_routed_at is not None
        and _rank(tier) <= _rank(current.tier)
        and signal.at - current.last_routed_at < rule.cooldown_s
    ):
        return Decision(None, signal.severity, "cooldown", kept)
    top: Tier = tier if current is None or _rank(tier) >= _rank(current.tier) else current.tier
    return Decision(tier, tier, reason, replace(kept, tier=top, last_routed_at=signal.at))


def _rank(tier: Tier) -> int:
    return 1 if tier == "critical" else 0


# -- the circuit breaker -----------------------------------------------------------------


@dataclass(frozen=True)
class Breaker:
    """An agent's actions on one fingerprint: their recent times, and whether it stopped acting."""

    times: tuple[float, ...] = ()
    open: bool = False
    reason: str = ""


@dataclass(frozen=True)
class BreakerDecision:
    act: bool
    opened_now: bool
    breaker: Breaker


def trip(breaker: Breaker | None, at: float, rule: Rule) -> BreakerDecision:
    """One more trigger of an agent's action on a fingerprint: act, or open (once) and stop.

    An agent whose own output comes back to it as a new trigger (a remediation that makes the
    metric drift again) acts ``breaker_limit`` times within ``breaker_window_s`` at most; then the
    breaker opens and stays open until the fingerprint resolves (:func:`reset`).
    """
    state = breaker or Breaker()
    if state.open:
        return BreakerDecision(False, False, state)
    times = (*(t for t in state.times if at - t < rule.breaker_window_s), at)
    if len(times) > rule.breaker_limit:
        reason = (
            f"{len(times)} triggers within {rule.breaker_window_s:.0f}s (limit {rule.breaker_limit}): "
            "the agent's own actions keep re-triggering it"
        )
        return BreakerDecision(False, True, Breaker(times, True, reason))
    return BreakerDecision(True, False, Breaker(times, False, ""))


def reset() -> Breaker:
    """The breaker after the fingerprint resolved: closed, no history."""
    return Breaker()
