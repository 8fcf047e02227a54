"""The unit of work: a batch of events, each processed exactly once, in one Postgres transaction.

One attempt at a batch is a list of steps, each a small method below:

1. **claim** — ``INSERT … ON CONFLICT DO NOTHING RETURNING`` into ``processed_events``: the ids it
   returns are new; the others were processed before and nothing runs for them.
2. **run** each new event's handler with a :class:`~agents.context.Context`. Its database writes go
   to a savepoint of its own (:mod:`agents.event_session`), taken only if it touches the session.
   A handler that raises, or output the validator rejects, rolls back that savepoint and drops that
   event's collected outputs: its neighbours are not run again.
3. **send** the stream outputs (``ctx.send``) and wait for the broker's acknowledgement.
4. **unclaim** the events whose handler failed (they are retried alone, later).
5. **write** outbox rows, run records, review items and wakeups (``COPY`` where it can).
6. **commit**. Only then may the caller ack the events.

A failed event is then retried alone with backoff and, when its tries are used up, dead-lettered
and recorded as processed with a failed run. Errors of Vigil's own database connection or producer
are the infrastructure's: the batch is rolled back and tried again with backoff, without limit,
and nothing is acked meanwhile. An error raised by a handler is always the handler's, even a
``ConnectionError`` from its own HTTP client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agents import batch_writes
from agents.api import AgentSpec
from agents.backoff import backoff_delay
from agents.batch_writes import ReviewRecord, RunRecord
from agents.context import Context, Output, StreamSend
from agents.copy_text import random_uuids
from agents.event_session import EventWrites
from agents.retry import is_infrastructure_error
from schemas.errors import OutputError, RetryableError
from streams.views import EventView, MessageParts

log = logging.getLogger(__name__)

T = TypeVar("T")


class _ItemFields(NamedTuple):
    parts: MessageParts
    view: EventView
    #: ``view.event_id``, kept as a field: a batch reads it several times per event.
    event_id: str


class Item(_ItemFields):
    """One consumed message and its view: ``Item(parts, view)``.

    A tuple, not a frozen dataclass: one is made per event, and a frozen dataclass sets each field
    (and ``event_id`` after) through ``object.__setattr__`` (≈2 µs an item against ≈0.5)."""

    __slots__ = ()

    def __new__(cls, parts: MessageParts, view: EventView) -> Item:
        return tuple.__new__(cls, (parts, view, view.event_id))

    def __getnewargs__(self) -> tuple[MessageParts, EventView]:
        return (self.parts, self.view)


class Outputs(Protocol):
    """Where a unit of work sends what leaves Kafka-side (implemented over confluent-kafka)."""

    async def check_sends(self, sends: Sequence[StreamSend]) -> None:
        """Raise :class:`~schemas.errors.OutputError` for a send that can never be delivered."""
        ...

    def send_and_flush(self, sends: Sequence[StreamSend]) -> dict[str, BaseException]:
        """Send and wait; return the permanent failures by input event id (transient ones raise)."""
        ...

    def dead_letter(self, agent: str, parts: MessageParts, error: BaseException, attempts: int) -> None: ...


# -- what happened to one event in one attempt ----------------------------------------------


# One per event: tuples (quicker to make than frozen dataclasses). Times are ``time.time_ns()``.


class Succeeded(NamedTuple):
    output: Output
    started_ns: int
    finished_ns: int


class Rejected(NamedTuple):
    reason: str
    output: Output
    started_ns: int
    finished_ns: int


class Failed(NamedTuple):
    error: BaseException


Outcome = Succeeded | Rejected | Failed


@dataclass
class Attempt:
    """One transaction's worth of a batch: which ids were claimed and what each handler did."""

    number: int
    #: Each event's run id (a UUID's text).
    run_ids: dict[str, str]
    claimed: set[str] = field(default_factory=set)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: The ids of ``outcomes`` by the kind of their outcome, in the order they were recorded: the
    #: steps after the handlers ask for one kind at a time, five times a batch.
    by_kind: dict[type, list[str]] = field(default_factory=lambda: {Succeeded: [], Rejected: [], Failed: []})

    def record(self, event_id: str, outcome: Outcome) -> None:
        """What ``event_id``'s handler did in this attempt."""
        self.outcomes[event_id] = outcome
        self.by_kind[type(outcome)].append(event_id)

    def of(self, kind: type[Succeeded] | type[Rejected] | type[Failed]) -> list[str]:
        """The ids whose outcome is of ``kind``, in the order they were recorded."""
        return list(self.by_kind[kind])


