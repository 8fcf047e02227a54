"""Deletes old ``vigil.processed_events`` rows in batches (see :mod:`agents.prune_policy` for which).

Each batch is its own short transaction, so pruning a large backlog never holds long locks or a
long-running snapshot, and an interrupted prune simply resumes next time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from agents.prune_policy import DEFAULT_RETENTION, prune_cutoff

log = logging.getLogger(__name__)

_DELETE_BATCH = text(
    """
    DELETE FROM vigil.processed_events
    WHERE ctid IN (
        SELECT ctid FROM vigil.processed_events
        WHERE processed_at < :cutoff
        LIMIT :batch
    )
    """
)


def prune_processed_events(
    engine: Engine,
    retention: timedelta = DEFAULT_RETENTION,
    batch_size: int = 10_000,
    not_newer_than: datetime | None = None,
    *,
    now: datetime | None = None,
    max_batches: int | None = None,
) -> int:
    """Delete rows older than ``retention`` (and older than ``not_newer_than``); return how many.

    ``now`` defaults to the database's clock, the one ``processed_at`` was written with.
    ``max_batches`` bounds one call's work (None: until nothing is left).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if now is None:
        with engine.connect() as conn:
            now = conn.execute(text("SELECT now()")).scalar_one()
    cutoff = prune_cutoff(now, retention, not_newer_than)
    deleted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with engine.begin() as conn:
            count = conn.execute(_DELETE_BATCH, {"cutoff": cutoff, "batch": batch_size}).rowcount
        deleted += count
        batches += 1
        if count < batch_size:
            break
    if deleted:
        log.info("pruned %d processed_events rows older than %s", deleted, cutoff.isoformat())
    return deleted
