"""Bookkeeping in ``vigil.deliveries``: one row per (sink, outbox id), the record of what is done.

A delivery is claimed (row inserted as ``pending``, or its attempt counted) and committed before
each attempt, then marked ``delivered`` or ``failed``. A ``delivered`` row is never attempted
again. Each function runs one statement on the caller's psycopg connection, which is in autocommit
mode: each statement is its own transaction, one round trip (psycopg prepares the statements
after a few runs). Through SQLAlchemy's ``Connection.execute`` each cost about 0.5 ms more CPU,
and a sink runs two per delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from agents.sinks.decisions import DELIVERED, FAILED, PENDING


@dataclass(frozen=True)
class Claim:
    """The delivery row after claiming: ``attempts`` includes the attempt about to be made."""

    status: str
    attempts: int
    last_error: str | None


_CLAIM = f"""
    INSERT INTO vigil.deliveries AS d (sink, outbox_id, status, attempts)
    VALUES (%(sink)s, %(outbox_id)s::uuid, '{PENDING}', 1)
    ON CONFLICT (sink, outbox_id) DO UPDATE SET
        attempts = CASE
            WHEN d.status = '{PENDING}' THEN d.attempts + 1
            WHEN d.status = '{FAILED}' AND %(retry_failed)s THEN 1
            ELSE d.attempts END,
        status = CASE
            WHEN d.status = '{FAILED}' AND %(retry_failed)s THEN '{PENDING}'
            ELSE d.status END
    RETURNING status, attempts, last_error
    """


def claim(conn: Connection[Any], sink: str, outbox_id: str, *, retry_failed: bool = False) -> Claim:
    """Insert the row as pending, or count one more attempt on a pending one; return its state."""
    row = conn.execute(
        _CLAIM, {"sink": sink, "outbox_id": outbox_id, "retry_failed": retry_failed}
    ).fetchone()
    assert row is not None  # an upsert with RETURNING always returns its row
    return Claim(status=row[0], attempts=row[1], last_error=row[2])


def mark_delivered(conn: Connection[Any], sink: str, outbox_id: str) -> None:
    conn.execute(
        f"UPDATE vigil.deliveries SET status = '{DELIVERED}', delivered_at = now(), last_error = NULL "
        "WHERE sink = %s AND outbox_id = %s::uuid",
        (sink, outbox_id),
    )


def record_error(conn: Connection[Any], sink: str, outbox_id: str, error: str) -> None:
    conn.execute(
        "UPDATE vigil.deliveries SET last_error = %s WHERE sink = %s AND outbox_id = %s::uuid",
        (error, sink, outbox_id),
    )


def mark_failed(conn: Connection[Any], sink: str, outbox_id: str, error: str) -> None:
    conn.execute(
        f"UPDATE vigil.deliveries SET status = '{FAILED}', last_error = %s "
        f"WHERE sink = %s AND outbox_id = %s::uuid AND status <> '{DELIVERED}'",
        (error, sink, outbox_id),
    )


def status_counts(conn: Connection[Any], sink: str) -> dict[str, int]:
    """How many deliveries of ``sink`` are in each status."""
    rows = conn.execute(
        "SELECT status, count(*) FROM vigil.deliveries WHERE sink = %s GROUP BY status", (sink,)
    ).fetchall()
    return {status: int(n) for status, n in rows}
