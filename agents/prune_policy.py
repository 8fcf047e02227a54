"""Which processed-event rows may be pruned: the cutoff, as plain date arithmetic.

A ``processed_events`` row is the dedup record of an event; once the event can no longer be
redelivered it is dead weight. Rows older than the retention go, but never one at or after the
``not_newer_than`` bound the worker passes: the time of the oldest event it has not committed the
offset of, which may still be redelivered and must still find its row.

Pure: no database client.
"""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_RETENTION = timedelta(days=7)


def prune_cutoff(now: datetime, retention: timedelta, not_newer_than: datetime | None = None) -> datetime:
    """Rows with ``processed_at`` strictly before the returned time may be deleted."""
    if retention < timedelta(0):
        raise ValueError(f"retention must not be negative, got {retention}")
    if now.tzinfo is None or (not_newer_than is not None and not_newer_than.tzinfo is None):
        raise ValueError("prune_cutoff needs timezone-aware datetimes")
    cutoff = now - retention
    if not_newer_than is not None and not_newer_than < cutoff:
        cutoff = not_newer_than
    return cutoff
