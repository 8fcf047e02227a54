"""The unit of work: a batch of events, each processed exactly once, in one Postgres transaction.

For a batch of an agent's events:

1. ``INSERT … SELECT unnest(ids) ON CONFLICT DO NOTHING RETURNING`` into ``processed_events``: the
   ids it returns are new; the others are duplicates and nothing runs for them. A concurrent
   worker inserting the same id waits for this transaction, then sees the conflict.
2. The handler runs for each new event with a :class:`~agents.context.Context`; the validator
   checks its output.
3. The outbox rows and run records are written with ``COPY``, stream outputs are sent and flushed,
   and the transaction commits. Only then may the caller ack the events.

A handler that raises, or output the validator rejects, must not fail or duplicate its
neighbours: the transaction is rolled back and the batch redone without that event (its handler's
writes are gone with the rollback). A failed event is then retried alone with backoff and, when
its tries are used up, dead-lettered; a rejected one becomes a review item. Database outages roll
the batch back and wait with backoff until Postgres answers again: nothing is acked meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from agents.api import AgentSpec
from agents.backoff import backoff_delay
from agents.context import Context, OutboxRow, Output, StreamSend
from agents.retry import is_infrastructure_error
from streams.views import EventView, MessageParts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One consumed message and its view."""

    parts: MessageParts
    view: EventView
    #: ``view.event_id``, kept as a field: a batch reads it several times per event.
    event_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_id", self.view.event_id)


class Outputs(Protocol):
    """Where a unit of work sends what leaves Kafka-side (implemented over confluent-kafka)."""

    def send_and_flush(self, sends: Sequence[StreamSend], trace_id_of: Callable[[str], str]) -> None: ...

    def dead_letter(self, agent: str, parts: MessageParts, error: BaseException, attempts: int) -> None: ...


@dataclass
class BatchResult:
    succeeded: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    infra_waits: int = 0
    run_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def processed(self) -> list[str]:
        """Ids newly recorded in ``processed_events`` by this batch (for the ledger topic)."""
        return self.succeeded + self.rejected + self.dead_lettered


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True)
class _Rejected:
    reason: str
    output: Output


class _Redo(Exception):
    def __init__(self, event_id: str, why: _Failed | _Rejected) -> None:
        super().__init__(event_id)
        self.event_id = event_id
        self.why = why


@dataclass
class _RunRecord:
    run_id: uuid.UUID
    event_id: str
    trigger: str
    status: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    error: str | None
    trace: list[dict[str, Any]]


def _now() -> datetime:
    return datetime.now(UTC)


def _verdict(result: bool | str | None) -> str | None:
    """The rejection reason of a validator's answer, or None when it accepts."""
    if result is None or result is True:
        return None
    if result is False:
        return "rejected by validator"
    return str(result)