@dataclass
class BatchResult:
    succeeded: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    infra_waits: int = 0
    #: The run ids (UUIDs' text) of the events recorded as processed.
    run_ids: dict[str, str] = field(default_factory=dict)

    @property
    def processed(self) -> list[str]:
        """Ids newly recorded in ``processed_events`` by this batch (for the ledger topic)."""
        return self.succeeded + self.rejected + self.dead_lettered

    def add(self, attempt: Attempt, items: Sequence[Item]) -> None:
        self.succeeded += attempt.of(Succeeded)
        self.rejected += attempt.of(Rejected)
        self.duplicates += [item.event_id for item in items if item.event_id not in attempt.claimed]
        committed = attempt.claimed - set(attempt.of(Failed))
        self.run_ids.update((e, attempt.run_ids[e]) for e in committed)


@dataclass(frozen=True)
class Preview:
    """What one event's handler would do (:meth:`UnitOfWork.preview`): nothing of it was kept."""

    event_id: str
    #: ``succeeded``, ``rejected`` (to the review queue), ``failed``, or ``skipped`` (already processed).
    status: str
    output: Output | None = None
    reason: str | None = None
    #: The data-changing SQL statements the handler ran in its savepoint (all rolled back).
    writes: tuple[str, ...] = ()


_WRITE_VERBS = ("insert", "update", "delete", "merge", "copy", "truncate")


class _SendsRefused(Exception):
    """The broker refused some events' stream outputs for good: redo the batch without them."""

    def __init__(self, failures: Mapping[str, BaseException]) -> None:
        super().__init__(f"{len(failures)} event(s) had their stream outputs refused")
        self.failures = dict(failures)


