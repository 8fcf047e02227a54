"""The sink consumer loop: outbox topic → one sink, exactly one recorded delivery per outbox id.

For each message: decode it (poison goes to ``vigil.dlq``), claim its delivery row, attempt, mark
it ``delivered``, then store the offset. Failures are retried with backoff up to the policy's
budget, then the message is dead-lettered with headers naming the error and source position, the
row marked ``failed``, and the partition moves on.

Redelivered messages (a relay that published twice, a restart before the offset commit, a new
consumer group reading from the beginning) find their row ``delivered`` and are skipped.

Durability and speed: the per-message claim and mark commit with ``synchronous_commit = off`` on
the runner's own autocommit connection (a commit costs a WAL flush, ~3 ms here, which would otherwise cap a
sink near 150 deliveries/s). A sink process that dies loses nothing by it: the commits are in the
running Postgres. Only a Postgres crash can lose the last fraction of a second of records, and
then only for messages whose Kafka offsets are not committed yet, because offsets are committed
(``checkpoint_every`` messages or ``checkpoint_interval`` seconds, and on stop) only right after a
synchronous commit, which makes every earlier commit durable. Those messages are consumed again
and re-attempted with the same idempotency key: the same window as a crash after the effect and
before its record.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from sqlalchemy import Engine, PoolProxiedConnection, text

from agents.backoff import RetryPolicy
from agents.db import as_engine
from agents.outbox_mapping import OutboxEvent, decode_outbox_message, header_list
from agents.sinks import deliveries
from agents.sinks.base import DeliveryRetryableError, Sink
from agents.sinks.decisions import ClaimDecision, decide_claim, sink_dead_letter_headers
from schemas.errors import DecodeError, PoisonError, ServiceError
from streams.catalog import DLQ, TopicSpec
from streams.deadletter import DeadLetter, dead_letter_of
from streams.kafka import make_consumer, make_producer
from streams.outgoing import Outgoing
from streams.produce import produce_all
from streams.settings import Settings
from streams.topics import ensure_topics

log = logging.getLogger(__name__)

#: Retries stay well inside librdkafka's max.poll.interval.ms (300 s): about 15 s in all.
DEFAULT_POLICY = RetryPolicy(max_attempts=5, base=1.0, factor=2.0, max_delay=8.0, jitter=0.2)

#: Consumer properties the loop needs: offsets are committed by the checkpoints only.
# Outbox topics appear when the first row of an aggregatetype is relayed: look for new topics
# (and regex matches) every few seconds, not librdkafka's default five minutes.
CONSUMER_CONFIG = {"enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 3000}


@dataclass
class SinkStats:
    """Counters of one runner; ``seen`` counts messages taken from the topic."""

    seen: int = 0
    delivered: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    dead_lettered: int = 0


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class SinkRunner:
    """Feeds messages to one sink with the bookkeeping; :meth:`run` is the consumer loop."""

    def __init__(
        self,
        sink: Sink,
        engine: Engine,
        dlq_producer: Producer,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        retry_failed: bool = False,
        dlq_topic: str = DLQ,
        rng: random.Random | None = None,
        flush_timeout: float = 30.0,
        checkpoint_every: int = 500,
        checkpoint_interval: float = 2.0,
    ) -> None:
        self.sink = sink
        self.engine = engine
        self.dlq_producer = dlq_producer
        self.policy = policy
        self.retry_failed = retry_failed
        self.dlq_topic = dlq_topic
        self.rng = rng or random.Random()
        self.flush_timeout = flush_timeout
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.stats = SinkStats()
        self._pooled: PoolProxiedConnection | None = None
        self._conn: psycopg.Connection[Any] | None = None

    # --- the database connection --------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection of the bookkeeping (:mod:`agents.sinks.deliveries`)."""
        if self._conn is None:
            # Each statement its own transaction (one round trip), not waiting for the WAL flush.
            # Session-wide on a connection of the runner's own, discarded (never pooled) after.
            self._pooled = self.engine.raw_connection()
            conn = self._pooled.driver_connection
            assert isinstance(conn, psycopg.Connection)
            conn.autocommit = True
            conn.execute("SET synchronous_commit = off")
            self._conn = conn
        return self._conn

    def _release(self) -> None:
        if self._pooled is not None:
            self._pooled.invalidate()
            self._pooled.close()
        self._pooled = None
        self._conn = None

    def durable_checkpoint(self) -> None:
        """One synchronous commit; when it returns, every earlier commit of this runner is on disk.

        The WAL is flushed in order, so a commit that waits for its own record waits for all
        records before it, whichever session wrote them.
        """
        with self.engine.begin() as conn:
            conn.execute(text("SELECT txid_current()"))  # an xid, so the commit is a real one

    # --- one message --------------------------------------------------------------------------

    def handle(self, message: Message, stop_event: threading.Event) -> bool:
        """Deliver one message (or skip or dead-letter it). False: stopped mid-way, do not ack it."""
        self.stats.seen += 1
        try:
            event = decode_outbox_message(
                message.topic() or "", message.key(), message.value(), header_list(message.headers())
            )
        except DecodeError as exc:
            self._dead_letter(message, exc, attempts=0)
            return True
        conn = self._connection()
        while True:
            claim = deliveries.claim(conn, self.sink.name, event.id, retry_failed=self.retry_failed)
            decision = decide_claim(claim.status, claim.attempts, self.policy)
            if decision is ClaimDecision.SKIP:
                self.stats.skipped += 1
                return True
            if decision is ClaimDecision.GIVE_UP:
                error = claim.last_error or "attempts used up by processes that stopped mid-delivery"
                self._give_up(message, event, claim.attempts - 1, PoisonError(error))
                return True
            try:
                self.sink.deliver(event, claim.attempts)
            except PoisonError as exc:
                self._give_up(message, event, claim.attempts, exc)
                return True
            except Exception as exc:
                # Retryable errors, and anything unexpected from the sink: retried, then dead-lettered.
                if self.policy.gives_up_after(claim.attempts):
                    self._give_up(message, event, claim.attempts, exc)
                    return True
                deliveries.record_error(conn, self.sink.name, event.id, _error_text(exc))
                retry_after = exc.retry_after if isinstance(exc, DeliveryRetryableError) else None
                delay = self.policy.delay(claim.attempts, self.rng, retry_after)
                log.warning(
                    "%s: delivery of %s failed (attempt %d), retrying in %.1fs: %s",
                    self.sink.name,
                    event.id,
                    claim.attempts,
                    delay,
                    exc,
                )
                self.stats.retried += 1
                if stop_event.wait(delay):
                    return False
                continue
            deliveries.mark_delivered(conn, self.sink.name, event.id)
            self.stats.delivered += 1
            return True

    def _give_up(self, message: Message, event: OutboxEvent, attempts: int, exc: BaseException) -> None:
        # Dead letter first: a crash before the row says failed re-runs the give-up (a duplicate
        # dead letter, same event id) rather than losing it.
        self._dead_letter(message, exc, attempts=attempts)
        conn = self._connection()
        deliveries.mark_failed(conn, self.sink.name, event.id, _error_text(exc))
        self.stats.failed += 1
        log.error("%s: gave up on %s after %d attempt(s): %s", self.sink.name, event.id, attempts, exc)

    def _dead_letter(self, message: Message, exc: BaseException, *, attempts: int) -> None:
        letter = dead_letter_of(message, exc)
        letter = DeadLetter(
            key=letter.key,
            value=letter.value,
            headers=letter.headers + sink_dead_letter_headers(self.sink.name, attempts),
        )
        produce_all(
            self.dlq_producer,
            [Outgoing(self.dlq_topic, letter.key, letter.value, letter.headers)],
            what=f"a dead letter to {self.dlq_topic}",
            timeout=self.flush_timeout,
            refusal=ServiceError,
        )
        self.stats.dead_lettered += 1

    # --- the loop -----------------------------------------------------------------------------

    def _commit_offsets(self, consumer: Consumer) -> None:
        self.durable_checkpoint()
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError._NO_OFFSET:
                return
            # A failed offset commit only means more redelivery (skipped as delivered) later.
            log.warning("%s: offset commit failed: %s", self.sink.name, exc)

    def run(
        self,
        consumer: Consumer,
        topics: Sequence[str],
        stop_event: threading.Event,
        poll_timeout: float = 0.5,
    ) -> SinkStats:
        """Consume ``topics`` (a ``^regex`` works too) until ``stop_event``; closes the consumer.

        ``consumer`` should have ``enable.auto.commit`` off (:data:`CONSUMER_CONFIG`): offsets
        are committed here, after durable checkpoints.
        """
        consumer.subscribe(list(topics))
        uncommitted = 0
        last_commit = time.monotonic()
        clean = False
        try:
            while not stop_event.is_set():
                message = consumer.poll(poll_timeout)
                if message is not None:
                    error = message.error()
                    if error is not None:
                        if error.fatal():
                            raise ServiceError(
                                f"{self.sink.name}: consumer failed: {error}", code=error.name()
                            )
                        # Unknown topic (not relayed to yet), partition EOF, transient broker errors.
                        log.debug("%s: consumer: %s", self.sink.name, error)
                    elif self.handle(message, stop_event):
                        consumer.store_offsets(message=message)
                        uncommitted += 1
                    else:
                        break
                due = time.monotonic() - last_commit >= self.checkpoint_interval
                if uncommitted and (uncommitted >= self.checkpoint_every or due or message is None):
                    self._commit_offsets(consumer)
                    uncommitted = 0
                    last_commit = time.monotonic()
            clean = True
        finally:
            try:
                if clean and uncommitted:
                    self._commit_offsets(consumer)
            finally:
                consumer.close()
                self._release()
        return self.stats


