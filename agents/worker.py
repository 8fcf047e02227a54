"""Agents on faust-streaming: each registered agent becomes a Faust agent running units of work.

An agent takes up to ``batch_size`` events at a time with ``noack_take`` and acks them only after
their unit of work committed (``take`` would ack a batch whose body raised: events lost). An
unexpected error stops the worker instead of restarting the agent, because a restarted Faust agent
does not re-read the events it had not acked; the next worker start re-reads them from Kafka.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import faust
from confluent_kafka.admin import AdminClient
from sqlalchemy.ext.asyncio import AsyncEngine

from agents.api import AgentSpec
from agents.db import as_engine, async_engine, installation_id
from agents.feed import QUEUED_BATCHES, BatchFeed, FeedBatch, FeedChannel
from agents.gc_watch import SlowCollections
from agents.ledger import LedgerReader, ProcessedTable
from agents.loop_watch import LoopWatch
from agents.metrics import Metrics
from agents.named_thread import NamedThread
from agents.outputs import KafkaOutputs
from agents.prune import prune_all
from agents.prune_policy import Retentions, retention_warnings
from agents.relay import OutboxRelay
from agents.relay_health import RelayHealth
from agents.scheduler import Scheduler
from agents.unit_of_work import Item, UnitOfWork
from agents.watch import Monitor, WatchedAgent
from agents.watches import WatchRunner
from schemas.codec import Codec
from schemas.errors import PoisonError
from streams.app import faust_datadir, make_app, use_fetch_wait
from streams.drift_publish import DriftPublisher
from streams.kafka import describe_topic_ids, make_admin, make_consumer, make_producer
from streams.lag import group_lag, lag_probe
from streams.ledger_records import ledger_key
from streams.logs import apply_log_levels
from streams.processed_table import digest
from streams.settings import Settings
from streams.views import (
    EVENT_ID_HEADER,
    MessageParts,
    addressed_elsewhere,
    headers_to_dict,
    parts_of_record,
    view_of,
)

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
    #: Per agent, the loop time of its last committed batch (the absence check of a stuck agent).
    progress: dict[str, float] = field(default_factory=dict)
    #: With batch delivery, the feed of each agent that has one (:mod:`agents.feed`), by name.
    #: Each agent's feeds (batch delivery): ``agent_consumers`` of them, all in the agent's group.
    feeds: dict[str, list[BatchFeed]] = field(default_factory=dict)
    #: Per agent, its consumer lag per topic as last measured (status, metrics).
    lag: dict[str, dict[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _relay_thread: threading.Thread | None = None
    metrics: Metrics = field(default_factory=Metrics)
    #: Loop time the runtime started (a worker just started has had no chance to consume yet).
    started_at: float | None = None
    #: Prune outbox rows by age, sent or not: only when Debezium's outbox router publishes them (it
    #: never marks a row sent). Vigil's relay (this worker's, or a ``vigil relay`` process) marks
    #: rows sent, and only sent rows are pruned then. None: by age exactly when this worker does
    #: not relay (``vigil worker`` sets it from the connectors it is configured with).
    outbox_pruned_by_age: bool | None = None
    #: The one wait for the ledger that every agent's start awaits (one log line, not one per agent).
    _ledger_wait: asyncio.Task[None] | None = None
    #: Logs the event loop standing still (:mod:`agents.loop_watch`), from :meth:`start`.
    loop_watch: LoopWatch | None = None

    @classmethod
    def create(cls, settings: Settings, *, read_ledger: bool = True) -> WorkerRuntime:
        engine = async_engine(settings.require_database_url())
        installation = installation_id(settings.require_database_url())
        producer = make_producer(settings, **{"linger.ms": 2})
        codec = Codec.from_registry_url(settings.schema_registry_url)
        table = ProcessedTable(settings.processed_table_size)
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
            relay = OutboxRelay(
                settings,
                settings.require_database_url(),
                make_producer(settings),
                beat_name=f"relay:{settings.app_id}",
                unhealthy_after_s=settings.relay_unhealthy_after_s,
            )
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

    async def topic_ids_of(self, topics: set[str]) -> dict[str, str | None]:
        """The broker's ids of ``topics`` (each looked up once per worker)."""
        return {topic: await self.topic_id(topic) for topic in topics}

    async def topic_id(self, topic: str) -> str | None:
        """The broker's id of ``topic``, looked up once per worker."""
        if topic not in self.topic_ids:
            if self.admin is None:
                return None
            found = await asyncio.to_thread(describe_topic_ids, self.admin, [topic])
            self.topic_ids[topic] = found.get(topic)
        return self.topic_ids[topic]

    async def ledger_read(self) -> None:
        """Wait until the ledger reader has read ``vigil.processed-events`` to its end, or for
        ``ledger_wait_s``: events replayed or redelivered at start are then skipped from memory, not
        claimed again in Postgres one batch at a time. Correctness never depends on it. Every agent
        awaits the same wait."""
        if self._ledger_wait is None:
            self._ledger_wait = asyncio.ensure_future(self._wait_for_ledger())
        await asyncio.shield(self._ledger_wait)

    async def _wait_for_ledger(self) -> None:
        ledger, wait_s = self.ledger, self.settings.ledger_wait_s
        if ledger is None or ledger.settled.is_set() or wait_s <= 0:
            return
        log.info(
            "waiting up to %.0f s for the ledger of processed events (%d keys read)", wait_s, len(self.table)
        )
        if not await asyncio.to_thread(ledger.settled.wait, wait_s):
            log.warning(
                "the ledger of processed events was not read within %.0f s (%d keys so far); starting "
                "anyway: Postgres checks the events it has not told yet (VIGIL_LEDGER_WAIT_S)",
                wait_s,
                len(self.table),
            )

    def start_ledger(self) -> None:
        """Start reading ``vigil.processed-events`` (once). ``vigil worker`` calls it before Faust
        starts, so that the agents' wait for the ledger (:meth:`ledger_read`) overlaps Faust's own
        start-up instead of following it (≈ 1 s of a worker's start)."""
        if self.ledger is not None and self.ledger.ident is None:
            self.ledger.start()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        self.loop_watch = LoopWatch(loop)
        self.loop_watch.start()
        self.start_ledger()
        if self.relay is not None:
            self._relay_thread = NamedThread(
                target=self._run_relay, args=(self.relay,), name="vigil-outbox-relay", daemon=True
            )
            self._relay_thread.start()
            self._threads.append(self._relay_thread)
        for name, part in (("vigil-scheduler", self.scheduler), ("vigil-watches", self.watches)):
            if part is not None:
                thread = NamedThread(target=part.run, args=(self._stop,), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run_relay(self, relay: OutboxRelay) -> None:
        try:
            relay.run(self._stop)
        except BaseException:  # run() survives any Exception; anything else must not go unseen
            log.critical("the outbox relay thread died: outbox rows are not published", exc_info=True)
            raise

    def relay_health(self) -> RelayHealth | None:
        """The relay's health (None: this worker does not relay); a dead thread is unhealthy."""
        if self.relay is None:
            return None
        thread = self._relay_thread
        return self.relay.health(thread_alive=thread is None or thread.is_alive())

    @property
    def prunes_outbox_by_age(self) -> bool:
        if self.outbox_pruned_by_age is not None:
            return self.outbox_pruned_by_age
        return not self.settings.outbox_relay

    @property
    def healthy(self) -> bool:
        health = self.relay_health()
        return health is None or health.healthy

    async def close(self) -> None:
        """Stop the feeds (each commits what its agent finished), the ledger reader, the relay and
        the other threads, flush the producer and close the database pool; how long each took is
        logged, as a stop that a supervisor cuts short says nothing else."""
        took: list[str] = []
        started = step = time.monotonic()

        def lap(what: str) -> None:
            nonlocal step
            now = time.monotonic()
            took.append(f"{what} {now - step:.1f}s")
            step = now

        self._stop.set()
        if self.loop_watch is not None:
            self.loop_watch.stop()
        feeds = [feed for agent_feeds in self.feeds.values() for feed in agent_feeds]
        for feed in feeds:
            feed.stop()
        for feed in feeds:
            await asyncio.to_thread(feed.join, 10)
        lap("feeds")
        if self.ledger is not None:
            self.ledger.stop()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 10)
        lap("threads")
        if self.relay is not None:
            await asyncio.to_thread(self.relay.close)
        await asyncio.to_thread(self.outputs.producer.flush, 10)
        lap("producers")
        await self.engine.dispose()
        lap("database pool")
        log.info("worker runtime closed in %.1fs (%s)", time.monotonic() - started, ", ".join(took))

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


