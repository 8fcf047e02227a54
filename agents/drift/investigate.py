"""The investigate agent (warning tier): a diagnostic report for each routed warning.

The report holds the metric's recent values (the router's decisions for its fingerprint), the
baseline and the detector's numbers from the event, and the change events Vigil processed around
it (``vigil.runs`` of ``cdc.*`` triggers in the hour before). It is filed twice, in the event's
transaction: as a review item (``vigil review list``: a human reads it, approving it writes
nothing) and as an outbox event (``vigil.outbox.drift-reports``) for any sink.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from agents.api import agent
from agents.context import Context, derived_id
from agents.drift import state
from streams.catalog import DRIFT_WARNING

NAME = "drift-investigate"
REPORTS = "drift-reports"
RELATED_WINDOW_S = 3600


@agent(DRIFT_WARNING, name=NAME)
async def investigate(event: Any, ctx: Context) -> None:
    record = dict(event.record)
    if record["severity"] == "resolved":
        ctx.step("resolved: nothing to investigate")
        return
    fp = state.fingerprint_of(record)
    at = state.ts(state.epoch(record))
    recent = await ctx.session.execute(
        text(
            "SELECT value, severity, observed_at FROM vigil.drift_decisions WHERE fingerprint = :fp "
            "ORDER BY observed_at DESC LIMIT 20"
        ),
        {"fp": fp},
    )
    changes = await ctx.session.execute(
        text(
            "SELECT trigger, count(*), max(finished_at) FROM vigil.runs WHERE trigger LIKE 'cdc.%' "
            "AND finished_at BETWEEN :at - make_interval(secs => :window) AND :at GROUP BY trigger "
            "ORDER BY 2 DESC LIMIT 10"
        ),
        {"at": at, "window": RELATED_WINDOW_S},
    )
    report = {
        "fingerprint": fp,
        "source": record["source"],
        "metric": record["metric"],
        "labels": record["labels"],
        "observed_at": at,
        "value": record["value"],
        "detector": {"statistic": record["statistic"], "score": record["score"]},
        "baseline": record["baseline"],
        "recent_values": [{"value": v, "severity": s, "observed_at": o} for v, s, o in recent],
        "related_changes": [{"topic": t, "events": n, "last_at": last} for t, n, last in changes],
        "event_id": ctx.event_id,
    }
    ctx.step("report", recent=len(report["recent_values"]), related=len(report["related_changes"]))
    ctx.emit(REPORTS, key=fp, type="drift.report", payload=report)
    summary = (
        f"drift report: {record['metric']} from {record['source']} is {record['severity']} "
        f"({record['statistic']}={record['score']:.4g}, value {record['value']:.4g}); "
        f"{len(report['recent_values'])} recent value(s), {len(report['related_changes'])} related change stream(s)"
    )
    # A review item of the event's own: ids derived from the event, so a retry files it once.
    await ctx.session.execute(
        text(
            "INSERT INTO vigil.reviews (id, agent, event_id, run_id, reason, proposed) "
            "VALUES (:id, :agent, :event_id, :run_id, :reason, '[]'::jsonb) ON CONFLICT (id) DO NOTHING"
        ),
        {
            "id": derived_id(ctx.event_id, ctx.agent, "review", 0),
            "agent": ctx.agent,
            "event_id": ctx.event_id,
            "run_id": derived_id(ctx.event_id, ctx.agent, "review-run", 0),
            "reason": summary + " " + json.dumps({"fingerprint": fp}),
        },
    )