def _verdict(result: bool | str | None) -> str | None:
    """The rejection reason of a validator's answer, or None when it accepts."""
    if result is None or result is True:
        return None
    if result is False:
        return "rejected by validator"
    return str(result)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


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

    # -- a batch ---------------------------------------------------------------------------

    async def process(self, items: Sequence[Item]) -> BatchResult:
        result = BatchResult()
        pending = _first_of_each_id(items, result)
        if not pending:
            return result
        failures = await self._commit_until_done(pending, 1, result)
        for item in pending:
            error = failures.get(item.event_id)
            if error is not None:
                await self._retry_alone(item, error, result)
        return result

    async def preview(self, items: Sequence[Item], *, claim: bool = True) -> list[Preview]:
        """Run each handler as :meth:`process` would, in one transaction that is rolled back.

        Nothing is sent, written or recorded: stream outputs are checked but not sent, and the claim
        of ``processed_events`` is undone with the rest. With ``claim``, events already processed
        are ``skipped`` as a live run would skip them. A failing handler is not retried.
        """
        unique = _first_of_each_id(items, BatchResult())
        previews: list[Preview] = []
        async with self.engine.connect() as conn:
            transaction = await conn.begin()
            try:
                run_ids = {item.event_id: uuid.uuid4() for item in unique}
                claimed = (
                    await batch_writes.claim(await _driver(conn), self.spec.name, run_ids)
                    if claim
                    else set(run_ids)
                )
                for item in unique:
                    if item.event_id not in claimed:
                        previews.append(Preview(item.event_id, "skipped", reason="already processed"))
                        continue
                    previews.append(await self._preview_one(conn, item))
            finally:
                await transaction.rollback()
        return previews

    async def _preview_one(self, conn: AsyncConnection, item: Item) -> Preview:
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            if statement.lstrip().lower().startswith(_WRITE_VERBS):
                statements.append(" ".join(statement.split()))

        sync = conn.sync_connection
        assert sync is not None
        sa_event.listen(sync, "before_cursor_execute", record)
        try:
            outcome = await self._run(conn, item, 1)
        finally:
            sa_event.remove(sync, "before_cursor_execute", record)
        if isinstance(outcome, Succeeded):
            return Preview(item.event_id, "succeeded", outcome.output, writes=tuple(statements))
        if isinstance(outcome, Rejected):
            return Preview(item.event_id, "rejected", outcome.output, outcome.reason, tuple(statements))
        return Preview(item.event_id, "failed", reason=_describe(outcome.error), writes=tuple(statements))

    async def _commit_until_done(
        self, items: Sequence[Item], number: int, result: BatchResult
    ) -> dict[str, BaseException]:
        """Commit one attempt of ``items``; return the handler failures (not committed)."""
        refused: dict[str, BaseException] = {}
        while True:
            try:
                attempt = await self._with_infra_retry(lambda: self._commit(items, number, refused), result)
            except _SendsRefused as exc:
                # Rare (a topic deleted or authorization revoked after the handler checked it): the
                # batch is redone without those events, so their neighbours' handlers run again.
                refused.update(exc.failures)
                continue
            result.add(attempt, items)
            return {e: o.error for e, o in attempt.outcomes.items() if isinstance(o, Failed)}

    async def _commit(
        self, items: Sequence[Item], number: int, refused: Mapping[str, BaseException]
    ) -> Attempt:
        run_ids = random_uuids(len(items))
        attempt = Attempt(number, dict(zip([item.event_id for item in items], run_ids, strict=True)))
        async with self.engine.connect() as conn, conn.begin():
            driver = await _driver(conn)
            attempt.claimed = await batch_writes.claim(driver, self.spec.name, attempt.run_ids)
            for item in items:
                if item.event_id not in attempt.claimed:
                    continue
                prior = refused.get(item.event_id)
                attempt.record(
                    item.event_id, Failed(prior) if prior is not None else await self._run(conn, item, number)
                )
            await self._send(attempt)
            await batch_writes.unclaim(driver, self.spec.name, attempt.of(Failed))
            await self._write(driver, attempt, items)
        return attempt

    # -- the steps ---------------------------------------------------------------------------

    async def _run(self, conn: AsyncConnection, item: Item, number: int) -> Outcome:
        """Run one handler in its own savepoint; keep its writes only if it succeeded."""
        writes = EventWrites(conn)
        ctx = Context(
            agent=self.spec.name,
            event_id=item.event_id,
            trace_id=item.view.trace_id,
            trigger=item.parts.topic,
            attempt=number,
            writes=writes,
        )
        started = time.time_ns()
        try:
            await self.spec.handler(item.view, ctx)
            if writes.used:
                await writes.flush()
            reason = _verdict(self.spec.validate(item.view, ctx.output)) if self.spec.validate else None
        except Exception as exc:
            return await self._failed(item, writes, exc)
        if ctx.output.sends:
            try:
                # Vigil's own look-up: an unreachable broker here is the infrastructure's, and propagates.
                await self.outputs.check_sends(ctx.output.sends)
            except OutputError as exc:
                return await self._failed(item, writes, exc)
        if reason is not None:
            await _undo(writes, None)
            return Rejected(reason, ctx.output, started, time.time_ns())
        if writes.used:
            await writes.keep()
        return Succeeded(ctx.output, started, time.time_ns())

    async def _failed(self, item: Item, writes: EventWrites, error: Exception) -> Failed:
        await _undo(writes, error)
        log.info("agent %s: event %s failed: %s", self.spec.name, item.event_id, _describe(error))
        return Failed(error)

    async def _send(self, attempt: Attempt) -> None:
        """Send the stream outputs of the events that succeeded, and wait for the broker."""
        sends = [s for e in attempt.of(Succeeded) for s in _output(attempt, e).sends]
        if not sends:
            return
        failures = await asyncio.to_thread(self.outputs.send_and_flush, sends)
        if failures:
            raise _SendsRefused(failures)

    async def _write(self, driver: Any, attempt: Attempt, items: Sequence[Item]) -> None:
        """Write outbox rows, run records, review items and wakeups of the attempt."""
        trigger = {item.event_id: item.parts.topic for item in items}
        runs: list[RunRecord] = []
        reviews: list[ReviewRecord] = []
        outbox = []
        wakeups = []
        for event_id, outcome in attempt.outcomes.items():
            run_id = attempt.run_ids[event_id]
            if isinstance(outcome, Succeeded):
                outbox += [(row, event_id) for row in outcome.output.outbox]
                wakeups += outcome.output.wakeups
                runs.append(_run_record(run_id, event_id, trigger[event_id], "succeeded", attempt, outcome))
            elif isinstance(outcome, Rejected):
                reviews.append(
                    ReviewRecord(
                        uuid.uuid4(), event_id, uuid.UUID(run_id), outcome.reason, outcome.output.outbox
                    )
                )
                runs.append(_run_record(run_id, event_id, trigger[event_id], "rejected", attempt, outcome))
        await batch_writes.write_outbox(driver, outbox)
        await batch_writes.write_runs(driver, self.spec.name, runs)
        await batch_writes.write_reviews(driver, self.spec.name, reviews)
        await batch_writes.write_wakeups(driver, self.spec.name, wakeups)

    # -- failures ----------------------------------------------------------------------------

    async def _retry_alone(self, item: Item, error: BaseException, result: BatchResult) -> None:
        """Try a failed event alone, with backoff, until it commits or its tries are used up."""
        for number in range(2, self.spec.retries + 1):
            await asyncio.sleep(backoff_delay(number - 1, base=self.retry_base_delay))
            failures = await self._commit_until_done([item], number, result)
            if item.event_id not in failures:
                return
            error = failures[item.event_id]
        await self._dead_letter(item, error, result)

    async def _dead_letter(self, item: Item, error: BaseException, result: BatchResult) -> None:
        """Send the event to the DLQ, then record it processed with a failed run (in that order)."""
        attempts = self.spec.retries
        await asyncio.to_thread(self.outputs.dead_letter, self.spec.name, item.parts, error, attempts)
        run_id = str(uuid.uuid4())

        async def record() -> bool:
            async with self.engine.connect() as conn, conn.begin():
                driver = await _driver(conn)
                if not await batch_writes.claim(driver, self.spec.name, {item.event_id: run_id}):
                    return False
                now = time.time_ns()
                failed = RunRecord(
                    run_id,
                    item.event_id,
                    item.parts.topic,
                    "failed",
                    attempts,
                    now,
                    now,
                    _describe(error),
                    [],
                )
                await batch_writes.write_runs(driver, self.spec.name, [failed])
            return True

        if await self._with_infra_retry(record, result):
            result.dead_lettered.append(item.event_id)
            result.run_ids[item.event_id] = run_id
        else:
            result.duplicates.append(item.event_id)

    async def _with_infra_retry(self, work: Callable[[], Awaitable[T]], result: BatchResult) -> T:
        """Run ``work`` until it does not fail for the infrastructure's reasons (backoff between)."""
        waits = 0
        while True:
            try:
                return await work()
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                waits += 1
                result.infra_waits += 1
                delay = backoff_delay(waits, base=0.2, max_delay=self.max_infra_delay)
                log.warning(
                    "agent %s: database or broker unavailable (%s); retrying the batch in %.1fs",
                    self.spec.name,
                    _describe(exc),
                    delay,
                )
                await asyncio.sleep(delay)