@dataclass
class PreparedBatch:
    """A batch decoded and looked up in the table of processed events, ready for its unit of work."""

    consumed: int
    items: list[Item] = field(default_factory=list)
    #: Each item's ledger key and its digest, made once: looked up before, added and published after.
    ledger: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    skipped: int = 0


async def prepare_batch(
    spec: AgentSpec, runtime: WorkerRuntime, messages: Sequence[MessageParts]
) -> PreparedBatch:
    """Decode the messages and drop those with nothing to do: known ids, tombstones, others' ticks;
    dead-letter those that can never be read. Runs no handler and writes nothing else."""
    batch = PreparedBatch(len(messages))
    items, ledger = batch.items, batch.ledger
    known = runtime.table.known_digest
    agent = spec.name
    key = d = b""
    for parts in messages:
        # A duplicate that names its id in a header is skipped before it is decoded: a redelivered
        # or replayed batch costs little more than reading it.
        header_id = parts.headers.get(EVENT_ID_HEADER)
        if header_id:
            key = ledger_key(agent, header_id.decode("utf-8", errors="replace"))
            d = digest(key)
            if known(d):
                batch.skipped += 1
                continue
        try:
            view = view_of(parts, runtime.outputs.codec)
        except PoisonError as exc:
            await asyncio.to_thread(runtime.outputs.dead_letter, agent, parts, exc, 0)
            runtime.count("poison", 1)
            continue
        if view is None:  # a tombstone: nothing to do
            continue
        if addressed_elsewhere(view, agent):
            runtime.count("ticks_for_others", 1)
            continue
        # An id from the header was looked up above (the view's id is that header).
        if not header_id:
            key = ledger_key(agent, view.event_id)
            d = digest(key)
            if known(d):
                batch.skipped += 1
                continue
        items.append(Item(parts, view))
        ledger[view.event_id] = (key, d)
    if batch.skipped:
        runtime.count("skipped_by_ledger", batch.skipped)
    return batch


