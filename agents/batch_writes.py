"""The SQL of a unit of work: claiming event ids, and writing what the handlers asked for.

Each function is one statement (or one ``COPY``) on the batch's psycopg connection, so the unit of
work reads as a list of steps. Nothing here commits: the caller's transaction does.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from agents.context import Wakeup
from agents.copy_text import copy_text, text_array, timestamp_text
from agents.outbox_mapping import OutboxRow, dumps_payload

log = logging.getLogger(__name__)


class RunRecord(NamedTuple):
    """One row of ``vigil.runs`` (a tuple: one is made per event, and a tuple is quick to make)."""

    #: The run's UUID in its text form.
    run_id: str
    event_id: str
    trigger: str
    status: str
    attempt: int
    #: Nanoseconds since the epoch (``time.time_ns()``).
    started_ns: int
    finished_ns: int
    error: str | None
    trace: list[dict[str, Any]]


@dataclass(frozen=True)
class ReviewRecord:
    """One row of ``vigil.reviews``: output a validator rejected, waiting for a person."""

    review_id: uuid.UUID
    event_id: str
    run_id: uuid.UUID
    reason: str
    proposed: Sequence[OutboxRow]


async def claim(driver: Any, agent: str, run_ids: Mapping[str, uuid.UUID | str]) -> set[str]:
    """Insert the events' ``processed_events`` rows; return the ids that were new.

    Ids are inserted sorted: every worker locks them in one order, so two workers claiming
    overlapping batches wait for each other instead of deadlocking. A concurrent worker's claim
    of the same id waits for this transaction, then sees the conflict.
    """
    ids = sorted(run_ids)
    # Both arrays as one literal each (UUIDs need no quoting in one): psycopg would dump 500 elements.
    runs = "{" + ",".join([str(run_ids[i]) for i in ids]) + "}"
    cur = await driver.execute(
        "INSERT INTO vigil.processed_events (agent, event_id, run_id) "
        "SELECT %s, e, r FROM unnest(%s::text[], %s::uuid[]) AS t(e, r) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (agent, text_array(ids), runs),
    )
    return {row[0] for row in await cur.fetchall()}


async def unclaim(driver: Any, agent: str, event_ids: Sequence[str]) -> None:
    """Take back the claims of events that will be retried (their handler failed)."""
    if event_ids:
        await driver.execute(
            "DELETE FROM vigil.processed_events WHERE agent = %s AND event_id = ANY(%s)",
            (agent, list(event_ids)),
        )


_OUTBOX_COLUMNS = "id, aggregatetype, aggregateid, type, payload, source_event_id, trace_id"


def _outbox_tuple(row: OutboxRow, event_id: str) -> tuple[Any, ...]:
    payload = row.payload_json if row.payload_json is not None else dumps_payload(row.payload)
    return (row.id, row.aggregatetype, row.aggregateid, row.type, payload, event_id, row.trace_id)


async def write_outbox(driver: Any, rows: Sequence[tuple[OutboxRow, str]]) -> None:
    """Insert outbox rows (with the id of the event that made each).

    ``COPY`` is the fast path. An id that is already there means this exact side effect was written
    before: an event processed again after its dedup window (its ``processed_events`` row pruned,
    its outbox row not yet). That copy is skipped, not an error, so the worker never stalls on it.
    """
    if not rows:
        return
    # A savepoint, so that a conflict undoes only the COPY. It is not released: the commit ends it,
    # and a RELEASE would be one more round trip per batch.
    await driver.execute("SAVEPOINT vigil_outbox_copy")
    try:
        await _copy_outbox(driver, rows)
        return
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != "23505":  # unique_violation
            raise
        conflict = exc
    await driver.execute("ROLLBACK TO SAVEPOINT vigil_outbox_copy")
    log.warning("outbox ids already present (%s); inserting the others only", conflict)
    tuples = [_outbox_tuple(row, event_id) for row, event_id in rows]
    columns = list(zip(*tuples, strict=True))
    await driver.execute(
        f"INSERT INTO vigil.outbox ({_OUTBOX_COLUMNS}) "
        "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::jsonb[], %s::text[], "
        "%s::text[]) ON CONFLICT (id) DO NOTHING",
        [list(c) for c in columns],
    )


async def _copy_outbox(driver: Any, rows: Sequence[tuple[OutboxRow, str]]) -> None:
    await _copy(
        driver,
        f"COPY vigil.outbox ({_OUTBOX_COLUMNS}) FROM STDIN",
        [
            (
                row.id.hex,
                row.aggregatetype,
                row.aggregateid,
                row.type,
                row.payload_json if row.payload_json is not None else dumps_payload(row.payload),
                event_id,
                row.trace_id,
            )
            for row, event_id in rows
        ],
        7,
    )


#: The columns every run fills. ``error`` and ``trace`` default to NULL and ``'[]'``.
_RUN_COLUMNS = "run_id, agent, event_id, trigger, status, attempt, started_at, finished_at"


def _run_fields(run: RunRecord, agent: str) -> tuple[str, ...]:
    """The ``COPY`` text of :data:`_RUN_COLUMNS` for ``run``."""
    return (
        run.run_id,
        agent,
        run.event_id,
        run.trigger,
        run.status,
        str(run.attempt),
        timestamp_text(run.started_ns),
        timestamp_text(run.finished_ns),
    )


async def write_runs(driver: Any, agent: str, runs: Sequence[RunRecord]) -> None:
    """Insert run records. A run with neither an error nor trace steps (a handler that succeeded
    and called no ``ctx.step``: nearly all of them) leaves both columns to their defaults, so that
    its rows hold no NULL (``COPY``'s quickest text, two columns fewer); the others go in a second
    ``COPY`` with both."""
    if not runs:
        return
    plain = [run for run in runs if run.error is None and not run.trace]
    if plain:
        rows = [_run_fields(run, agent) for run in plain]
        await _copy(driver, f"COPY vigil.runs ({_RUN_COLUMNS}) FROM STDIN", rows, 8)
    if len(plain) == len(runs):
        return
    await _copy(
        driver,
        f"COPY vigil.runs ({_RUN_COLUMNS}, error, trace) FROM STDIN",
        [
            (*_run_fields(run, agent), run.error, json.dumps(run.trace, default=str) if run.trace else "[]")
            for run in runs
            if run.error is not None or run.trace
        ],
        10,
    )


async def _copy(driver: Any, statement: str, rows: Sequence[Sequence[str | None]], columns: int) -> None:
    """``COPY`` ``rows`` (text values) in one piece; row by row through psycopg when a value holds
    NUL, so that psycopg refuses it as it always did."""
    text = copy_text(rows, columns)
    async with driver.cursor() as cur, cur.copy(statement) as copy:
        if text is not None:
            await copy.write(text)
            return
        for row in rows:
            await copy.write_row(row)


async def write_reviews(driver: Any, agent: str, reviews: Sequence[ReviewRecord]) -> None:
    for review in reviews:
        proposed = [
            {
                "id": str(r.id),
                "aggregatetype": r.aggregatetype,
                "aggregateid": r.aggregateid,
                "type": r.type,
                "payload": json.loads(r.payload_json) if r.payload_json is not None else r.payload,
            }
            for r in review.proposed
        ]
        await driver.execute(
            "INSERT INTO vigil.reviews (id, agent, event_id, run_id, reason, proposed) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            (review.review_id, agent, review.event_id, review.run_id, review.reason, dumps_payload(proposed)),
        )


async def write_wakeups(driver: Any, agent: str, wakeups: Sequence[Wakeup]) -> None:
    """One-shot schedules delivered as a ``Tick`` to ``agent``; in the run's transaction, so a run
    that rolls back leaves none. Wakeups never skip for overlap and fire even when late."""
    for wakeup in wakeups:
        await driver.execute(
            "INSERT INTO vigil.schedules (id, kind, expression, payload, next_fire_at, agent, overlap) "
            "VALUES (%s, 'wakeup', %s, %s::jsonb, %s, %s, 'allow') ON CONFLICT (id) DO NOTHING",
            (wakeup.id, wakeup.at.isoformat(), json.dumps(wakeup.payload, default=str), wakeup.at, agent),
        )
