"""The scheduler: turns due schedule slots and wakeups into ``Tick`` records on ``vigil.ticks``.

It runs as a thread in every worker (``VIGIL_SCHEDULER``); several may run at once. Each round:

1. list the schedules that are due (or hold a buffered slot);
2. per schedule, in one transaction: lock its row (``FOR UPDATE SKIP LOCKED``: another scheduler
   busy with it is left alone), ask :func:`streams.schedule_maths.decide` what to do with its due
   slots, claim each decided slot in ``vigil.schedule_slots`` (primary key ``(schedule, slot_time)``),
   produce the fired slots' ticks and wait for the broker, then update the schedule and its
   heartbeat and commit.

A tick's event id is derived from (schedule, slot time), so a crash between produce and commit,
which publishes the slot again on the next round, gives the same id: the agent's unit of work runs
it once. Two schedulers never decide one slot twice (the row lock, then the claim).

A slot whose previous fired tick has not been processed (no ``processed_events`` row for the target
agent yet) is *in flight*: the overlap policy decides about the next one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from confluent_kafka import Producer

from agents.rounds import LazyConnection, run_rounds
from schemas.codec import Codec
from streams import headers
from streams.catalog import TICKS
from streams.outgoing import Outgoing
from streams.produce import produce_all
from streams.schedule_maths import (
    Decision,
    Kind,
    Misfire,
    Overlap,
    Spec,
    State,
    decide,
    heartbeat_period,
    tick_event_id,
    wakeup_event_id,
)
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Grace of a schedule's heartbeat beyond its next slot before the absence monitor may call it late.
HEARTBEAT_GRACE_S = 30.0

_DUE = """
SELECT id FROM vigil.schedules
WHERE NOT paused AND (next_fire_at <= clock_timestamp() OR buffered_slot_at IS NOT NULL)
ORDER BY next_fire_at NULLS LAST LIMIT %s
"""
_LOCK = """
SELECT *, clock_timestamp() AS now FROM vigil.schedules
WHERE id = %s AND NOT paused AND (next_fire_at <= clock_timestamp() OR buffered_slot_at IS NOT NULL)
FOR UPDATE SKIP LOCKED
"""


@dataclass
class Round:
    """What one round did, by schedule: fired slots and skipped (slot, reason)."""

    fired: dict[str, list[datetime]] = field(default_factory=dict)
    skipped: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    #: The database's clock when each schedule was decided.
    decided_at: dict[str, datetime] = field(default_factory=dict)


def state_of(row: dict[str, Any], in_flight: bool) -> State:
    """The pure state of a ``vigil.schedules`` row."""
    kind = Kind(row["kind"])
    wakeup = kind == Kind.WAKEUP
    return State(
        spec=Spec(kind, row["expression"], row["timezone"], row["anchor_at"]),
        # A wakeup is one slot an agent asked for: never skipped for overlap, fired however late.
        overlap=Overlap.ALLOW if wakeup else Overlap(row["overlap"]),
        misfire=Misfire.RUN_ONCE if wakeup else Misfire(row["misfire"]),
        catch_up_window=timedelta(seconds=row["catch_up_window_s"]),
        last_slot=row["last_slot_at"],
        next_fire_at=row["next_fire_at"],
        in_flight=in_flight,
        buffered=row["buffered_slot_at"],
    )


def event_id_for(row: dict[str, Any], slot: datetime) -> str:
    if row["kind"] == Kind.WAKEUP:
        return wakeup_event_id(row["id"])
    return tick_event_id(row["id"], slot)


def tick_record(row: dict[str, Any], slot: datetime, fired_at: datetime) -> dict[str, Any]:
    payload = row["payload"]
    return {
        "id": event_id_for(row, slot),
        "kind": "wakeup" if row["kind"] == Kind.WAKEUP else "schedule",
        "schedule_id": row["id"],
        "agent": row["agent"],
        "slot_time": slot,
        "fired_at": fired_at,
        "payload": json.dumps(payload) if payload else None,
    }


class Scheduler:
    """Fires due slots; :meth:`run_round` once, :meth:`run` as a loop until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        producer: Producer,
        codec: Codec,
        *,
        topic: str = TICKS,
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.producer = producer
        self.codec = codec
        self.topic = topic
        self.grace = timedelta(seconds=settings.scheduler_grace_s)
        #: Recorded with every slot this scheduler decides (which of several schedulers did).
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._db = LazyConnection(database_url)

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        return self._db.get()

    def close(self) -> None:
        self._db.close()

    def run(self, stop: threading.Event) -> None:
        run_rounds(
            "scheduler", self.run_round, stop, pause_s=self.settings.scheduler_poll_s, close=self.close
        )

    def run_round(self, limit: int = 100) -> Round:
        conn = self._connection()
        done = Round()
        with conn.transaction():
            due = [r["id"] for r in conn.execute(_DUE, (limit,)).fetchall()]
        for schedule_id in due:
            with conn.transaction():
                row = conn.execute(_LOCK, (schedule_id,)).fetchone()
                if row is None:  # another scheduler has it, or it was paused or removed
                    continue
                decision = self._fire(conn, row)
            done.decisions[schedule_id] = decision
            done.decided_at[schedule_id] = row["now"]
            if decision.fire:
                done.fired[schedule_id] = decision.fire
            if decision.skipped:
                done.skipped[schedule_id] = decision.skipped
        return done

    def _in_flight(self, conn: psycopg.Connection[dict[str, Any]], row: dict[str, Any]) -> bool:
        if row["inflight_event_id"] is None or row["agent"] is None:
            return False
        found = conn.execute(
            "SELECT 1 FROM vigil.processed_events WHERE agent = %s AND event_id = %s",
            (row["agent"], row["inflight_event_id"]),
        ).fetchone()
        return found is None

    def _fire(self, conn: psycopg.Connection[dict[str, Any]], row: dict[str, Any]) -> Decision:
        now: datetime = row["now"]
        in_flight = self._in_flight(conn, row)
        decision = decide(state_of(row, in_flight), now, self.grace)
        schedule_id = row["id"]
        claimed = self._claim(conn, row, decision)
        messages = [
            Outgoing(
                self.topic,
                schedule_id.encode(),
                self.codec.encode("Tick", tick_record(row, slot, now)),
                (
                    (headers.EVENT_ID, event_id_for(row, slot).encode()),
                    (headers.TRACE_ID, event_id_for(row, slot).encode()),
                ),
                tag=slot,
            )
            for slot in claimed
        ]
        if messages:
            produce_all(self.producer, messages, what=f"ticks of schedule {schedule_id!r}")
        # The newest fired tick is the one in flight; with nothing fired, an unfinished one stays so.
        if claimed:
            inflight: str | None = event_id_for(row, claimed[-1])
        else:
            inflight = row["inflight_event_id"] if in_flight else None
        conn.execute(
            """
            UPDATE vigil.schedules SET next_fire_at = %s, last_slot_at = %s, buffered_slot_at = %s,
                   inflight_event_id = %s, last_fire_at = COALESCE(%s, last_fire_at)
            WHERE id = %s
            """,
            (
                decision.next_fire_at,
                decision.last_slot,
                decision.buffered,
                inflight,
                now if claimed else None,
                schedule_id,
            ),
        )
        if row["kind"] != Kind.WAKEUP:
            self._beat(conn, row, decision, now if claimed else None)
        if claimed or decision.skipped:
            log.info(
                "scheduler: %s fired %s, skipped %s",
                schedule_id,
                [s.isoformat() for s in claimed],
                [(s.isoformat(), why) for s, why in decision.skipped],
            )
        decision.fire = claimed
        return decision

    def _claim(
        self, conn: psycopg.Connection[dict[str, Any]], row: dict[str, Any], decision: Decision
    ) -> list[datetime]:
        """Record every decided slot; return the fired ones this scheduler claimed, in order."""
        schedule_id = row["id"]
        claimed: list[datetime] = []
        if row["buffered_slot_at"] is not None and row["buffered_slot_at"] in decision.fire:
            buffered = conn.execute(
                "UPDATE vigil.schedule_slots SET status = 'fired', event_id = %s, decided_at = now(), "
                "decided_by = %s WHERE schedule = %s AND slot_time = %s AND status = 'buffered' "
                "RETURNING slot_time",
                (
                    event_id_for(row, row["buffered_slot_at"]),
                    self.identity,
                    schedule_id,
                    row["buffered_slot_at"],
                ),
            ).fetchone()
            if buffered is not None:
                claimed.append(row["buffered_slot_at"])
        rows: list[tuple[datetime, str, str | None]] = [
            (slot, "fired", event_id_for(row, slot)) for slot in decision.fire if slot not in claimed
        ]
        rows += [(slot, f"skipped_{why}", None) for slot, why in decision.skipped]
        if decision.buffered is not None and decision.buffered != row["buffered_slot_at"]:
            rows.append((decision.buffered, "buffered", None))
        for slot, status, event_id in rows:
            inserted = conn.execute(
                "INSERT INTO vigil.schedule_slots (schedule, slot_time, status, event_id, decided_by) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING slot_time",
                (schedule_id, slot, status, event_id, self.identity),
            ).fetchone()
            if inserted is not None and status == "fired":
                claimed.append(slot)
        return sorted(claimed)

    def _beat(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        row: dict[str, Any],
        decision: Decision,
        fired_at: datetime | None,
    ) -> None:
        """Keep the schedule's heartbeat (``schedule:<name>``): last beat = last tick fired, next
        expected = next slot; the absence monitor reads it. A finished one-shot has none."""
        name = f"schedule:{row['id']}"
        if decision.next_fire_at is None:
            conn.execute("DELETE FROM vigil.heartbeats WHERE name = %s", (name,))
            return
        spec = Spec(Kind(row["kind"]), row["expression"], row["timezone"], row["anchor_at"])
        period = heartbeat_period(spec, decision.next_fire_at - timedelta(microseconds=1))
        write_heartbeat(conn, name, decision.next_fire_at, period, fired_at)


def write_heartbeat(
    conn: psycopg.Connection[Any],
    name: str,
    next_expected: datetime,
    period: timedelta | None,
    beat_at: datetime | None,
    status: str = "ok",
) -> None:
    every = period.total_seconds() if period else 0.0
    conn.execute(
        """
        INSERT INTO vigil.heartbeats (name, every_seconds, grace_seconds, last_beat_at, next_expected_at, status)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (name) DO UPDATE SET every_seconds = EXCLUDED.every_seconds,
            last_beat_at = COALESCE(EXCLUDED.last_beat_at, vigil.heartbeats.last_beat_at),
            next_expected_at = EXCLUDED.next_expected_at, status = EXCLUDED.status
        """,
        (name, every, HEARTBEAT_GRACE_S, beat_at, next_expected, status),
    )