def run_sink(
    settings: Settings,
    sink: Sink,
    topics: Sequence[str],
    group: str,
    stop_event: threading.Event,
    *,
    engine: Engine | str | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    retry_failed: bool = False,
) -> SinkStats:
    """Run ``sink`` over ``topics`` in consumer group ``group`` until ``stop_event`` is set.

    Blocking; run it in a thread or process of its own. ``engine`` defaults to the settings'
    database. Returns the counters; closes the sink.
    """
    # An outbox topic appears at its first publication. A consumer subscribed before that finds it
    # only at its next metadata refresh and then rebalances: seconds during which the first
    # events sit unread. Creating the topics first makes the subscription whole from the start.
    try:
        ensure_topics(settings, [TopicSpec(t, "read by a sink") for t in topics if not t.startswith("^")])
    except (ServiceError, KafkaException) as exc:  # only slower to see the first events: go on
        log.warning("could not create the sink's topics %s: %s", ", ".join(topics), exc)
    db = as_engine(engine if engine is not None else settings.require_database_url())
    producer = make_producer(settings)
    consumer = make_consumer(settings, group, **CONSUMER_CONFIG)
    runner = SinkRunner(sink, db, producer, policy=policy, retry_failed=retry_failed)
    try:
        return runner.run(consumer, topics, stop_event)
    finally:
        sink.close()
        producer.flush(10)
        if not isinstance(engine, Engine):
            db.dispose()
