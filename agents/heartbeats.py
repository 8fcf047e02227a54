"""Heartbeats in ``vigil.heartbeats``: declare one (a dead-man's switch), beat it, list them, remove it.

Used by ``vigil heartbeat …``, ``POST /heartbeat/NAME`` and the worker's own beats (``agent:<name>``).
A beat moves ``next_expected_at`` one period on from now; the absence monitor (:mod:`agents.watch`)
alerts when it is passed by more than the grace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from schemas.errors import ConfigurationError
from streams.watch import alert_record, heartbeat_kind, heartbeat_state

#: Publishes drift records and returns their ids once the broker acknowledged them.
Publish = Callable[[Sequence[Mapping[str, Any]]], list[str]]

_EXPECT = text(
    """
    INSERT INTO vigil.heartbeats AS h (name, every_seconds, grace_seconds, next_expected_at, status)
    VALUES (:name, :every, :grace, now() + make_interval(secs => :every), 'ok')
    ON CONFLICT (name) DO UPDATE SET
        every_seconds = EXCLUDED.every_seconds,
        grace_seconds = EXCLUDED.grace_seconds,
        -- a new period counts from the last beat (or from now when there was none)
        next_expected_at = coalesce(h.last_beat_at, now()) + make_interval(secs => EXCLUDED.every_seconds),
        status = CASE WHEN h.status = 'paused' THEN 'ok' ELSE h.status END
    RETURNING name, every_seconds, grace_seconds, next_expected_at
    """
)
_BEAT = text(
    """
    UPDATE vigil.heartbeats
    SET last_beat_at = now(),
        next_expected_at = now() + make_interval(secs => every_seconds),
        status = CASE WHEN status = 'paused' THEN 'paused' ELSE 'ok' END
    WHERE name = :name
    RETURNING name, last_beat_at, next_expected_at
    """
)
# Vigil's own beats declare themselves: an agent's row appears when a worker first runs it.
_SYSTEM_BEAT = text(
    """
    INSERT INTO vigil.heartbeats AS h
        (name, every_seconds, grace_seconds, last_beat_at, next_expected_at, status, detail)
    VALUES (:name, :every, :grace, now(), now() + make_interval(secs => :every), 'ok', CAST(:detail AS jsonb))
    ON CONFLICT (name) DO UPDATE SET
        every_seconds = EXCLUDED.every_seconds,
        grace_seconds = EXCLUDED.grace_seconds,
        last_beat_at = EXCLUDED.last_beat_at,
        next_expected_at = EXCLUDED.next_expected_at,
        status = CASE WHEN h.status = 'paused' THEN 'paused' ELSE 'ok' END,
        detail = coalesce(h.detail, '{}'::jsonb) || EXCLUDED.detail
    """
)
_DELETE = text("DELETE FROM vigil.heartbeats WHERE name = :name RETURNING name, now() AS now")
# The alerts the heartbeat kept open: its absence alert, and for an agent's beat the agent's
# repeated-failures alert (its monitor reads the agent's heartbeat, so nothing would resolve it).
_OPEN_ALERTS = text(
    """
    SELECT key, kind, subject, since FROM vigil.alerts
    WHERE status = 'open'
      AND ((kind = 'absence' AND subject = :name)
           OR (kind = 'repeated-failures' AND 'agent:' || subject = :name))
    ORDER BY key
    FOR UPDATE
    """
)
_RESOLVE = text(
    """
    UPDATE vigil.alerts SET status = 'resolved', resolved_at = now(), resolved_event_id = :event_id
    WHERE key = :key AND status = 'open' AND since = :since
    """
)
_LIST = text(
    """
    SELECT name, every_seconds, grace_seconds, last_beat_at, next_expected_at, status, detail, now() AS now
    FROM vigil.heartbeats ORDER BY name
    """
)


def expect(engine: Engine, name: str, *, every_s: float, grace_s: float) -> dict[str, Any]:
    """Declare (or change) the heartbeat ``name``: a beat every ``every_s``, alert ``grace_s`` after a miss."""
    if not name or "/" in name:
        raise ConfigurationError(f"heartbeat name {name!r}: use a non-empty name without '/'")
    with engine.begin() as conn:
        row = conn.execute(_EXPECT, {"name": name, "every": every_s, "grace": grace_s}).mappings().one()
    return dict(row)


def beat(engine: Engine, name: str) -> dict[str, Any]:
    """Beat the declared heartbeat ``name``; a name never declared is an error naming the fix."""
    with engine.begin() as conn:
        row = conn.execute(_BEAT, {"name": name}).mappings().one_or_none()
    if row is None:
        raise ConfigurationError(
            f"no heartbeat named {name!r}: declare it with `vigil heartbeat expect {name} --every D --grace D`"
        )
    return dict(row)


def remove(engine: Engine, name: str, publish: Publish) -> list[str]:
    """Remove the heartbeat ``name`` and resolve the alerts it kept open; return the ids published.

    One transaction: the row is deleted, each open alert is claimed as resolved (the monitors'
    own resolve claims ``WHERE status = 'open'`` and so finds nothing), and its ``resolved`` event
    is published before the commit; a failed publish removes nothing. A name never declared is an
    error naming the fix.
    """
    with engine.begin() as conn:
        deleted = conn.execute(_DELETE, {"name": name}).mappings().one_or_none()
        if deleted is None:
            raise ConfigurationError(f"no heartbeat named {name!r}: `vigil heartbeat list` shows the names")
        alerts = [dict(r) for r in conn.execute(_OPEN_ALERTS, {"name": name}).mappings().all()]
        records = []
        for alert in alerts:
            record = alert_record(
                alert["kind"], alert["subject"], since=alert["since"], severity="resolved",
                value=0.0, observed_at=deleted["now"],
            )  # fmt: skip
            conn.execute(_RESOLVE, {"key": alert["key"], "since": alert["since"], "event_id": record["id"]})
            records.append(record)
        return publish(records) if records else []


def system_beat(engine: Engine, name: str, *, every_s: float, grace_s: float, detail: dict[str, Any]) -> None:
    """Beat one of Vigil's own heartbeats, declaring it on the first beat."""
    with engine.begin() as conn:
        conn.execute(
            _SYSTEM_BEAT, {"name": name, "every": every_s, "grace": grace_s, "detail": json.dumps(detail)}
        )


def list_heartbeats(engine: Engine) -> list[dict[str, Any]]:
    """Every heartbeat with its kind, state and age; overdue ones first, then late, then by name."""
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(_LIST).mappings().all()]
    return sort_overdue_first([describe(row) for row in rows])


def describe(row: dict[str, Any]) -> dict[str, Any]:
    """A heartbeat row as shown to people and scripts (``now`` is the database's clock)."""
    now: datetime = row.get("now") or datetime.now(UTC)
    last = row["last_beat_at"]
    return {
        "name": row["name"],
        "kind": heartbeat_kind(row["name"]),
        "state": heartbeat_state(
            status=row["status"],
            next_expected_at=row["next_expected_at"],
            grace_seconds=float(row["grace_seconds"]),
            now=now,
        ),
        "every_seconds": float(row["every_seconds"]),
        "grace_seconds": float(row["grace_seconds"]),
        "last_beat_at": last.isoformat() if last else None,
        "next_expected_at": row["next_expected_at"].isoformat(),
        "age_seconds": (now - last).total_seconds() if last else None,
    }


_ORDER = {"overdue": 0, "late": 1, "ok": 2, "paused": 3}


def sort_overdue_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (_ORDER.get(e["state"], 9), e["name"]))
