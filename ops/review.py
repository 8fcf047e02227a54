"""``vigil review list|approve|reject``: the human review queue of rejected agent output.

A review item holds the outbox rows an agent proposed when its validator rejected them. Approving
writes those rows to the outbox (with their original ids, so an approval repeated or raced is
still one side effect) and marks the item approved, in one transaction; rejecting only marks it.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import psycopg
from rich.console import Console

from ops.output import print_json, print_table
from ops.services import stack
from schemas.errors import ConfigurationError
from streams.settings import Settings

LIST_SQL = """
SELECT id, agent, event_id, reason, proposed, status, created_at, decided_by, decided_at
FROM vigil.reviews WHERE (%(all)s OR status = 'pending') ORDER BY created_at LIMIT %(limit)s
"""


def _url(settings: Settings) -> str:
    return stack.attach(settings).require_database_url()


def list_items(settings: Settings, console: Console, *, show_all: bool, limit: int, as_json: bool) -> None:
    with psycopg.connect(_url(settings)) as conn:
        cur = conn.execute(LIST_SQL, {"all": show_all, "limit": limit})
        names = [c.name for c in cur.description or []]
        items = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if as_json:
        print_json(items)
        return
    print_table(
        console,
        "Review queue" + (" (all)" if show_all else " (pending)"),
        ["id", "agent", "event id", "reason", "proposed", "status"],
        [
            [
                str(i["id"]),
                i["agent"],
                i["event_id"],
                i["reason"],
                f"{len(i['proposed'])} outbox row(s)",
                i["status"],
            ]
            for i in items
        ],
    )


def decide(settings: Settings, console: Console, item_id: str, *, approve: bool, who: str | None) -> None:
    decided_by = who or getpass.getuser()
    status = "approved" if approve else "rejected"
    with psycopg.connect(_url(settings)) as conn, conn.transaction():
        row = conn.execute(
            "SELECT status, proposed, event_id FROM vigil.reviews WHERE id::text = %s FOR UPDATE", (item_id,)
        ).fetchone()
        if row is None:
            raise ConfigurationError(f"no review item {item_id}: see `vigil review list`")
        current, proposed, event_id = row
        if current != "pending":
            raise ConfigurationError(f"review item {item_id} is already {current}")
        written = 0
        if approve:
            written = _write_outbox(conn, proposed, event_id)
        conn.execute(
            "UPDATE vigil.reviews SET status = %s, decided_by = %s, decided_at = now() WHERE id::text = %s",
            (status, decided_by, item_id),
        )
    console.print(
        f"review item {item_id} {status} by {decided_by}"
        + (f"; {written} outbox row(s) written" if approve else "")
    )


def _write_outbox(conn: psycopg.Connection[Any], proposed: list[dict[str, Any]], event_id: str) -> int:
    written = 0
    for entry in proposed:
        cur = conn.execute(
            "INSERT INTO vigil.outbox (id, aggregatetype, aggregateid, type, payload, source_event_id, trace_id) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (id) DO NOTHING",
            (
                entry["id"],
                entry["aggregatetype"],
                entry["aggregateid"],
                entry["type"],
                json.dumps(entry["payload"]),
                event_id,
                event_id,
            ),
        )
        written += cur.rowcount
    return written
