"""The dashboard at ``GET /``: one server-rendered page (no front-end build), refreshed by a meta tag.

It shows agents, heartbeats, connectors, open alerts grouped by tier (critical, warning), the review
queue (approve/reject forms), the dead letters on ``vigil.dlq`` (a re-drive form each), recent runs
with their traces, and a topic browser (``GET /?topic=T&key=K&limit=N``: the newest messages, decoded,
with their headers). Every write form carries the ingest token in a password field (the server also
takes ``Authorization: Bearer``). Everything shown is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
from confluent_kafka import KafkaException

from ops.browse import DeadLetter, dead_letters, latest
from ops.status import collect
from ops.tail import TailedMessage
from schemas.errors import VigilError
from streams.settings import Settings

RUNS_SHOWN = 25
LETTERS_SHOWN = 50
#: Alert tiers, most urgent first. Vigil's own alerts (absence, repeated failures) are critical.
TIERS = ("critical", "warning")
ALERTS_SQL = """
SELECT tier, 'drift', source || ' ' || metric, opened_at, labels::text
FROM vigil.drift_incidents WHERE status = 'open'
UNION ALL
SELECT 'critical', kind, subject, opened_at, detail::text FROM vigil.alerts WHERE status = 'open'
ORDER BY 4 DESC
"""


@dataclass(frozen=True)
class Browse:
    """What the topic browser was asked for."""

    topic: str
    key: str | None = None
    limit: int = 20


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(title: str, columns: list[str], rows: list[list[str]], *, section_id: str = "") -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    empty = "" if rows else f'<tr><td colspan="{len(columns)}">none</td></tr>'
    ident = f' id="{_e(section_id)}"' if section_id else ""
    return f"<section{ident}><h2>{_e(title)}</h2><table><tr>{head}</tr>{body}{empty}</table></section>"


def _token_field() -> str:
    return '<input type="password" name="token" placeholder="ingest token" autocomplete="current-password">'


def alerts_by_tier(rows: Sequence[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    """Open alert rows ``(tier, kind, subject, opened_at, detail)`` grouped by tier, every tier present."""
    grouped: dict[str, list[tuple[Any, ...]]] = {tier: [] for tier in TIERS}
    for row in rows:
        grouped.setdefault(str(row[0]), []).append(row)
    return grouped


def _query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _alerts_section(url: str) -> str:
    grouped = alerts_by_tier(_query(url, ALERTS_SQL))
    parts = []
    for tier, rows in grouped.items():
        cells = [[_e(r[1]), _e(r[2]), _e(r[3]), _e(r[4])] for r in rows]
        table = _table(f"{tier} ({len(rows)})", ["kind", "subject", "opened", "detail"], cells)
        parts.append(f'<div class="tier" id="alerts-{_e(tier)}">{table}</div>')
    return '<section id="alerts"><h2>Open alerts</h2>' + "".join(parts) + "</section>"


def _letters_section(settings: Settings) -> str:
    try:
        letters = dead_letters(settings, LETTERS_SHOWN)
    except (VigilError, KafkaException) as exc:
        return f'<section id="dlq"><h2>Dead letters</h2><p class="problem">{_e(exc)}</p></section>'
    return _table(
        "Dead letters (newest first)",
        ["at", "when", "agent", "from", "error", "re-drive"],
        [_letter_row(letter) for letter in letters],
        section_id="dlq",
    )


def _letter_row(letter: DeadLetter) -> list[str]:
    ident = f"{letter.partition}-{letter.offset}"
    if letter.agent is None:
        action = "names no agent: <code>vigil replay vigil.dlq --agent NAME</code>"
    else:
        action = (
            f'<form method="post" action="/dlq/{letter.partition}/{letter.offset}/redrive">{_token_field()}'
            f'<button id="redrive-{ident}">re-drive through {_e(letter.agent)}</button></form>'
        )
    return [
        _e(f"{letter.partition}/{letter.offset}"),
        _e(letter.timestamp),
        _e(letter.agent),
        _e(letter.source),
        _e(letter.error),
        action,
    ]


def _message_row(message: TailedMessage) -> list[str]:
    headers = "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in message.headers)
    value = json.dumps(message.value.value, ensure_ascii=False, default=str, indent=1)
    return [
        _e(f"{message.partition}/{message.offset}"),
        _e(message.timestamp),
        _e(json.dumps(message.key, ensure_ascii=False)),
        headers,
        _e(message.value.format),
        f"<pre>{_e(value)}</pre>",
    ]


def _browser_section(settings: Settings, browse: Browse | None) -> str:
    topic = "" if browse is None else browse.topic
    key = "" if browse is None or browse.key is None else browse.key
    limit = 20 if browse is None else browse.limit
    form = (
        '<form method="get" action="/#topic-browser" id="browse">'
        f'<input name="topic" placeholder="topic" value="{_e(topic)}" required>'
        f'<input name="key" placeholder="key (optional)" value="{_e(key)}">'
        f'<input name="limit" type="number" min="1" max="200" value="{_e(limit)}">'
        "<button>show</button></form>"
    )
    if browse is None:
        return f'<section id="topic-browser"><h2>Topic browser</h2>{form}</section>'
    try:
        messages = latest(settings, browse.topic, key=browse.key, limit=browse.limit)
    except (VigilError, KafkaException) as exc:
        return f'<section id="topic-browser"><h2>Topic browser</h2>{form}<p class="problem">{_e(exc)}</p></section>'
    title = f"Topic browser: {browse.topic}" + (f" key {browse.key}" if browse.key is not None else "")
    table = _table(
        title,
        ["at", "when", "key", "headers", "format", "value"],
        [_message_row(m) for m in messages],
    )
    return f'<section id="topic-browser">{form}{table}</section>'


def render(settings: Settings, browse: Browse | None = None, note: str | None = None) -> str:
    """The whole page; ``browse`` fills the topic browser, ``note`` says what the last action did."""
    url = settings.require_database_url()
    report = collect(settings)
    agents = [[_e(a.get("name")), _e(a.get("status")), _e(a.get("last_run_at"))] for a in report.agents]
    beats = [
        [_e(h.get("name")), _e(h.get("status")), _e(h.get("last_beat_at")), _e(h.get("next_expected_at"))]
        for h in report.heartbeats
    ]
    connectors = [[_e(c.get("name")), _e(c.get("state") or c.get("status"))] for c in report.connectors]
    reviews = [
        [
            _e(r[1]),
            _e(r[2]),
            _e(r[3]),
            f'<form method="post" action="/review/{_e(r[0])}/approve">{_token_field()}'
            f'<button name="decision" value="approve" id="approve-{_e(r[0])}">approve</button></form>'
            f'<form method="post" action="/review/{_e(r[0])}/reject">{_token_field()}'
            f'<button id="reject-{_e(r[0])}">reject</button></form>',
        ]
        for r in _query(
            url,
            "SELECT id, agent, event_id, reason, created_at FROM vigil.reviews WHERE status = 'pending' "
            "ORDER BY created_at DESC LIMIT 100",
        )
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
        for r in _query(
            url,
            "SELECT run_id, agent, event_id, status, started_at, error, trace FROM vigil.runs "
            "ORDER BY started_at DESC LIMIT %s",
            (RUNS_SHOWN,),
        )
    ]
    dlq = report.dlq
    # A browsing page is not refreshed: each refresh would read the topic again.
    refresh = "" if browse is not None else '<meta http-equiv="refresh" content="10">'
    return (
        f'<!doctype html><html><head><meta charset="utf-8">{refresh}'
        "<title>Vigil</title><style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top;font-size:13px}"
        "pre{margin:0}.problem{color:#a00}</style></head><body>"
        "<h1>Vigil</h1>"
        + (f'<p class="note" id="note">{_e(note)}</p>' if note else "")
        + "".join(f'<p class="problem">{_e(p)}</p>' for p in report.problems)
        + _table("Agents", ["agent", "status", "last run"], agents)
        + _alerts_section(url)
        + _table("Review queue", ["agent", "event", "reason", "decide"], reviews, section_id="reviews")
        + _table(
            "Recent runs", ["agent", "event", "status", "started", "error", "trace"], runs, section_id="runs"
        )
        + _browser_section(settings, browse)
        + f"<p>{_e(dlq.get('dead_lettered'))} run(s) dead-lettered, {_e(dlq.get('last_hour'))} in the last "
        "hour; a re-drive runs the letter through its agent like "
        "<code>vigil replay vigil.dlq --agent NAME</code> (processed once, however often).</p>"
        + _letters_section(settings)
        + _table("Heartbeats", ["name", "status", "last beat", "next expected"], beats)
        + _table("Connectors", ["connector", "state"], connectors)
        + "</body></html>"
    )


def note_location(note: str) -> str:
    """Where to send the browser after an action: back to the page, saying what happened."""
    return "/?note=" + quote(note)