def _first_of_each_id(items: Sequence[Item], result: BatchResult) -> list[Item]:
    """The batch without repeats of an id (a message delivered twice in one batch)."""
    unique: dict[str, Item] = {}
    for item in items:
        if item.event_id in unique:
            result.duplicates.append(item.event_id)
        else:
            unique[item.event_id] = item
    return list(unique.values())


async def _undo(writes: EventWrites, cause: BaseException | None) -> None:
    """Roll back an event's savepoint. If even that fails, Vigil's own connection is broken: that is
    the infrastructure's failure (the whole batch is retried), whatever the handler raised."""
    try:
        await writes.discard()
    except Exception as exc:
        raise RetryableError(f"the batch's database connection failed: {_describe(exc)}") from (cause or exc)


def _output(attempt: Attempt, event_id: str) -> Output:
    outcome = attempt.outcomes[event_id]
    assert isinstance(outcome, Succeeded | Rejected)
    return outcome.output


def _run_record(
    run_id: str,
    event_id: str,
    trigger: str,
    status: str,
    attempt: Attempt,
    outcome: Succeeded | Rejected,
) -> RunRecord:
    error = outcome.reason if isinstance(outcome, Rejected) else None
    return RunRecord(
        run_id,
        event_id,
        trigger,
        status,
        attempt.number,
        outcome.started_ns,
        outcome.finished_ns,
        error,
        outcome.output.trace,
    )


async def _driver(conn: AsyncConnection) -> Any:
    """The psycopg ``AsyncConnection`` under a SQLAlchemy connection (for COPY and unnest)."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection
