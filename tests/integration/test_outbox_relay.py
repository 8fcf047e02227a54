"""The in-worker outbox relay against the real Postgres and broker: order, sharing, failures,
re-publishing, supervision (a failing round is logged, counted, retried; the heartbeat shows it),
and latency while idle."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from sqlalchemy import Engine

from agents.db import as_engine
from agents.relay import OutboxRelay, unsent_count
from ops.status import RELAYS_SQL, relay_entry
from schemas.errors import RetryableError
from streams.catalog import outbox_topic
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings

pytestmark = pytest.mark.integration


def insert_outbox_rows(
    database_url: str, aggregatetype: str, count: int, keys: int = 10, trace: bool = True
) -> list[uuid.UUID]:
    """Insert ``count`` rows spread over ``keys`` aggregate ids; payload ``{"n": i, "key": ...}``."""
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        (
            ids[i],
            aggregatetype,
            f"key-{i % keys}",
            "Thing.Happened",
            json.dumps({"n": i, "key": f"key-{i % keys}"}),
            f"trace-{i}" if trace and i % 2 else None,
        )
        for i in range(count)
    ]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO vigil.outbox (id, aggregatetype, aggregateid, type, payload, trace_id) "
            "VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
            rows,
        )
    return ids


def relay_all(relay: OutboxRelay, limit: int = 1000) -> int:
    total = 0
    while (n := relay.relay_once(limit)) > 0:
        total += n
    return total


def consume(settings: Settings, topic: str, count: int, timeout: float = 60.0) -> list[Message]:
    """Read ``topic`` from the beginning (new group) until ``count`` messages arrived; no watermarks."""
    consumer = make_consumer(settings, f"reader-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False})
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            messages.append(message)
        # Anything beyond the expected count would show up here.
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def headers_of(message: Message) -> dict[str, str]:
    return {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in message.headers() or []}


@pytest.fixture
def engine(fresh_database: str) -> Any:
    db = as_engine(fresh_database)
    yield db
    db.dispose()


@pytest.mark.timeout(90)
def test_relay_publishes_router_shaped_messages_in_key_order_and_marks_them_sent(
    stack: Settings, fresh_database: str, engine: Engine, unique: str
) -> None:
    ids = insert_outbox_rows(fresh_database, unique, 300, keys=7)
    relay = OutboxRelay(stack, engine, make_producer(stack), lanes=3)
    assert unsent_count(engine) == 300
    assert relay_all(relay, limit=50) == 300
    assert unsent_count(engine) == 0
    assert relay.relay_once() == 0

    messages = consume(stack, outbox_topic(unique), 300)
    assert len(messages) == 300
    by_key: dict[str, list[int]] = defaultdict(list)
    seen_ids = []
    for message in messages:
        headers = headers_of(message)
        payload = json.loads(message.value() or b"")
        key = (message.key() or b"").decode()
        assert key == payload["key"]
        assert headers["id"] == headers["vigil-event-id"] == str(ids[payload["n"]])
        expected_trace = f"trace-{payload['n']}" if payload["n"] % 2 else headers["id"]
        assert headers["vigil-trace-id"] == expected_trace
        assert headers["type"] == "Thing.Happened"
        by_key[key].append(payload["n"])
        seen_ids.append(headers["id"])
    assert sorted(seen_ids) == sorted(str(i) for i in ids)
    for key, ns in by_key.items():
        assert ns == sorted(ns), f"{key} out of order"


@pytest.mark.timeout(90)
def test_two_relays_share_the_outbox_without_duplicates_or_reordering(
    stack: Settings, fresh_database: str, engine: Engine, unique: str
) -> None:
    insert_outbox_rows(fresh_database, unique, 2000, keys=20)
    relays = [OutboxRelay(stack, fresh_database, make_producer(stack), lanes=4) for _ in range(2)]
    counts = [0, 0]

    def work(i: int) -> None:
        while unsent_count(engine) > 0:
            counts[i] += relays[i].relay_once(limit=100)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for relay in relays:
        relay.close()
    assert sum(counts) == 2000
    assert all(counts), f"one relay did everything: {counts}"

    messages = consume(stack, outbox_topic(unique), 2000)
    assert len(messages) == 2000
    by_key: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        payload = json.loads(message.value() or b"")
        by_key[payload["key"]].append(payload["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())
    assert len({headers_of(m)["id"] for m in messages}) == 2000


@pytest.mark.timeout(60)
def test_an_unacknowledged_produce_leaves_the_rows_unsent(
    stack: Settings, fresh_database: str, engine: Engine, unique: str
) -> None:
    insert_outbox_rows(fresh_database, unique, 20)
    # A real producer aimed at a port nobody listens on: nothing is ever acknowledged.
    nowhere = stack.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    producer = make_producer(nowhere, **{"message.timeout.ms": 1500, "log_level": 0})
    relay = OutboxRelay(nowhere, engine, producer, lanes=1, flush_timeout=10, create_topics=False)
    with pytest.raises(RetryableError):
        relay.relay_once()
    assert unsent_count(engine) == 20

    # The same rows go out once a working producer is used.
    assert relay_all(OutboxRelay(stack, engine, make_producer(stack))) == 20


@pytest.mark.timeout(60)
def test_rows_republished_after_a_crash_keep_their_ids(
    stack: Settings, fresh_database: str, engine: Engine, unique: str
) -> None:
    ids = insert_outbox_rows(fresh_database, unique, 50)
    relay = OutboxRelay(stack, engine, make_producer(stack))
    assert relay_all(relay) == 50
    # A relay that died after producing but before its commit leaves the rows unsent.
    again = ids[:10]
    with psycopg.connect(fresh_database) as conn:
        conn.execute("UPDATE vigil.outbox SET sent_at = NULL WHERE id = ANY(%s)", (again,))
    assert relay_all(relay) == 10

    messages = consume(stack, outbox_topic(unique), 60)
    assert len(messages) == 60
    per_id: dict[str, int] = defaultdict(int)
    for message in messages:
        per_id[headers_of(message)["id"]] += 1
    assert {i for i, n in per_id.items() if n == 2} == {str(i) for i in again}
    assert set(per_id) == {str(i) for i in ids}


class FlakyProducer:
    """A real producer whose ``produce`` raises ``failure`` while it is set: an injected fault."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.failure: BaseException | None = None

    def produce(self, *args: Any, **kwargs: Any) -> None:
        if self.failure is not None:
            raise self.failure
        self.producer.produce(*args, **kwargs)

    def poll(self, timeout: float) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        return self.producer.flush(timeout)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def relay_heartbeat(database_url: str, name: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        rows = [relay_entry(*row) for row in conn.execute(RELAYS_SQL).fetchall()]
    return next((r for r in rows if r["name"] == name), {})


@pytest.mark.timeout(120)
def test_a_failing_round_is_logged_counted_and_retried_and_the_rows_go_out_once_when_the_cause_is_gone(
    stack: Settings, fresh_database: str, engine: Engine, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.relay")
    producer = FlakyProducer(make_producer(stack))
    # Neither is an outage the old loop caught: a KafkaException, then a plain bug.
    producer.failure = KafkaException(KafkaError(KafkaError._TRANSPORT, "injected: broker unreachable"))
    beat = f"relay:{unique}"
    relay = OutboxRelay(
        stack,
        engine,
        producer,
        beat_name=beat,
        unhealthy_after_s=1.0,
        beat_every_s=0.2,
    )
    ids = insert_outbox_rows(fresh_database, unique, 25)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: relay.stats.errors >= 2)
        producer.failure = RuntimeError("injected: a bug in a round")
        assert wait_until(lambda: "RuntimeError" in (relay.stats.last_error or ""))
        assert thread.is_alive(), "an exception killed the relay thread"
        assert unsent_count(engine) == 25
        assert wait_until(lambda: not relay.health().healthy)
        assert "injected" in (relay.health().reason or "")
        assert wait_until(lambda: relay_heartbeat(fresh_database, beat).get("state") == "unhealthy")
        assert "injected" in relay_heartbeat(fresh_database, beat)["last_error"]
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "agents.relay"]
        assert any("broker unreachable" in r.getMessage() for r in warnings)
        assert any("a bug in a round" in r.getMessage() for r in warnings)

        producer.failure = None  # the cause is gone: the rows go out on a retry
        assert wait_until(lambda: unsent_count(engine) == 0)
        assert wait_until(lambda: relay_heartbeat(fresh_database, beat).get("state") == "ok")
        assert relay.health().healthy
    finally:
        stop.set()
        thread.join(15)
    assert relay.stats.published == 25 and relay.stats.errors >= 3
    assert relay_heartbeat(fresh_database, beat)["state"] == "paused"  # a clean stop is no outage

    messages = consume(stack, outbox_topic(unique), 25)
    assert sorted(headers_of(m)["id"] for m in messages) == sorted(str(i) for i in ids)


@pytest.mark.timeout(120)
def test_an_idle_relay_publishes_new_rows_within_a_bounded_time_after_commit(
    stack: Settings, fresh_database: str, engine: Engine, unique: str
) -> None:
    relay = OutboxRelay(stack, engine, make_producer(stack), beat_name=f"relay:{unique}")
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    latencies = []
    try:
        for attempt in range(4):
            rounds = relay.stats.rounds
            assert wait_until(lambda n=rounds: relay.stats.rounds >= n + 3)  # idle for a few rounds
            insert_outbox_rows(fresh_database, f"{unique}{attempt % 2}", 25)  # half of them a new topic
            committed = time.monotonic()
            assert wait_until(lambda: unsent_count(engine) == 0, timeout=30, interval=0.02)
            latencies.append(time.monotonic() - committed)
    finally:
        stop.set()
        thread.join(15)
    assert max(latencies) < 5.0, latencies
    assert relay.stats.errors == 0 and relay.stats.published == 100
