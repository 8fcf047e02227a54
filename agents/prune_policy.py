"""Which rows may be pruned, and how long each table keeps them: cutoffs as plain date arithmetic.

A ``processed_events`` row is the dedup record of an event; once the event can no longer be
redelivered it is dead weight. Rows older than the retention go, but never one at or after the
``not_newer_than`` bound the worker passes: the time of the oldest event it has not committed the
offset of, which may still be redelivered and must still find its row. The processed-event
retention is the **dedup window**: an event redelivered after it is processed again.

The other tables (each pruned by age in :mod:`agents.prune`):

- ``outbox``: only rows already published (``sent_at`` set) while the worker relays; an unsent row
  is never pruned. When Debezium relays, rows are pruned by ``created_at``: Debezium reads them
  from the WAL, which its slot keeps, not from the table.
- ``runs``: the trace of what agents did; nothing depends on it for correctness.
- ``deliveries``: only finished ones (``delivered``/``failed``; ``pending`` stay). A delivery record
  must outlive every window in which its outbox event can reach the sink again: the outbox
  topics' retention (Kafka's default, 7 days), and the dedup window plus the outbox retention (an
  event processed again after its dedup window may emit the same outbox id once its outbox row is
  gone). :func:`retention_warnings` names settings that break this rule.
- ``reviews``: only decided ones (``approved``/``rejected``); a pending item stays until decided.
- what fired, kept as long as the runs it caused (the runs retention): ``schedule_slots`` decided
  (fired or skipped, never a ``buffered`` slot still waiting), by ``decided_at`` (a scheduler
  only looks at slots after the schedule's ``last_slot_at``, so an old claim is never needed
  again); ``schedules`` rows of fired wakeups (one-shot, ``next_fire_at`` cleared), by
  ``last_fire_at``, with their slots; ``watches`` finished (``handed_off`` or ``expired``), by the
  time they finished. Cron, interval and ``--at`` schedules and armed or matched watches stay.

Pure: no database client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_RETENTION = timedelta(days=7)
#: Kafka's default ``retention.ms``: how long a relayed outbox event can be read again by a sink.
OUTBOX_TOPIC_RETENTION = timedelta(days=7)


def prune_cutoff(now: datetime, retention: timedelta, not_newer_than: datetime | None = None) -> datetime:
    """Rows with a time strictly before the returned time may be deleted."""
    if retention < timedelta(0):
        raise ValueError(f"retention must not be negative, got {retention}")
    if now.tzinfo is None or (not_newer_than is not None and not_newer_than.tzinfo is None):
        raise ValueError("prune_cutoff needs timezone-aware datetimes")
    cutoff = now - retention
    if not_newer_than is not None and not_newer_than < cutoff:
        cutoff = not_newer_than
    return cutoff


@dataclass(frozen=True)
class Retentions:
    """How long each pruned table keeps its rows."""

    processed: timedelta = DEFAULT_RETENTION
    outbox: timedelta = timedelta(days=7)
    runs: timedelta = timedelta(days=30)
    deliveries: timedelta = timedelta(days=30)
    reviews: timedelta = timedelta(days=30)

    @classmethod
    def from_days(
        cls, *, processed: float, outbox: float, runs: float, deliveries: float, reviews: float
    ) -> Retentions:
        return cls(
            processed=timedelta(days=processed),
            outbox=timedelta(days=outbox),
            runs=timedelta(days=runs),
            deliveries=timedelta(days=deliveries),
            reviews=timedelta(days=reviews),
        )

    def cutoffs(self, now: datetime, not_newer_than: datetime | None = None) -> dict[str, datetime]:
        """Cutoff per table; only ``processed_events`` is held back by the oldest unacked event."""
        return {
            "processed_events": prune_cutoff(now, self.processed, not_newer_than),
            "outbox": prune_cutoff(now, self.outbox),
            "runs": prune_cutoff(now, self.runs),
            "deliveries": prune_cutoff(now, self.deliveries),
            "reviews": prune_cutoff(now, self.reviews),
            "schedule_slots": prune_cutoff(now, self.runs),
            "schedules": prune_cutoff(now, self.runs),  # fired wakeups only
            "watches": prune_cutoff(now, self.runs),  # finished watches only
        }


def retention_warnings(
    retentions: Retentions, outbox_topic_retention: timedelta = OUTBOX_TOPIC_RETENTION
) -> list[str]:
    """Why these retentions could let a sink repeat a delivery (empty when they are safe)."""
    warnings = []
    if retentions.deliveries < outbox_topic_retention:
        warnings.append(
            f"deliveries are kept {retentions.deliveries}, less than the outbox topics' retention "
            f"({outbox_topic_retention}): a sink re-reading an outbox event could deliver it again"
        )
    window = retentions.processed + retentions.outbox
    if retentions.deliveries < window:
        warnings.append(
            f"deliveries are kept {retentions.deliveries}, less than the dedup window plus the outbox "
            f"retention ({window}): an event processed again could have its output delivered again"
        )
    return warnings
