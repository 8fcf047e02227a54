"""Bookkeeping in ``vigil.deliveries``: one row per (sink, outbox id), the record of what is done.

A delivery is claimed (row inserted as ``pending``, or its attempt counted) and committed before
each attempt, then marked ``delivered`` or ``failed``. A ``delivered`` row is never attempted
again. Each function runs one statement on the caller's connection; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from agents.sinks.decisions import DELIVERED, FAILED, PENDING


@dataclass(frozen=True)
class Claim:
    """The delivery row after claiming: ``attempts`` includes the attempt about to be made."""

    status: str
    attempts: int
    last_error: str | None


_CLAIM = text(
    f"""
    INSERT INTO vigil.deliveries AS d (sink, outbox_id, status, attempts)
    VALUES (:sink, CAST(:outbox_id AS uuid), '{PENDING}', 1)
    ON CONFLICT (sink, outbox_id) DO UPDATE SET
        attempts = CASE
            WHEN d.status = '{PENDING}' THEN d.attempts + 1
            WHEN d.status = '{FAILED}' AND :retry_failed THEN 1
            ELSE d.attempts END,
        status = CASE
            WHEN d.status = '{FAILED}' AND :retry_failed THEN '{PENDING}'
            ELSE d.status END
    RETURNING status, attempts, last_error
    """
)


def claim(conn: Connection, sink: str, outbox_id: str, *, retry_failed: bool = False) -> Claim:
    """Insert the row as pending, or count one more attempt on a pending one; return its state."""
    row = conn.execute(_CLAIM, {"sink": sink, "outbox_id": outbox_id, "retry_failed": retry_failed}).one()
    return Claim(status=row.status, attempts=row.attempts, last_error=row.last_error)


def mark_delivered(conn: Connection, sink: str, outbox_id: str) -> None:
    conn.execute(
        text(
            f"UPDATE vigil.deliveries SET status = '{DELIVERED}', delivered_at = now(), last_error = NULL "
            "WHERE sink = :sink AND outbox_id = CAST(:outbox_id AS uuid)"
        ),
        {"sink": sink, "outbox_id": outbox_id},
    )


def record_error(conn: Connection, sink: str, outbox_id: str, error: str) -> None:
    conn.execute(
        text(
            "UPDATE vigil.deliveries SET last_error = :error "
            "WHERE sink = :sink AND outbox_id = CAST(:outbox_id AS uuid)"
        ),
        {"sink": sink, "outbox_id": outbox_id, "error": error},
    )


def mark_failed(conn: Connection, sink: str, outbox_id: str, error: str) -> None:
    conn.execute(
        text(
            f"UPDATE vigil.deliveries SET status = '{FAILED}', last_error = :error "
            f"WHERE sink = :sink AND outbox_id = CAST(:outbox_id AS uuid) AND status <> '{DELIVERED}'"
        ),
        {"sink": sink, "outbox_id": outbox_id, "error": error},
    )


def status_counts(conn: Connection, sink: str) -> dict[str, int]:
    """How many deliveries of ``sink`` are in each status."""
    rows = conn.execute(
        text("SELECT status, count(*) AS n FROM vigil.deliveries WHERE sink = :sink GROUP BY status"),
        {"sink": sink},
    )
    return {row.status: int(row.n) for row in rows}
