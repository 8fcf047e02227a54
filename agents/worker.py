"""Agents on faust-streaming: each registered agent becomes a Faust agent running units of work.

An agent takes up to ``batch_size`` events at a time with ``noack_take`` and acks them only after
their unit of work committed (``take`` would ack a batch whose body raised: events lost). An
unexpected error stops the worker instead of restarting the agent, because a restarted Faust agent
does not re-read the events it had not acked; the next worker start re-reads them from Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from confluent_kafka.admin import AdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.api import AgentSpec
from agents.db import as_engine, async_engine, installation_id
from agents.ledger import LedgerReader, ProcessedTable
from agents.outputs import KafkaOutputs
from agents.prune import prune_processed_events
from agents.relay import OutboxRelay
from agents.scheduler import Scheduler
from agents.unit_of_work import Item, UnitOfWork
from agents.watches import WatchRunner
from schemas.codec import Codec
from schemas.errors import PoisonError
from streams.app import make_app
from streams.kafka import describe_topic_ids, make_admin, make_consumer, make_producer
from streams.settings import Settings
from streams.views import MessageParts, addressed_elsewhere, headers_to_dict, view_of

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    """What the agents of one worker process share."""

    settings: Settings
    engine: AsyncEngine
    outputs: KafkaOutputs
    table: ProcessedTable
    ledger: LedgerReader | None = None
    relay: OutboxRelay | None = None
    scheduler: Scheduler | None = None
    watches: WatchRunner | None = None
    admin: AdminClient | None = None
    stats: dict[str, int] = field(default_factory=dict)
    #: Broker ids of the topics consumed, for the ids of messages that carry none.
    topic_ids: dict[str, str | None] = field(default_factory=dict)
    #: Oldest message time (ms) of each batch not yet acked: pruning never goes past it.
    inflight: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings, *, read_ledger: bool = True) -> WorkerRuntime:
        engine = async_engine(settings.require_database_url())
        installation = installation_id(settings.require_database_url())
        producer = make_producer(settings, **{"linger.ms": 2})
        codec = Codec.from_registry_url(settings.schema_registry_url)
        table = ProcessedTable()
        ledger = None
        if read_ledger:
            consumer = make_consumer(
                settings,
                f"{settings.app_id}-ledger-reader",
                **{"enable.auto.commit": False, "enable.partition.eof": True},
            )
            ledger = LedgerReader(
                consumer,
                table,
                installation=installation,
                retention_s=settings.processed_retention_days * 86400,
            )
        relay = None
        if settings.outbox_relay:
            relay = OutboxRelay(settings, settings.require_database_url(), make_producer(settings))
        outputs = KafkaOutputs(producer, codec, installation=installation)
        scheduler = watches = None
        if settings.scheduler:
            url = settings.require_database_url()
            scheduler = Scheduler(settings, url, make_producer(settings), codec)
            watches = WatchRunner(settings, url, make_producer(settings), codec)
        return cls(
            settings,
            engine,
            outputs,
            table,
            ledger,
            relay,
            scheduler=scheduler,
            watches=watches,
            admin=make_admin(settings),
        )

    async def topic_id(self, topic: str) -> str | None:
        """The broker's id of ``topic``, looked up once per worker."""
        if topic not in self.topic_ids:
            if self.admin is None:
                return None
            found = await asyncio.to_thread(describe_topic_ids, self.admin, [topic])
            self.topic_ids[topic] = found.get(topic)
        return self.topic_ids[topic]

    def start(self) -> None:
        if self.ledger is not None:
            self.ledger.start()
        if self.relay is not None:
            relay = self.relay
            thread = threading.Thread(
                target=relay.run, args=(self._stop,), name="vigil-outbox-relay", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        for name, part in (("vigil-scheduler", self.scheduler), ("vigil-watches", self.watches)):
            if part is not None:
                thread = threading.Thread(target=part.run, args=(self._stop,), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    async def close(self) -> None:
        self._stop.set()
        if self.ledger is not None:
            self.ledger.stop()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 10)
        if self.relay is not None:
            await asyncio.to_thread(self.relay.close)
        await asyncio.to_thread(self.outputs.producer.flush, 10)
        await self.engine.dispose()

    def count(self, name: str, n: int) -> None:
        self.stats[name] = self.stats.get(name, 0) + n


def parts_of(message: Any, topic_id: str | None = None) -> MessageParts:
    """The parts of a Faust ``Message``."""
    timestamp = message.timestamp
    return MessageParts(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=headers_to_dict(message.headers),
        timestamp_ms=int(timestamp * 1000) if timestamp else None,
        topic_id=topic_id,
    )


async def run_batch(
    spec: AgentSpec, uow: UnitOfWork, runtime: WorkerRuntime, messages: Sequence[Any]
) -> None:
    """Decode, skip known ids, run the unit of work, publish the ledger records. Does not ack."""
    items: list[Item] = []
    for message in messages:
        parts = parts_of(message, await runtime.topic_id(message.topic))
        try:
            view = view_of(parts, runtime.outputs.codec)
        except PoisonError as exc:
            await asyncio.to_thread(runtime.outputs.dead_letter, spec.name, parts, exc, 0)
            runtime.count("poison", 1)
            continue
        if view is None:  # a tombstone: nothing to do
            continue
        if addressed_elsewhere(view, spec.name):
            runtime.count("ticks_for_others", 1)
            continue
        if runtime.table.known(spec.name, view.event_id):
            runtime.count("skipped_by_ledger", 1)
            continue
        items.append(Item(parts, view))
    if not items:
        return
    batch_key = id(items)
    stamps = [item.parts.timestamp_ms for item in items if item.parts.timestamp_ms]
    if stamps:
        runtime.inflight[batch_key] = min(stamps)
    try:
        result = await uow.process(items)
    finally:
        runtime.inflight.pop(batch_key, None)
    runtime.table.add(spec.name, result.processed)
    runtime.outputs.publish_processed(spec.name, items, result)
    runtime.count("succeeded", len(result.succeeded))
    runtime.count("duplicates", len(result.duplicates))
    runtime.count("dead_lettered", len(result.dead_lettered))
    runtime.count("rejected", len(result.rejected))


def _agent_body(app: faust.App, spec: AgentSpec, runtime: WorkerRuntime) -> Callable[[Any], Awaitable[None]]:
    async def process(stream: Any) -> None:
        uow = UnitOfWork(spec, runtime.engine, runtime.outputs)
        async for events in stream.noack_take(spec.batch_size, within=0.05):
            try:
                await run_batch(spec, uow, runtime, [event.message for event in events])
            except Exception as exc:
                log.critical(
                    "agent %s: unexpected error, stopping the worker: %r", spec.name, exc, exc_info=True
                )
                await app.crash(exc)
                raise
            for event in events:
                await stream.ack(event)

    process.__name__ = f"vigil_agent_{spec.name.replace('.', '_').replace('-', '_')}"
    return process


PRUNE_FIRST_AFTER_S = 600.0
PRUNE_EVERY_S = 3600.0


async def prune_periodically(runtime: WorkerRuntime, stop: asyncio.Event | None = None) -> None:
    """Delete expired ``processed_events`` rows now and then, never past an unacked event's time."""
    await asyncio.sleep(PRUNE_FIRST_AFTER_S)
    engine = as_engine(runtime.settings.require_database_url())
    try:
        while stop is None or not stop.is_set():
            oldest = min(runtime.inflight.values(), default=None)
            bound = datetime.fromtimestamp(oldest / 1000, UTC) - timedelta(hours=1) if oldest else None
            try:
                deleted = await asyncio.to_thread(
                    prune_processed_events,
                    engine,
                    timedelta(days=runtime.settings.processed_retention_days),
                    not_newer_than=bound,
                )
                runtime.count("pruned", deleted)
            except Exception as exc:  # pruning is housekeeping: log and try again later
                log.warning("pruning processed_events failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY_S)
    finally:
        engine.dispose()


def build_app(settings: Settings, specs: Sequence[AgentSpec], runtime: WorkerRuntime) -> faust.App:
    """The Faust app with one Faust agent per registered Vigil agent."""
    app = make_app(settings, settings.app_id)
    for spec in specs:
        channel = app.topic(*spec.topics, key_serializer="raw", value_serializer="raw")
        app.agent(channel, name=spec.name, concurrency=spec.concurrency)(_agent_body(app, spec, runtime))

    async def calm_root_logger() -> None:
        # `faust worker` leaves the root logger at DEBUG (its spinner); that costs ~15% throughput.
        logging.getLogger().setLevel(logging.WARNING)

    async def close_runtime(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.close()

    async def prune() -> None:
        await prune_periodically(runtime)

    app.task(calm_root_logger)
    app.task(prune)
    app.on_before_shutdown.connect(close_runtime)

    return app