async def commit_batch(
    spec: AgentSpec, uow: UnitOfWork, runtime: WorkerRuntime, batch: PreparedBatch
) -> None:
    """Run the unit of work over a prepared batch, then add its events to the table of processed
    events and publish their ledger records. Does not ack."""
    items = batch.items
    if not items:
        runtime.metrics.observe_batch(
            spec.name, consumed=batch.consumed, processed=0, duplicates=batch.skipped, dead_lettered=0,
            rejected=0, timestamps_ms=[], skipped_by_ledger=batch.skipped,
        )  # fmt: skip
        return
    batch_key = id(items)
    stamps = [item.parts.timestamp_ms for item in items if item.parts.timestamp_ms]
    if stamps:
        runtime.inflight[batch_key] = min(stamps)
    try:
        result = await uow.process(items)
    finally:
        runtime.inflight.pop(batch_key, None)
    committed = [batch.ledger[event_id] for event_id in result.processed]
    runtime.table.add_committed([key for key, _ in committed], [d for _, d in committed])
    runtime.progress[spec.name] = asyncio.get_running_loop().time()
    runtime.outputs.publish_processed(spec.name, items, result, {e: k for e, (k, _) in batch.ledger.items()})
    runtime.count("succeeded", len(result.succeeded))
    runtime.count("duplicates", len(result.duplicates))
    runtime.count("dead_lettered", len(result.dead_lettered))
    runtime.count("rejected", len(result.rejected))
    runtime.metrics.observe_batch(
        spec.name,
        consumed=batch.consumed,
        processed=len(result.succeeded),
        duplicates=batch.skipped + len(result.duplicates),
        dead_lettered=len(result.dead_lettered),
        rejected=len(result.rejected),
        timestamps_ms=stamps,
        skipped_by_ledger=batch.skipped,
    )


