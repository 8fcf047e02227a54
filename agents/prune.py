"""Deletes old rows of ``vigil.*`` tables in batches (see :mod:`agents.prune_policy` for which).

Each batch is its own short transaction, so pruning a large backlog never holds long locks or a
long-running snapshot, and an interrupted prune simply resumes next time. Pruned
``processed_events`` rows get a tombstone in the compacted ``vigil.processed-events`` topic, so the
ledger drops their keys too and workers reading it stop treating those events as known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import Producer
from sqlalchemy import Engine, Row, text

from agents.prune_policy import DEFAULT_RETENTION, Retentions, prune_cutoff
from streams.catalog import PROCESSED_EVENTS
from streams.ledger_records import ledger_key
from streams.outgoing import Outgoing
from streams.produce import produce_all

log = logging.getLogger(__name__)

DEFAULT_BATCH = 10_000
#: The ``RETURNING`` rows of one deleted batch.
ReturnedRows = Sequence[Row[Any]]


@dataclass(frozen=True)
class PruneTarget:
    """A table's prunable rows: ``age`` before the cutoff and ``condition`` true."""

    table: str
    age: str
    condition: str = "TRUE"
    returning: tuple[str, ...] = ()

    def delete_batch(self) -> str:
        returning = f" RETURNING {', '.join(self.returning)}" if self.returning else ""
        return f"""
            DELETE FROM vigil.{self.table}
            WHERE ctid IN (
                SELECT ctid FROM vigil.{self.table}
                WHERE {self.age} < :cutoff AND ({self.condition})
                LIMIT :batch
            ){returning}
        """


PROCESSED_EVENTS_TARGET = PruneTarget("processed_events", "processed_at", returning=("agent", "event_id"))
#: While the worker relays, only published rows: an unsent row must still be relayed.
OUTBOX_SENT = PruneTarget("outbox", "sent_at", "sent_at IS NOT NULL")
#: While Debezium relays (``sent_at`` never set), by age: Debezium reads the WAL, not the table.
OUTBOX_BY_AGE = PruneTarget("outbox", "created_at")
RUNS = PruneTarget("runs", "started_at")
DELIVERIES = PruneTarget("deliveries", "created_at", "status <> 'pending'")
REVIEWS = PruneTarget("reviews", "decided_at", "status <> 'pending'")
#: Decided slots; a buffered one still waits to fire.
SCHEDULE_SLOTS = PruneTarget("schedule_slots", "decided_at", "status <> 'buffered'")
#: Wakeups that fired (one-shot: no next slot); their slot rows go with them (ON DELETE CASCADE).
FIRED_WAKEUPS = PruneTarget(
    "schedules", "last_fire_at", "kind = 'wakeup' AND next_fire_at IS NULL AND buffered_slot_at IS NULL"
)
#: Watches that handed their match off or expired; armed and matched ones are still at work.
FINISHED_WATCHES = PruneTarget(
    "watches", "coalesce(handed_off_at, expired_at)", "state IN ('handed_off', 'expired')"
)


def delete_in_batches(
    engine: Engine,
    target: PruneTarget,
    cutoff: datetime,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    on_batch: Callable[[ReturnedRows], None] | None = None,
) -> int:
    """Delete ``target``'s rows older than ``cutoff``, ``batch_size`` per transaction; return how many.

    ``on_batch`` receives each batch's ``RETURNING`` rows before the batch commits: if it raises,
    the batch stays (tombstones are produced before their rows go). ``max_batches`` bounds one
    call's work (None: until nothing is left).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    statement = text(target.delete_batch())
    deleted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with engine.begin() as conn:
            result = conn.execute(statement, {"cutoff": cutoff, "batch": batch_size})
            if target.returning:
                rows = result.all()
                count = len(rows)
                if rows and on_batch is not None:
                    on_batch(rows)
            else:
                count = result.rowcount
        deleted += count
        batches += 1
        if count < batch_size:
            break
    if deleted:
        log.info("pruned %d %s rows older than %s", deleted, target.table, cutoff.isoformat())
    return deleted


def database_now(engine: Engine) -> datetime:
    """The database's clock: the one the rows' times were written with."""
    with engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT now()")).scalar_one()
    return now


def tombstone_producer(
    producer: Producer, topic: str = PROCESSED_EVENTS, flush_timeout: float = 30.0
) -> Callable[[ReturnedRows], None]:
    """An ``on_batch`` that produces a tombstone per pruned ``(agent, event_id)`` and waits for the acks."""

    def produce(rows: ReturnedRows) -> None:
        tombstones = [Outgoing(topic, ledger_key(row.agent, row.event_id), None) for row in rows]
        produce_all(
            producer, tombstones, what="tombstones for pruned processed events", timeout=flush_timeout
        )

    return produce


def prune_processed_events(
    engine: Engine,
    retention: timedelta = DEFAULT_RETENTION,
    batch_size: int = DEFAULT_BATCH,
    not_newer_than: datetime | None = None,
    *,
    now: datetime | None = None,
    max_batches: int | None = None,
    producer: Producer | None = None,
    ledger_topic: str = PROCESSED_EVENTS,
) -> int:
    """Delete rows older than ``retention`` (and older than ``not_newer_than``); return how many.

    With ``producer``, each pruned row's key gets a tombstone in ``vigil.processed-events``.
    ``now`` defaults to the database's clock, the one ``processed_at`` was written with.
    """
    cutoff = prune_cutoff(now or database_now(engine), retention, not_newer_than)
    return delete_in_batches(
        engine,
        PROCESSED_EVENTS_TARGET,
        cutoff,
        batch_size=batch_size,
        max_batches=max_batches,
        on_batch=tombstone_producer(producer, ledger_topic) if producer is not None else None,
    )


def prune_all(
    engine: Engine,
    retentions: Retentions,
    *,
    producer: Producer | None,
    worker_relays_outbox: bool,
    not_newer_than: datetime | None = None,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, int]:
    """Prune every table by its retention; return the rows deleted per table.

    One table failing does not stop the others: its error is logged and it is tried next time.
    """
    cutoffs = retentions.cutoffs(now or database_now(engine), not_newer_than)
    on_processed = tombstone_producer(producer) if producer is not None else None
    targets = [
        (PROCESSED_EVENTS_TARGET, on_processed),
        (OUTBOX_SENT if worker_relays_outbox else OUTBOX_BY_AGE, None),
        (RUNS, None),
        (DELIVERIES, None),
        (REVIEWS, None),
        (SCHEDULE_SLOTS, None),
        (FIRED_WAKEUPS, None),
        (FINISHED_WATCHES, None),
    ]
    deleted: dict[str, int] = {}
    for target, on_batch in targets:
        try:
            deleted[target.table] = delete_in_batches(
                engine, target, cutoffs[target.table], batch_size=batch_size, on_batch=on_batch
            )
        except Exception as exc:  # housekeeping: log it and try again on the next round
            log.warning("pruning vigil.%s failed: %s", target.table, exc)
    return deleted