class UnitOfWork:
    """Processes batches of one agent's events with exactly-once database effects."""

    def __init__(
        self,
        spec: AgentSpec,
        engine: AsyncEngine,
        outputs: Outputs,
        *,
        max_infra_delay: float = 10.0,
        retry_base_delay: float = 0.2,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.outputs = outputs
        self.max_infra_delay = max_infra_delay
        self.retry_base_delay = retry_base_delay

    async def process(self, items: Sequence[Item]) -> BatchResult:
        result = BatchResult()
        unique: dict[str, Item] = {}
        for item in items:
            if item.event_id in unique:
                result.duplicates.append(item.event_id)
            else:
                unique[item.event_id] = item
        pending = list(unique.values())
        if not pending:
            return result
        excluded: dict[str, _Failed | _Rejected] = {}
        failed = await self._until_committed(pending, excluded, attempt=1, result=result)
        for item in failed:
            await self._retry_alone(item, excluded[item.event_id], result)
        return result

    async def _until_committed(
        self,
        pending: list[Item],
        excluded: dict[str, _Failed | _Rejected],
        *,
        attempt: int,
        result: BatchResult,
    ) -> list[Item]:
        """Run the batch until it commits; return the items whose handler failed (not committed)."""
        infra_attempt = 0
        while True:
            try:
                outcome = await self._attempt(pending, excluded, attempt)
            except _Redo as redo:
                excluded[redo.event_id] = redo.why
                continue
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                infra_attempt += 1
                result.infra_waits += 1
                delay = backoff_delay(infra_attempt, base=0.2, max_delay=self.max_infra_delay)
                log.warning(
                    "agent %s: database or broker unavailable (%s); retrying the batch in %.1fs",
                    self.spec.name,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            succeeded, duplicates, rejected, failed, run_ids = outcome
            result.run_ids.update(run_ids)
            result.succeeded += succeeded
            result.duplicates += duplicates
            result.rejected += rejected
            return failed

    async def _attempt(
        self, pending: list[Item], excluded: dict[str, _Failed | _Rejected], attempt: int
    ) -> tuple[list[str], list[str], list[str], list[Item], dict[str, uuid.UUID]]:
        agent = self.spec.name
        succeeded: list[str] = []
        rejected: list[str] = []
        failed: list[Item] = []
        runs: list[_RunRecord] = []
        outbox: list[tuple[OutboxRow, str, str]] = []
        sends: list[StreamSend] = []
        reviews: list[tuple[uuid.UUID, str, uuid.UUID, str, Output]] = []
        wakeups: list[tuple[str, datetime, dict[str, Any]]] = []
        trace_ids = {item.event_id: item.view.trace_id for item in pending}
        run_ids = {item.event_id: uuid.uuid4() for item in pending}

        async with self.engine.connect() as conn, conn.begin():
            driver = await _driver(conn)
            ids = sorted(run_ids)  # one order for every worker: no deadlocks between them
            cur = await driver.execute(
                "INSERT INTO vigil.processed_events (agent, event_id, run_id) "
                "SELECT %s, e, r FROM unnest(%s::text[], %s::uuid[]) AS t(e, r) "
                "ON CONFLICT DO NOTHING RETURNING event_id",
                (agent, ids, [run_ids[i] for i in ids]),
            )
            new_ids = {row[0] for row in await cur.fetchall()}
            duplicates = [item.event_id for item in pending if item.event_id not in new_ids]

            session: AsyncSession | None = None

            def session_factory() -> AsyncSession:
                nonlocal session
                if session is None:
                    session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
                return session

            for item in pending:
                event_id = item.event_id
                if event_id not in new_ids:
                    continue
                why = excluded.get(event_id)
                started = _now()
                if isinstance(why, _Failed):
                    failed.append(item)
                    continue
                if isinstance(why, _Rejected):
                    rejected.append(event_id)
                    reviews.append((uuid.uuid4(), event_id, run_ids[event_id], why.reason, why.output))
                    runs.append(
                        _RunRecord(
                            run_ids[event_id],
                            event_id,
                            item.parts.topic,
                            "rejected",
                            attempt,
                            started,
                            _now(),
                            why.reason,
                            why.output.trace,
                        )
                    )
                    continue
                ctx = Context(
                    agent=agent,
                    event_id=event_id,
                    trace_id=item.view.trace_id,
                    trigger=item.parts.topic,
                    attempt=attempt,
                    session_factory=session_factory,
                )
                try:
                    await self.spec.handler(item.view, ctx)
                    if session is not None:
                        await session.flush()
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    raise _Redo(event_id, _Failed(exc)) from exc
                if self.spec.validate is not None:
                    reason = _verdict(self.spec.validate(item.view, ctx.output))
                    if reason is not None:
                        raise _Redo(event_id, _Rejected(reason, ctx.output))
                succeeded.append(event_id)
                outbox.extend((row, event_id, item.view.trace_id) for row in ctx.output.outbox)
                sends.extend(ctx.output.sends)
                wakeups.extend((w.id, w.at, w.payload) for w in ctx.output.wakeups)
                runs.append(
                    _RunRecord(
                        run_ids[event_id],
                        event_id,
                        item.parts.topic,
                        "succeeded",
                        attempt,
                        started,
                        _now(),
                        None,
                        ctx.output.trace,
                    )
                )

            if session is not None:
                await session.close()
            if failed:
                await driver.execute(
                    "DELETE FROM vigil.processed_events WHERE agent = %s AND event_id = ANY(%s)",
                    (agent, [item.event_id for item in failed]),
                )
            await _write_rows(driver, agent, runs, outbox, reviews, wakeups)
            if sends:
                await asyncio.to_thread(self.outputs.send_and_flush, sends, lambda e: trace_ids.get(e, e))
        return succeeded, duplicates, rejected, failed, run_ids

    async def _retry_alone(self, item: Item, why: _Failed | _Rejected, result: BatchResult) -> None:
        """Try a failed event alone, with backoff, until it commits or its tries are used up."""
        error: BaseException = why.error if isinstance(why, _Failed) else RuntimeError("rejected")
        for attempt in range(2, self.spec.retries + 1):
            await asyncio.sleep(backoff_delay(attempt - 1, base=self.retry_base_delay))
            excluded: dict[str, _Failed | _Rejected] = {}
            partial = BatchResult()
            failed = await self._until_committed([item], excluded, attempt=attempt, result=partial)
            result.succeeded += partial.succeeded
            result.duplicates += partial.duplicates
            result.rejected += partial.rejected
            result.infra_waits += partial.infra_waits
            result.run_ids.update(partial.run_ids)
            if not failed:
                return
            last = excluded[item.event_id]
            if isinstance(last, _Failed):
                error = last.error
        await self._dead_letter(item, error, result)

    async def _dead_letter(self, item: Item, error: BaseException, result: BatchResult) -> None:
        """Send the event to the DLQ, then record it processed with a failed run (in that order)."""
        attempts = self.spec.retries
        await asyncio.to_thread(self.outputs.dead_letter, self.spec.name, item.parts, error, attempts)
        infra_attempt = 0
        while True:
            try:
                async with self.engine.connect() as conn, conn.begin():
                    driver = await _driver(conn)
                    run_id = uuid.uuid4()
                    cur = await driver.execute(
                        "INSERT INTO vigil.processed_events (agent, event_id, run_id) VALUES (%s, %s, %s) "
                        "ON CONFLICT DO NOTHING RETURNING event_id",
                        (self.spec.name, item.event_id, run_id),
                    )
                    if await cur.fetchone() is None:
                        result.duplicates.append(item.event_id)
                        return
                    now = _now()
                    record = _RunRecord(
                        run_id,
                        item.event_id,
                        item.parts.topic,
                        "failed",
                        attempts,
                        now,
                        now,
                        f"{type(error).__name__}: {error}",
                        [],
                    )
                    await _write_rows(driver, self.spec.name, [record], [], [], [])
                result.dead_lettered.append(item.event_id)
                result.run_ids[item.event_id] = run_id
                return
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                infra_attempt += 1
                result.infra_waits += 1
                await asyncio.sleep(backoff_delay(infra_attempt, base=0.2, max_delay=self.max_infra_delay))


async def _driver(conn: AsyncConnection) -> Any:
    """The psycopg ``AsyncConnection`` under a SQLAlchemy connection (for COPY and unnest)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def _write_rows(
    driver: Any,
    agent: str,
    runs: list[_RunRecord],
    outbox: list[tuple[OutboxRow, str, str]],
    reviews: list[tuple[uuid.UUID, str, uuid.UUID, str, Output]],
    wakeups: list[tuple[str, datetime, dict[str, Any]]],
) -> None:
    async with driver.cursor() as cur:
        if outbox:
            async with cur.copy(
                "COPY vigil.outbox (id, aggregatetype, aggregateid, type, payload, source_event_id, trace_id) "
                "FROM STDIN"
            ) as copy:
                for row, event_id, trace_id in outbox:
                    await copy.write_row(
                        (
                            row.id,
                            row.aggregatetype,
                            row.aggregateid,
                            row.type,
                            json.dumps(row.payload),
                            event_id,
                            trace_id,
                        )
                    )
        if runs:
            async with cur.copy(
                "COPY vigil.runs (run_id, agent, event_id, trigger, status, attempt, started_at, finished_at, "
                "error, trace) FROM STDIN"
            ) as copy:
                for run in runs:
                    await copy.write_row(
                        (
                            run.run_id,
                            agent,
                            run.event_id,
                            run.trigger,
                            run.status,
                            run.attempt,
                            run.started_at,
                            run.finished_at,
                            run.error,
                            json.dumps(run.trace, default=str),
                        )
                    )
        for review_id, event_id, run_id, reason, output in reviews:
            proposed = [
                {
                    "id": str(r.id),
                    "aggregatetype": r.aggregatetype,
                    "aggregateid": r.aggregateid,
                    "type": r.type,
                    "payload": r.payload,
                }
                for r in output.outbox
            ]
            await cur.execute(
                "INSERT INTO vigil.reviews (id, agent, event_id, run_id, reason, proposed) "
                "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                (review_id, agent, event_id, run_id, reason, json.dumps(proposed, default=str)),
            )
        for wake_id, at, payload in wakeups:
            await cur.execute(
                "INSERT INTO vigil.schedules (id, kind, expression, payload, next_fire_at) "
                "VALUES (%s, 'wakeup', %s, %s::jsonb, %s) ON CONFLICT (id) DO NOTHING",
                (wake_id, at.isoformat(), json.dumps(payload, default=str), at),
            )
