"""``vigil status``: agents and their recent runs, failures, review queue, outbox backlog,
overdue heartbeats and connector health, from Postgres (the source of truth) and the connectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from rich.console import Console

from ops.connectors_cli import connector_files, connector_health
from ops.output import print_json, print_table
from ops.services import stack
from schemas.errors import VigilError
from streams.redact import mask_urls_in
from streams.settings import Settings


@dataclass
class StatusReport:
    agents: list[dict[str, Any]] = field(default_factory=list)
    recent_failures: list[dict[str, Any]] = field(default_factory=list)
    pending_reviews: int = 0
    #: Unsent outbox rows when the worker relays them; None when Debezium's outbox router does
    #: (its backlog is the outbox connector's slot lag).
    outbox_backlog: int | None = 0
    overdue_heartbeats: list[dict[str, Any]] = field(default_factory=list)
    connectors: list[dict[str, Any]] = field(default_factory=list)
    #: Drift agents that stopped acting on a fingerprint because their actions kept re-triggering them.
    open_breakers: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


AGENTS_SQL = """
SELECT agent,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'rejected') AS rejected,
       max(finished_at) AS last_run_at
FROM vigil.runs GROUP BY agent ORDER BY agent
"""
FAILURES_SQL = """
SELECT agent, event_id, attempt, finished_at, error FROM vigil.runs
WHERE status = 'failed' ORDER BY finished_at DESC NULLS LAST LIMIT 5
"""
OVERDUE_SQL = """
SELECT name, last_beat_at, next_expected_at FROM vigil.heartbeats
WHERE status <> 'paused' AND next_expected_at + make_interval(secs => grace_seconds) < now()
ORDER BY next_expected_at
"""


BREAKERS_SQL = """
SELECT agent, fingerprint, reason, opened_at FROM vigil.drift_breakers WHERE open ORDER BY opened_at
"""


OUTBOX_ROUTER = "io.debezium.transforms.outbox.EventRouter"


def debezium_relays_outbox(settings: Settings) -> bool:
    """Whether one of the connectors Vigil runs is an outbox connector (the Outbox Event Router)."""
    return any(OUTBOX_ROUTER in path.read_text() for path in connector_files(settings, None))


def collect(settings: Settings) -> StatusReport:
    report = StatusReport()
    resolved = stack.attach(settings)
    if resolved.database_url is None:
        report.problems.append("no database: `vigil services up` or set VIGIL_DATABASE_URL")
    else:
        try:
            with psycopg.connect(resolved.database_url, connect_timeout=5) as conn:
                cur = conn.execute(AGENTS_SQL)
                names = [c.name for c in cur.description or []]
                report.agents = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                cur = conn.execute(FAILURES_SQL)
                names = [c.name for c in cur.description or []]
                report.recent_failures = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                row = conn.execute("SELECT count(*) FROM vigil.reviews WHERE status = 'pending'").fetchone()
                report.pending_reviews = int(row[0]) if row else 0
                if debezium_relays_outbox(settings):
                    report.outbox_backlog = None
                else:
                    row = conn.execute("SELECT count(*) FROM vigil.outbox WHERE sent_at IS NULL").fetchone()
                    report.outbox_backlog = int(row[0]) if row else 0
                cur = conn.execute(OVERDUE_SQL)
                names = [c.name for c in cur.description or []]
                report.overdue_heartbeats = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                cur = conn.execute(BREAKERS_SQL)
                names = [c.name for c in cur.description or []]
                report.open_breakers = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            report.problems.append(f"database: {mask_urls_in(str(exc))}")
    try:
        report.connectors = [h.as_dict() for h in connector_health(settings)]
    except VigilError as exc:
        report.problems.append(f"connectors: {exc}")
    for connector in report.connectors:
        if not connector["running"]:
            report.problems.append(f"connector {connector['name']} is {connector['state']}")
    for breaker in report.open_breakers:
        report.problems.append(
            f"critical: circuit breaker open for agent {breaker['agent']} on drift {breaker['fingerprint']}: "
            f"{breaker['reason']}"
        )
    if report.overdue_heartbeats:
        report.problems.append(f"{len(report.overdue_heartbeats)} heartbeat(s) overdue")
    return report


def show(settings: Settings, console: Console, *, as_json: bool) -> bool:
    report = collect(settings)
    if as_json:
        print_json(
            {
                "healthy": report.healthy,
                "problems": report.problems,
                "agents": report.agents,
                "recent_failures": report.recent_failures,
                "pending_reviews": report.pending_reviews,
                "outbox_backlog": report.outbox_backlog,
                "overdue_heartbeats": report.overdue_heartbeats,
                "connectors": report.connectors,
                "open_breakers": report.open_breakers,
            }
        )
        return report.healthy
    print_table(
        console,
        "Agents (vigil.runs)",
        ["agent", "succeeded", "failed", "rejected", "last run"],
        [
            [str(a[k]) for k in ("agent", "succeeded", "failed", "rejected", "last_run_at")]
            for a in report.agents
        ],
    )
    if report.recent_failures:
        print_table(
            console,
            "Recent failures (dead-lettered)",
            ["agent", "event id", "attempts", "at", "error"],
            [
                [str(f[k]) for k in ("agent", "event_id", "attempt", "finished_at", "error")]
                for f in report.recent_failures
            ],
        )
    print_table(
        console,
        "Connectors",
        ["name", "mode", "state", "events", "slot lag (bytes)", "detail"],
        [
            [str(c[k]) for k in ("name", "mode", "state", "events", "slot_lag_bytes", "detail")]
            for c in report.connectors
        ],
    )
    backlog = (
        "relayed by Debezium (see its slot lag)"
        if report.outbox_backlog is None
        else f"{report.outbox_backlog} unsent"
    )
    console.print(
        f"review queue: {report.pending_reviews} pending · outbox backlog: {backlog} · "
        f"overdue heartbeats: {len(report.overdue_heartbeats)}"
    )
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}")
    return report.healthy
