"""``vigil status``: agents and their recent runs, failures, review queue, outbox backlog, the
outbox relays' health and last error, overdue heartbeats and connector health, from Postgres (the
source of truth) and the connectors.

An outbox relay (a worker's thread, or the ``vigil relay`` process) beats the heartbeat
``relay:<app_id>`` only after successful rounds and keeps its counters, last error and process in
the row's ``detail`` (:mod:`agents.relay`); an overdue relay heartbeat means the relay has been failing, stuck or gone for longer than its threshold.

``--json`` follows ``ops/status.schema.json`` (``schema_version`` names its version); a field is
added without a version change, a field removed or changed in meaning bumps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from rich.console import Console

from agents.heartbeats import describe, sort_overdue_first
from connectors.database import SLOTS_SQL
from ops.connectors_cli import connector_files, connector_health
from ops.output import print_json, print_table
from ops.services import stack
from schemas.errors import VigilError
from streams.redact import mask_urls_in
from streams.settings import Settings

#: Version of the ``--json`` document (``ops/status.schema.json``).
SCHEMA_VERSION = 1


@dataclass
class StatusReport:
    agents: list[dict[str, Any]] = field(default_factory=list)
    #: Every heartbeat with its state, overdue ones first.
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    #: Vigil's own open alerts (absence, repeated failures).
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    #: Dead-lettered runs recorded (each one a message on vigil.dlq).
    dlq: dict[str, int] = field(default_factory=lambda: {"dead_lettered": 0, "last_hour": 0})
    replication_slots: list[dict[str, Any]] = field(default_factory=list)
    #: Things to look at that do not make Vigil unhealthy (an inactive slot retaining WAL).
    warnings: list[str] = field(default_factory=list)
    recent_failures: list[dict[str, Any]] = field(default_factory=list)
    pending_reviews: int = 0
    #: Unsent outbox rows when the worker relays them; None when Debezium's outbox router does
    #: (its backlog is the outbox connector's slot lag).
    outbox_backlog: int | None = 0
    #: Age in seconds of the oldest unsent outbox row (None: none, or Debezium relays).
    outbox_oldest_unsent_s: float | None = None
    #: One entry per worker relay heartbeat: name, state, last beat, and its counters and last error.
    relays: list[dict[str, Any]] = field(default_factory=list)
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
       max(finished_at) AS last_run_at,
       count(*) FILTER (WHERE started_at > now() - interval '1 hour') AS runs_last_hour,
       count(*) FILTER (WHERE status IN ('failed', 'dead-lettered')
                        AND started_at > now() - interval '1 hour') AS failures_last_hour
FROM vigil.runs GROUP BY agent ORDER BY agent
"""
CONSECUTIVE_SQL = """
SELECT count(*) FROM vigil.runs
WHERE agent = %(agent)s AND status IN ('failed', 'dead-lettered')
  AND finished_at > coalesce((SELECT max(finished_at) FROM vigil.runs
                              WHERE agent = %(agent)s AND status IN ('succeeded', 'rejected')), '-infinity')
"""
HEARTBEATS_SQL = """
SELECT name, every_seconds, grace_seconds, last_beat_at, next_expected_at, status, detail, now() AS now
FROM vigil.heartbeats
"""
ALERTS_SQL = """
SELECT kind, subject, since, opened_at, event_id, detail FROM vigil.alerts WHERE status = 'open' ORDER BY opened_at
"""
DLQ_SQL = """
SELECT count(*), count(*) FILTER (WHERE started_at > now() - interval '1 hour')
FROM vigil.runs WHERE status IN ('failed', 'dead-lettered')
"""
FAILURES_SQL = """
SELECT agent, event_id, attempt, finished_at, error FROM vigil.runs
WHERE status = 'failed' ORDER BY finished_at DESC NULLS LAST LIMIT 5
"""
OVERDUE_SQL = """
SELECT name, last_beat_at, next_expected_at FROM vigil.heartbeats
WHERE status <> 'paused' AND next_expected_at + make_interval(secs => grace_seconds) < now()
  AND name NOT LIKE 'relay:%'
ORDER BY next_expected_at
"""
RELAYS_SQL = """
SELECT name, status, last_beat_at,
       status <> 'paused' AND next_expected_at + make_interval(secs => grace_seconds) < now() AS overdue,
       detail
FROM vigil.heartbeats WHERE name LIKE 'relay:%' ORDER BY name
"""
BACKLOG_SQL = """
SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM vigil.outbox WHERE sent_at IS NULL
"""
RELAY_DETAIL_FIELDS = (
    "published",
    "errors",
    "last_success_at",
    "last_error",
    "last_error_at",
    "worker",
    "runs_in",
)