async def run_batch(
    spec: AgentSpec, uow: UnitOfWork, runtime: WorkerRuntime, messages: Sequence[MessageParts]
) -> None:
    """Prepare a batch, then commit it (:func:`prepare_batch`, :func:`commit_batch`). Does not ack."""
    await commit_batch(spec, uow, runtime, await prepare_batch(spec, runtime, messages))


async def _run_or_crash(app: faust.App, spec: AgentSpec, work: Awaitable[None]) -> None:
    try:
        await work
    except Exception as exc:
        log.critical("agent %s: unexpected error, stopping the worker: %r", spec.name, exc, exc_info=True)
        await app.crash(exc)
        raise


def _agent_body(app: faust.App, spec: AgentSpec, runtime: WorkerRuntime) -> Callable[[Any], Awaitable[None]]:
    """Faust's delivery: take up to ``batch_size`` events, run them, then ack them one by one."""

    async def process(stream: Any) -> None:
        uow = UnitOfWork(spec, runtime.engine, runtime.outputs)
        await runtime.ledger_read()
        settings = runtime.settings
        size = spec.batch_size or settings.batch_size
        window_ms = spec.batch_window_ms if spec.batch_window_ms is not None else settings.batch_window_ms
        async for events in stream.noack_take(size, within=window_ms / 1000):
            messages = [event.message for event in events]
            ids = await runtime.topic_ids_of({m.topic for m in messages})
            parts = [parts_of(m, ids[m.topic]) for m in messages]
            await _run_or_crash(app, spec, run_batch(spec, uow, runtime, parts))
            for event in events:
                await stream.ack(event)

    process.__name__ = _body_name(spec)
    return process


def _feed_body(
    app: faust.App, spec: AgentSpec, runtime: WorkerRuntime, feed: BatchFeed
) -> Callable[[Any], Awaitable[None]]:
    """Batch delivery (:mod:`agents.feed`): each value of the stream is a whole batch."""

    async def process(stream: Any) -> None:
        uow = UnitOfWork(spec, runtime.engine, runtime.outputs)
        await runtime.ledger_read()
        feed.start(asyncio.get_running_loop())

        async def commit(batch: FeedBatch, prepared: PreparedBatch) -> None:
            await commit_batch(spec, uow, runtime, prepared)
            feed.done(batch)

        async def consume() -> None:
            # Two batches overlap: the next one is decoded and looked up while the one before waits
            # for Postgres. Its unit of work starts only once the one before committed, so handlers
            # still run one batch after the other, and see what the batch before wrote.
            running: asyncio.Task[None] | None = None
            try:
                async for batch in stream:
                    feed.take(batch)
                    ids = await runtime.topic_ids_of({m.topic() for m in batch.messages})
                    parts = [parts_of_record(m, ids[m.topic()]) for m in batch.messages]
                    prepared = await prepare_batch(spec, runtime, parts)
                    if running is not None:
                        await running
                    running = asyncio.create_task(commit(batch, prepared))
                if running is not None:
                    await running
            finally:
                if running is not None and not running.done():
                    running.cancel()

        await _run_or_crash(app, spec, consume())

    process.__name__ = _body_name(spec)
    return process


def feed_agent_name(agent: str, n: int) -> str:
    """The Faust agent of an agent's ``n``-th feed (from 0): the agent's own name for the first."""
    return agent if n == 0 else f"{agent}#{n + 1}"


def _body_name(spec: AgentSpec) -> str:
    return f"vigil_agent_{spec.name.replace('.', '_').replace('-', '_')}"


PRUNE_FIRST_AFTER_S = 600.0
PRUNE_EVERY_S = 3600.0


