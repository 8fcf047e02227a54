"""The dashboard at ``GET /``: one server-rendered page (no front-end build), refreshed by a meta tag.

It shows agents, heartbeats, connectors, open alerts, the review queue (approve/reject forms that
need the ingest token), dead letters and recent runs with their traces. Everything shown is escaped
with :func:`html.escape`. Not yet here (issue #12): the DLQ re-drive button and the topic browser.
"""

from __future__ import annotations

import html
import json
from typing import Any

import psycopg

from ops.status import collect
from streams.settings import Settings

RUNS_SHOWN = 25


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    empty = "" if rows else f'<tr><td colspan="{len(columns)}">none</td></tr>'
    return f"<section><h2>{_e(title)}</h2><table><tr>{head}</tr>{body}{empty}</table></section>"


def _recent_runs(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT run_id, agent, event_id, status, started_at, error, trace FROM vigil.runs "
            "ORDER BY started_at DESC LIMIT %s",
            (RUNS_SHOWN,),
        ).fetchall()


def _pending_reviews(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, agent, event_id, reason, created_at FROM vigil.reviews WHERE status = 'pending' "
            "ORDER BY created_at DESC LIMIT 100"
        ).fetchall()


def render(settings: Settings) -> str:
    """The whole page."""
    url = settings.require_database_url()
    report = collect(settings)
    agents = [[_e(a.get("name")), _e(a.get("status")), _e(a.get("last_run_at"))] for a in report.agents]
    beats = [
        [_e(h.get("name")), _e(h.get("status")), _e(h.get("last_beat_at")), _e(h.get("next_expected_at"))]
        for h in report.heartbeats
    ]
    connectors = [[_e(c.get("name")), _e(c.get("state") or c.get("status"))] for c in report.connectors]
    alerts = sorted(report.open_alerts, key=lambda a: str(a.get("severity") or a.get("tier")))
    alert_rows = [
        [
            _e(a.get("severity") or a.get("tier")),
            _e(a.get("kind")),
            _e(a.get("subject") or a.get("name")),
            _e(a),
        ]
        for a in alerts
    ]
    reviews = [
        [
            _e(r[1]),
            _e(r[2]),
            _e(r[3]),
            f'<form method="post" action="/review/{_e(r[0])}/approve"><input type="password" name="token" '
            f'placeholder="token"><button name="decision" value="approve" id="approve-{_e(r[0])}">approve</button>'
            f'</form><form method="post" action="/review/{_e(r[0])}/reject"><input type="password" name="token" '
            f'placeholder="token"><button id="reject-{_e(r[0])}">reject</button></form>',
        ]
        for r in _pending_reviews(url)
    ]
    runs = [
        [
            _e(r[1]),
            _e(r[2]),
            _e(r[3]),
            _e(r[4]),
            _e(r[5]),
            "<br>".join(_e(json.dumps(step, default=str)) for step in (r[6] or [])),
        ]
        for r in _recent_runs(url)
    ]
    dlq = report.dlq
    return (
        '<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">'
        "<title>Vigil</title><style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top;font-size:13px}</style></head><body>"
        "<h1>Vigil</h1>"
        + "".join(f'<p class="problem">{_e(p)}</p>' for p in report.problems)
        + _table("Agents", ["agent", "status", "last run"], agents)
        + _table("Open alerts", ["tier", "kind", "subject", "detail"], alert_rows)
        + _table("Review queue", ["agent", "event", "reason", "decide"], reviews)
        + _table("Recent runs", ["agent", "event", "status", "started", "error", "trace"], runs)
        + _table("Heartbeats", ["name", "status", "last beat", "next expected"], beats)
        + _table("Connectors", ["connector", "state"], connectors)
        + f"<section><h2>Dead letters</h2><p>{_e(dlq.get('dead_lettered'))} dead-lettered, "
        f"{_e(dlq.get('last_hour'))} in the last hour; re-drive with "
        "<code>vigil replay vigil.dlq --agent NAME</code></p></section>"
        "</body></html>"
    )
