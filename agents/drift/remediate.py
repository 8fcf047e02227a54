"""The remediate agent (critical tier): runs the remediation the policy configures for the metric.

The action is an outbox event (``vigil.outbox.<aggregatetype>``, type the action's name) that a
sink delivers, e.g. a webhook that scales or rolls back. With ``approval = true`` the validator
holds it: the event's output becomes a review item, and ``vigil review approve ID`` writes the
action once.

The circuit breaker: when this agent is triggered for one fingerprint more than ``breaker_limit``
times within ``breaker_window_s`` (its own actions making the metric drift again: a loop), it
opens, the agent stops acting on that fingerprint, and one critical alert says why (an outbox
event on ``vigil.outbox.drift-alerts`` and a row that ``vigil status`` reports). A ``resolved``
event for the fingerprint closes it again.
"""

from __future__ import annotations

from typing import Any

from agents.api import agent
from agents.context import Context, Output
from agents.drift import state
from streams.catalog import DRIFT_CRITICAL
from streams.drift_router import reset, trip

NAME = "drift-remediate"
ALERTS = "drift-alerts"


def approval_gate(event: Any, output: Output) -> bool | str:
    """Hold a remediation that the policy puts behind an approval (it goes to the review queue)."""
    rule = state.policy().rule_for(event.record["source"], event.record["metric"])
    remediation = rule.remediation
    if remediation is None or not remediation.approval:
        return True
    if any(row.aggregatetype == remediation.aggregatetype for row in output.outbox):
        return (
            f"approval required: {remediation.action} for {event.record['metric']} ({event.record['source']})"
        )
    return True


@agent(DRIFT_CRITICAL, name=NAME, validate=approval_gate)
async def remediate(event: Any, ctx: Context) -> None:
    record = dict(event.record)
    fp = state.fingerprint_of(record)
    if record["severity"] == "resolved":
        await state.save_breaker(ctx.session, ctx.agent, fp, reset())
        ctx.step("resolved: breaker reset", fingerprint=fp)
        return
    rule = state.policy().rule_for(record["source"], record["metric"])
    decision = trip(await state.load_breaker(ctx.session, ctx.agent, fp), state.epoch(record), rule)
    await state.save_breaker(ctx.session, ctx.agent, fp, decision.breaker)
    if decision.opened_now:
        ctx.emit(
            ALERTS,
            key=fp,
            type="circuit-breaker-open",
            payload={
                "severity": "critical",
                "agent": ctx.agent,
                "fingerprint": fp,
                "source": record["source"],
                "metric": record["metric"],
                "reason": decision.breaker.reason,
                "event_id": ctx.event_id,
            },
        )
    if not decision.act:
        ctx.step("circuit breaker open: not acting", fingerprint=fp, reason=decision.breaker.reason)
        return
    remediation = rule.remediation
    if remediation is None:
        ctx.step("no remediation configured", metric=record["metric"])
        ctx.emit(
            ALERTS, key=fp, type="unremediated", payload={**_about(record, fp), "event_id": ctx.event_id}
        )
        return
    ctx.step("remediate", action=remediation.action, fingerprint=fp)
    ctx.emit(
        remediation.aggregatetype,
        key=fp,
        type=remediation.action,
        payload={
            "action": remediation.action,
            "params": dict(remediation.params),
            **_about(record, fp),
            "event_id": ctx.event_id,
        },
    )


def _about(record: dict[str, Any], fp: str) -> dict[str, Any]:
    return {
        "fingerprint": fp,
        "source": record["source"],
        "metric": record["metric"],
        "labels": record["labels"],
        "severity": record["severity"],
        "statistic": record["statistic"],
        "score": record["score"],
        "value": record["value"],
        "observed_at": record["observed_at"],
    }