async def prune_periodically(runtime: WorkerRuntime, stop: asyncio.Event | None = None) -> None:
    """Prune every table by its retention now and then; ``processed_events`` never past an unacked event's time.

    Pruned processed rows get tombstones in ``vigil.processed-events`` (through the worker's producer).
    """
    settings = runtime.settings
    retentions = Retentions.from_days(
        processed=settings.processed_retention_days,
        outbox=settings.outbox_retention_days,
        runs=settings.runs_retention_days,
        deliveries=settings.deliveries_retention_days,
        reviews=settings.reviews_retention_days,
    )
    for warning in retention_warnings(retentions):
        log.warning("retention settings: %s", warning)
    await asyncio.sleep(PRUNE_FIRST_AFTER_S)
    engine = as_engine(settings.require_database_url())
    try:
        while stop is None or not stop.is_set():
            oldest = min(runtime.inflight.values(), default=None)
            bound = datetime.fromtimestamp(oldest / 1000, UTC) - timedelta(hours=1) if oldest else None
            try:
                deleted = await asyncio.to_thread(
                    prune_all,
                    engine,
                    retentions,
                    producer=runtime.outputs.producer,
                    worker_relays_outbox=not runtime.prunes_outbox_by_age,
                    not_newer_than=bound,
                )
                for table, count in deleted.items():
                    runtime.count(f"pruned_{table}", count)
            except Exception as exc:  # pruning is housekeeping: log and try again later
                log.warning("pruning failed: %s", exc)
            await asyncio.sleep(PRUNE_EVERY_S)
    finally:
        engine.dispose()


def make_monitor(settings: Settings, specs: Sequence[AgentSpec]) -> Monitor:
    """The absence and repeated-failures monitor of this worker, watching ``specs`` too."""
    publisher = DriftPublisher(settings)
    return Monitor(
        as_engine(settings.require_database_url()),
        publisher.publish_records,
        agents=[
            WatchedAgent(s.name, s.topics, s.alert_after_failures or settings.alert_after_failures)
            for s in specs
        ],
        beat_every_s=settings.agent_beat_every_s,
        beat_grace_s=settings.agent_beat_grace_s,
        default_failures_in_a_row=settings.alert_after_failures,
    )


async def watch_periodically(
    runtime: WorkerRuntime, monitor: Monitor, stop: asyncio.Event | None = None
) -> None:
    """Beat this worker's agents, raise and resolve absence and repeated-failure alerts.

    A failed round (database or broker down) is logged and retried next round: the monitor's
    claims roll back with it, so nothing is lost or raised twice.
    """
    settings = runtime.settings
    last_beat = 0.0
    loop = asyncio.get_running_loop()
    probes: dict[str, Any] = {}
    while stop is None or not stop.is_set():
        try:
            if loop.time() - last_beat >= settings.agent_beat_every_s:
                await _measure_lag(runtime, monitor, probes)
                await asyncio.to_thread(
                    monitor.beat_agents,
                    partial(agent_alive, runtime, now=loop.time()),
                    lambda name: {"lag": runtime.lag.get(name, {})},
                )
                last_beat = loop.time()
            await asyncio.to_thread(runtime.metrics.refresh_from_database, monitor.engine)
            for event_id in await asyncio.to_thread(monitor.round):
                runtime.count("alerts_published", 1)
                runtime.metrics.alerts.inc()
                log.info("watch: published %s", event_id)
        except Exception as exc:
            log.warning("watch: round failed, retrying: %s", exc)
        await asyncio.sleep(settings.watch_interval_s)


def agent_group(runtime: WorkerRuntime, agent: str) -> str:
    """The consumer group whose offsets say how far ``agent`` got: its feed's with batch delivery,
    else the app's (Faust's delivery)."""
    feeds = runtime.feeds.get(agent)
    return feeds[0].group if feeds else runtime.settings.app_id


async def _measure_lag(runtime: WorkerRuntime, monitor: Monitor, probes: dict[str, Any]) -> None:
    """Each watched agent's lag, through one offsets-only consumer per group (made on first use)."""
    for watched in monitor.agents:
        try:
            group = agent_group(runtime, watched.name)
            if group not in probes:
                probes[group] = await asyncio.to_thread(lag_probe, runtime.settings, group)
            runtime.lag[watched.name] = await asyncio.to_thread(group_lag, probes[group], watched.topics)
            runtime.metrics.set_lag(watched.name, runtime.lag[watched.name])
        except Exception as exc:  # unknown lag is not evidence of a stuck agent: keep the last value
            log.debug("watch: lag of %s not measured: %s", watched.name, exc)