def relay_entry(name: str, status: str, last_beat_at: Any, overdue: bool, detail: Any) -> dict[str, Any]:
    """A relay heartbeat row as ``vigil status`` shows it: its state and what its detail says."""
    detail = detail if isinstance(detail, dict) else {}
    state = "paused" if status == "paused" else "unhealthy" if overdue else "ok"
    return {
        "name": name,
        "state": state,
        "last_beat_at": last_beat_at,
        **{key: detail.get(key) for key in RELAY_DETAIL_FIELDS},
    }


def relay_process(entry: dict[str, Any]) -> str:
    """Where a relay runs, as the status table shows it: ``vigil relay host:pid`` or ``worker host:pid``."""
    where = entry.get("worker") or "?"
    return f"{entry.get('runs_in') or 'worker'} {where}"


RECENT_RUNS_SQL = """
SELECT agent,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status IN ('failed', 'dead-lettered')) AS failed
FROM vigil.runs WHERE started_at > now() - make_interval(secs => %(seconds)s) GROUP BY agent
"""


def recent_runs(database_url: str, seconds: float = 60.0) -> dict[str, tuple[int, int]]:
    """Per agent, its runs started in the last ``seconds``: (succeeded, failed or dead-lettered)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        rows = conn.execute(RECENT_RUNS_SQL, {"seconds": seconds}).fetchall()
    return {str(agent): (int(ok), int(failed)) for agent, ok, failed in rows}


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
                    row = conn.execute(BACKLOG_SQL).fetchone()
                    report.outbox_backlog = int(row[0]) if row else 0
                    report.outbox_oldest_unsent_s = float(row[1]) if row and row[1] is not None else None
                report.relays = [relay_entry(*row) for row in conn.execute(RELAYS_SQL).fetchall()]
                cur = conn.execute(OVERDUE_SQL)
                names = [c.name for c in cur.description or []]
                report.overdue_heartbeats = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                cur = conn.execute(BREAKERS_SQL)
                names = [c.name for c in cur.description or []]
                report.open_breakers = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                _collect_watch(conn, report)
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
    for alert in report.open_alerts:
        report.problems.append(f"critical: {alert_text(alert)}")
    for slot in report.replication_slots:
        retained = slot["retained_wal_bytes"]
        if not slot["active"] and retained:
            report.warnings.append(
                f"replication slot {slot['slot_name']} is inactive and retains {retained / 1e6:.1f} MB of WAL: "
                f"drop it if its connector is gone (`vigil connectors remove`, or "
                f"SELECT pg_drop_replication_slot('{slot['slot_name']}')), else restart the connector"
            )
    for relay in report.relays:
        if relay["state"] == "unhealthy":
            report.problems.append(
                f"outbox relay {relay['name']} has not succeeded since {relay['last_beat_at']}; "
                f"last error: {relay['last_error'] or 'none (stuck, or its worker is gone)'}"
            )
    return report


def alert_text(alert: dict[str, Any]) -> str:
    detail = alert["detail"] if isinstance(alert["detail"], dict) else {}
    if alert["kind"] == "absence":
        return f"heartbeat {alert['subject']} absent since {alert['since']}"
    return (
        f"agent {alert['subject']} failed {detail.get('streak', '?')} runs in a row since {alert['since']}"
        f" (last error: {detail.get('last_error')})"
    )


def _rows(
    conn: psycopg.Connection[Any], sql: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _collect_watch(conn: psycopg.Connection[Any], report: StatusReport) -> None:
    """Heartbeats, alerts, DLQ, per-agent streaks and lag, replication slots."""
    beats = _rows(conn, HEARTBEATS_SQL)
    report.heartbeats = sort_overdue_first([describe(row) for row in beats])
    report.open_alerts = _rows(conn, ALERTS_SQL)
    row = conn.execute(DLQ_SQL).fetchone()
    report.dlq = {"dead_lettered": int(row[0]), "last_hour": int(row[1])} if row else report.dlq
    report.replication_slots = _rows(conn, SLOTS_SQL)
    details = {b["name"][len("agent:") :]: b["detail"] or {} for b in beats if b["name"].startswith("agent:")}
    known = {a["agent"] for a in report.agents}
    for name in sorted(set(details) - known):
        report.agents.append(
            {"agent": name, "succeeded": 0, "failed": 0, "rejected": 0, "last_run_at": None}
            | {"runs_last_hour": 0, "failures_last_hour": 0}
        )
    for agent in report.agents:
        found = conn.execute(CONSECUTIVE_SQL, {"agent": agent["agent"]}).fetchone()
        agent["consecutive_failures"] = int(found[0]) if found else 0
        lag = details.get(agent["agent"], {}).get("lag")
        agent["lag"] = {str(k): int(v) for k, v in lag.items()} if isinstance(lag, dict) else {}


def show(settings: Settings, console: Console, *, as_json: bool) -> bool:
    report = collect(settings)
    if as_json:
        print_json(
            {
                "schema_version": SCHEMA_VERSION,
                "healthy": report.healthy,
                "problems": report.problems,
                "warnings": report.warnings,
                "agents": report.agents,
                "recent_failures": report.recent_failures,
                "pending_reviews": report.pending_reviews,
                "outbox_backlog": report.outbox_backlog,
                "outbox_oldest_unsent_s": report.outbox_oldest_unsent_s,
                "relays": report.relays,
                "overdue_heartbeats": report.overdue_heartbeats,
                "connectors": report.connectors,
                "open_breakers": report.open_breakers,
                "heartbeats": report.heartbeats,
                "open_alerts": report.open_alerts,
                "dlq": report.dlq,
                "replication_slots": report.replication_slots,
            }
        )
        return report.healthy
    print_table(
        console,
        "Agents (vigil.runs)",
        ["agent", "succeeded", "failed", "rejected", "last run", "runs 1h", "failures 1h", "in a row", "lag"],
        [
            [
                str(a[k])
                for k in (
                    "agent", "succeeded", "failed", "rejected", "last_run_at",
                    "runs_last_hour", "failures_last_hour", "consecutive_failures",
                )
            ]
            + [", ".join(f"{t}={n}" for t, n in a["lag"].items()) or "-"]
            for a in report.agents
        ],
    )  # fmt: skip
    if report.heartbeats:
        print_table(
            console,
            "Heartbeats (overdue first)",
            ["name", "kind", "state", "last beat", "next expected"],
            [
                [h["name"], h["kind"], h["state"], str(h["last_beat_at"] or "never"), h["next_expected_at"]]
                for h in report.heartbeats
            ],
        )
    if report.replication_slots:
        print_table(
            console,
            "Replication slots",
            ["slot", "plugin", "active", "retained WAL (bytes)", "wal status"],
            [
                [str(r[k]) for k in ("slot_name", "plugin", "active", "retained_wal_bytes", "wal_status")]
                for r in report.replication_slots
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
    if report.relays:
        print_table(
            console,
            "Outbox relays (heartbeats relay:*)",
            ["name", "state", "process", "published", "errors", "last success", "last error", "at"],
            [
                [str(r["name"]), str(r["state"]), relay_process(r)]
                + [str(r[k]) for k in ("published", "errors", "last_success_at")]
                + [str(r["last_error"] or "-"), str(r["last_error_at"] or "-")]
                for r in report.relays
            ],
        )
    backlog = (
        "relayed by Debezium (see its slot lag)"
        if report.outbox_backlog is None
        else f"{report.outbox_backlog} unsent"
        + (f", oldest {report.outbox_oldest_unsent_s:.0f}s" if report.outbox_oldest_unsent_s else "")
    )
    console.print(
        f"review queue: {report.pending_reviews} pending · outbox backlog: {backlog} · "
        f"overdue heartbeats: {len(report.overdue_heartbeats)} · open alerts: {len(report.open_alerts)} · "
        f"dead-lettered: {report.dlq['dead_lettered']} ({report.dlq['last_hour']} in the last hour)"
    )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}")
    return report.healthy
