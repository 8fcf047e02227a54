"""The two-tier drift router: ``drift.events`` → ``drift.warning`` / ``drift.critical``.

A built-in agent on the same unit of work as any other: its state (the incident of each
fingerprint, and a record of each decision) is written through ``ctx.session`` in the event's
transaction, and its output is sent with ``ctx.send`` (an id derived from the input), so a
redelivered or replayed event is decided once. The decisions themselves are
:func:`streams.drift_router.route`.
"""

from __future__ import annotations

from typing import Any

from agents.api import agent
from agents.context import Context
from agents.drift import state
from streams.catalog import DRIFT_CRITICAL, DRIFT_EVENTS, DRIFT_WARNING
from streams.drift_router import Signal, route

NAME = "drift-router"
TOPICS = {"warning": DRIFT_WARNING, "critical": DRIFT_CRITICAL}


@agent(DRIFT_EVENTS, name=NAME)
async def drift_router(event: Any, ctx: Context) -> None:
    record = dict(event.record)
    fp = state.fingerprint_of(record)
    rule = state.policy().rule_for(record["source"], record["metric"])
    signal = Signal(fp, record["source"], record["severity"], state.epoch(record), record["labels"])
    incident = await state.load_incident(ctx.session, fp)
    criticals = await state.open_criticals(ctx.session, signal.source) if signal.severity == "warning" else []
    decision = route(signal, incident, criticals, rule)
    if decision.incident is not None:
        await state.save_incident(ctx.session, decision.incident, record["metric"], ctx.event_id)
    await state.record_decision(ctx.session, ctx.event_id, fp, record, decision.tier, decision.reason)
    ctx.step("route", fingerprint=fp, tier=decision.tier, reason=decision.reason)
    if decision.tier is None:
        return
    routed = {**record, "fingerprint": fp, "severity": decision.severity}
    # The id ctx.send gives the message (derived from this event): the record carries it too.
    routed["id"] = f"{ctx.event_id}/{ctx.agent}/{len(ctx.output.sends)}"
    if decision.reason != "routed":
        routed["labels"] = {**record["labels"], "vigil_route_reason": decision.reason}
    ctx.send(TOPICS[decision.tier], state.codec().encode("DriftEvent", routed), key=fp.encode())