def agent_alive(runtime: WorkerRuntime, name: str, *, now: float) -> bool:
    """An agent is alive when nothing waits for it, or it committed a batch within its grace.

    An agent that stops consuming while its topics have lag therefore stops beating, and its
    heartbeat ``agent:<name>`` goes overdue like any other.
    """
    waiting = sum(runtime.lag.get(name, {}).values())
    if waiting == 0:
        return True
    last = runtime.progress.get(name)
    settings = runtime.settings
    window = settings.agent_beat_every_s + settings.agent_beat_grace_s
    started = runtime.started_at if runtime.started_at is not None else now
    return (last is not None and now - last <= window) or now - started <= window


HEALTH_EVERY_S = 5.0


async def watch_health(runtime: WorkerRuntime, stop: asyncio.Event | None = None) -> None:
    """Log when the worker turns unhealthy (a relay failing past the threshold, or its thread gone) and back."""
    was_healthy = True
    while stop is None or not stop.is_set():
        health = runtime.relay_health()
        if health is not None and health.healthy != was_healthy:
            if health.healthy:
                log.warning("worker healthy again: the outbox relay publishes")
            else:
                log.error("worker unhealthy: outbox relay: %s", health.reason)
            was_healthy = health.healthy
        await asyncio.sleep(HEALTH_EVERY_S)


#: Allocations (minus deallocations) between two young collections; CPython's default is 700.
YOUNG_GC_THRESHOLD = 20_000


def settle_garbage_collector() -> None:
    """Keep the garbage collector's full collections off the agents' hot path.

    A full collection walks every object it tracks. Once the worker is up that is ≈ 170k objects
    (the modules, classes and services of Faust, aiokafka, SQLAlchemy and the agents), and each
    full collection stopped the event loop for 90-140 ms, several times in a 20-s run at 1,000
    events/s: the worst CDC latencies. ``gc.freeze()`` moves what start-up made into a generation no
    collection walks again, and a higher young threshold makes collections rarer, not longer (the
    events of a batch are garbage by the time it is acked). A collection that still takes 50 ms or
    more is logged (:mod:`agents.gc_watch`).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)
    if not any(isinstance(callback, SlowCollections) for callback in gc.callbacks):
        gc.callbacks.append(SlowCollections())


def build_app(settings: Settings, specs: Sequence[AgentSpec], runtime: WorkerRuntime) -> faust.App:
    """The Faust app with one Faust agent per registered Vigil agent."""
    app = make_app(settings, settings.app_id)
    faust_datadir(settings, settings.app_id).parent.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        # An agent asking for several actors keeps Faust's delivery (a feed is one consumer, in order).
        if settings.delivery == "batch" and spec.concurrency == 1:
            for n in range(settings.agent_consumers):
                feed_channel = FeedChannel(app, maxsize=QUEUED_BATCHES)
                feed = BatchFeed(settings, spec, feed_channel, crash=app.crash, member=n)
                runtime.feeds.setdefault(spec.name, []).append(feed)
                app.agent(feed_channel, name=feed_agent_name(spec.name, n))(
                    _feed_body(app, spec, runtime, feed)
                )
            continue
        channel = app.topic(*spec.topics, key_serializer="raw", value_serializer="raw")
        app.agent(channel, name=spec.name, concurrency=spec.concurrency)(_agent_body(app, spec, runtime))
        # Faust's consumer reads this agent's topics.
        use_fetch_wait(app.conf.id, settings.fetch_wait_ms(faust=True))

    async def start_runtime() -> None:
        # After Faust configured logging: it leaves the root logger at DEBUG (its spinner; ~15% of
        # throughput) and a handler that would drop Vigil's own information.
        apply_log_levels(settings.log_level)
        settle_garbage_collector()
        runtime.start()

    async def close_runtime(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await runtime.close()

    async def prune() -> None:
        await prune_periodically(runtime)

    async def health() -> None:
        await watch_health(runtime)

    async def watch() -> None:
        monitor = await asyncio.to_thread(make_monitor, settings, specs)
        await watch_periodically(runtime, monitor)

    app.task(start_runtime)
    app.task(prune)
    app.task(health)
    app.task(watch)
    app.on_before_shutdown.connect(close_runtime)

    return app
