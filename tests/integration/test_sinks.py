"""Sinks against the real stack and a real local HTTP server: exactly one recorded delivery per outbox id.

The main test runs the whole chain (5,000 outbox rows, relay with re-published rows, webhook sink
processes killed with SIGKILL mid-way, a replay with a new consumer group) and counts what the
HTTP server received, per Idempotency-Key.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from agents.backoff import RetryPolicy
from agents.db import as_engine
from agents.outbox_mapping import OutboxEvent, decode_outbox_message, header_list
from agents.relay import OutboxRelay
from agents.sinks import CONSUMER_CONFIG, FileSink, Sink, SinkRunner, SlackSink, WebhookSink, run_sink
from agents.sinks.requests import file_line
from streams.catalog import outbox_topic
from streams.kafka import make_admin, make_consumer, make_producer
from streams.settings import Settings
from tests.integration.http_receiver import Received, Receiver
from tests.integration.test_outbox_relay import consume, headers_of, insert_outbox_rows, relay_all

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(max_attempts=3, base=0.05, factor=2.0, max_delay=0.2, jitter=0.0)


@pytest.fixture
def engine(fresh_database: str) -> Iterator[Engine]:
    db = as_engine(fresh_database)
    yield db
    db.dispose()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def deliveries(database_url: str, sink: str) -> dict[str, tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT outbox_id::text, status, attempts FROM vigil.deliveries WHERE sink = %s", (sink,)
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def delivered_count(conn: psycopg.Connection[Any], sink: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM vigil.deliveries WHERE sink = %s AND status = 'delivered'", (sink,)
    ).fetchone()
    return int(row[0]) if row else 0


class InProcessSink:
    """A :class:`SinkRunner` on a thread, with a fresh consumer group unless one is given."""

    def __init__(
        self, stack: Settings, sink: Sink, engine: Engine, topics: list[str], group: str, **kwargs: Any
    ) -> None:
        self.stop = threading.Event()
        self.runner = SinkRunner(sink, engine, make_producer(stack), **kwargs)
        self.consumer = make_consumer(stack, group, **CONSUMER_CONFIG)
        self.thread = threading.Thread(target=self.runner.run, args=(self.consumer, topics, self.stop))

    def __enter__(self) -> SinkRunner:
        self.thread.start()
        return self.runner

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.runner.sink.close()


def start_sink_process(stack: Settings, database_url: str, log: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATABASE_URL"] = database_url
    env["VIGIL_KAFKA_BOOTSTRAP"] = stack.require_bootstrap()
    env["VIGIL_KAFKA_SESSION_TIMEOUT_MS"] = str(stack.kafka_session_timeout_ms or 6000)
    with log.open("a") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "agents.sinks.run", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


# --- the acceptance chain -------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_5000_outbox_rows_reach_the_webhook_once_each_through_republishing_kills_and_replay(
    stack: Settings, fresh_database: str, engine: Engine, receiver: Receiver, unique: str, tmp_path: Path
) -> None:
    total = 5000
    ids = {str(i) for i in insert_outbox_rows(fresh_database, unique, total, keys=100)}
    relay = OutboxRelay(stack, engine, make_producer(stack))
    assert relay_all(relay) == total
    # A relay that crashed after producing, before marking sent: those rows go out twice.
    republished = random.Random(5).sample(sorted(ids), 500)
    with psycopg.connect(fresh_database) as conn:
        conn.execute("UPDATE vigil.outbox SET sent_at = NULL WHERE id = ANY(%s::uuid[])", (republished,))
    assert relay_all(relay) == 500
    topic = outbox_topic(unique)
    sink_name = f"hook-{unique}"
    group = f"sink-{unique}"
    args = ("webhook", "--name", sink_name, "--url", f"{receiver.url}/hook", "--topic", topic)
    args += ("--group", group, "--max-attempts", "3", "--base-delay", "0.05")
    log = tmp_path / "sink.log"

    # 1. Killed inside the crash window: the server has acted on the POST, the sink has not
    #    recorded it (the kill lands before the response).
    first = start_sink_process(stack, fresh_database, log, *args)
    in_window: list[str] = []

    def kill_on_1500th(received: Received) -> None:
        if not in_window and len(receiver.keys()) >= 1500:
            in_window.append(received.key or "")
            os.kill(first.pid, signal.SIGKILL)

    receiver.on_request = kill_on_1500th
    assert first.wait(120) == -signal.SIGKILL, log.read_text()
    first.communicate()
    receiver.on_request = None

    # 2. Killed at an arbitrary moment by the test.
    second = start_sink_process(stack, fresh_database, log, *args)
    wait_for(lambda: len(receiver.keys()) >= 3000, 90, "3000 distinct deliveries")
    second.send_signal(signal.SIGKILL)
    assert second.wait(10) == -signal.SIGKILL
    second.communicate()

    # 3. Runs to the end and stops cleanly.
    third = start_sink_process(stack, fresh_database, log, *args)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        wait_for(lambda: delivered_count(conn, sink_name) == total, 120, "all recorded delivered")
    third.send_signal(signal.SIGTERM)
    out, _ = third.communicate(timeout=30)
    assert third.returncode == 0, log.read_text()
    assert json.loads(out.strip().splitlines()[-1])["failed"] == 0

    # 4. The whole topic again, with a new consumer group: all 5,500 messages skipped.
    sink = WebhookSink(sink_name, f"{receiver.url}/hook")
    with InProcessSink(stack, sink, engine, [topic], f"replay-{unique}") as runner:
        wait_for(lambda: runner.stats.seen >= total + 500, 90, "the replay to read the topic")
    assert (runner.stats.delivered, runner.stats.skipped) == (0, total + 500)

    counts = receiver.keys()
    assert set(counts) == ids  # 5,000 distinct deliveries, nothing else
    # Every request's key is the outbox id its body names.
    assert all(r.key == r.body["id"] for r in receiver.requests)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    # At most one repeat per kill, and only of the delivery in flight; the window's one is there.
    assert all(n == 2 for n in duplicates.values()), duplicates
    assert len(duplicates) <= 2 and in_window[0] in duplicates, (duplicates, in_window)
    repeats = [r for r in receiver.requests if r.key in duplicates]
    for key in duplicates:
        bodies = [r.body for r in repeats if r.key == key]
        assert bodies[0] == bodies[1]  # the retry is the same request, same Idempotency-Key

    recorded = deliveries(fresh_database, sink_name)
    assert set(recorded) == ids
    assert all(status == "delivered" for status, _ in recorded.values())
    assert recorded[in_window[0]][1] == 2  # claimed twice: the attempt that died, and its retry


# --- retries, rejections, poison -------------------------------------------------------------


@pytest.mark.timeout(90)
def test_retries_with_backoff_then_dead_letters_what_never_passes_and_moves_on(
    stack: Settings,
    fresh_database: str,
    engine: Engine,
    receiver: Receiver,
    unique: str,
    make_topic: Callable[..., str],
) -> None:
    ids = [str(i) for i in insert_outbox_rows(fresh_database, unique, 6, keys=1)]
    assert relay_all(OutboxRelay(stack, engine, make_producer(stack))) == 6
    topic = outbox_topic(unique)
    flaky, rejected, hopeless = ids[1], ids[2], ids[3]
    receiver.plan = {flaky: [503, 500], rejected: [400], hopeless: [500] * 10}
    # Poison: a message on the outbox topic that is no outbox event (no id header).
    producer = make_producer(stack)
    producer.produce(topic, key=b"key-0", value=b"{}", headers=[("type", b"Stray")])
    assert producer.flush(10) == 0
    dlq = make_topic("dlq")

    sink = WebhookSink(f"hook-{unique}", receiver.url, timeout=5)
    with InProcessSink(stack, sink, engine, [topic], f"g-{unique}", policy=FAST, dlq_topic=dlq) as runner:
        wait_for(lambda: runner.stats.seen >= 7, 60, "all messages handled")

    recorded = deliveries(fresh_database, sink.name)
    assert recorded[flaky] == ("delivered", 3)
    assert recorded[rejected] == ("failed", 1)
    assert recorded[hopeless] == ("failed", 3)
    assert [recorded[i] for i in (ids[0], ids[4], ids[5])] == [("delivered", 1)] * 3
    counts = receiver.keys()
    assert counts[flaky] == 3 and counts[rejected] == 1 and counts[hopeless] == 3

    letters = consume(stack, dlq, 3)
    assert len(letters) == 3
    by_type = {headers_of(m)["vigil-error-type"]: headers_of(m) for m in letters}
    assert set(by_type) == {"DecodeError", "DeliveryRejectedError", "DeliveryRetryableError"}
    assert by_type["DeliveryRejectedError"]["vigil-event-id"] == rejected
    assert by_type["DeliveryRejectedError"]["vigil-attempts"] == "1"
    assert "HTTP 400" in by_type["DeliveryRejectedError"]["vigil-error"]
    assert by_type["DeliveryRetryableError"]["vigil-event-id"] == hopeless
    assert by_type["DeliveryRetryableError"]["vigil-attempts"] == "3"
    poison = by_type["DecodeError"]
    assert poison["vigil-source-topic"] == topic and poison["vigil-attempts"] == "0"
    assert (
        poison["vigil-event-id"]
        == f"{topic}/{poison['vigil-source-partition']}/{poison['vigil-source-offset']}"
    )
    assert all(h["vigil-sink"] == sink.name for h in by_type.values())

    # An operator's redrive, once the receiver is fixed: failed deliveries are attempted afresh,
    # delivered ones still skipped.
    receiver.plan.clear()
    retry = WebhookSink(sink.name, receiver.url, timeout=5)
    with InProcessSink(
        stack, retry, engine, [topic], f"redrive-{unique}", policy=FAST, dlq_topic=dlq, retry_failed=True
    ) as runner:
        wait_for(lambda: runner.stats.seen >= 7, 60, "all messages handled again")
    assert (runner.stats.delivered, runner.stats.skipped) == (2, 4)
    recorded = deliveries(fresh_database, sink.name)
    assert recorded[rejected] == ("delivered", 1) and recorded[hopeless] == ("delivered", 1)


@pytest.mark.timeout(60)
def test_slack_sink_posts_text_once_per_event(
    stack: Settings, fresh_database: str, engine: Engine, receiver: Receiver, unique: str
) -> None:
    ids = {str(i) for i in insert_outbox_rows(fresh_database, unique, 5)}
    relay_all(OutboxRelay(stack, engine, make_producer(stack)))
    sink = SlackSink(f"slack-{unique}", f"{receiver.url}/services/T/B/x")
    with InProcessSink(stack, sink, engine, [outbox_topic(unique)], f"g-{unique}", policy=FAST) as runner:
        wait_for(lambda: runner.stats.seen >= 5, 60, "5 messages")
    assert set(receiver.keys()) == ids and all(n == 1 for n in receiver.keys().values())
    for request in receiver.requests:
        assert request.path == "/services/T/B/x"
        assert set(request.body) == {"text"} and request.body["text"].startswith("*Thing.Happened* `key-")


# --- the file sink ---------------------------------------------------------------------------


def _events(settings: Settings, topic: str, count: int) -> list[OutboxEvent]:
    return [
        decode_outbox_message(topic, m.key(), m.value(), header_list(m.headers()))
        for m in consume(settings, topic, count)
    ]


@pytest.mark.timeout(90)
def test_file_sink_writes_each_id_once_across_a_crash_between_write_and_record(
    stack: Settings, fresh_database: str, engine: Engine, unique: str, tmp_path: Path
) -> None:
    ids = [str(i) for i in insert_outbox_rows(fresh_database, unique, 30)]
    relay = OutboxRelay(stack, engine, make_producer(stack))
    relay_all(relay)
    topic = outbox_topic(unique)
    path = tmp_path / "out" / "events.jsonl"
    name = f"file-{unique}"
    with InProcessSink(stack, FileSink(name, path), engine, [topic], f"g1-{unique}", policy=FAST) as runner:
        wait_for(lambda: runner.stats.seen >= 30, 60, "30 messages")

    # Two more events, each caught by a crash at a different point, as a killed process leaves them:
    # one written in full but not recorded, one torn mid-line. Both rows claimed (pending, 1 attempt).
    more = [str(i) for i in insert_outbox_rows(fresh_database, unique, 2)]
    relay_all(relay)
    events = {e.id: e for e in _events(stack, topic, 32)}
    written, torn = events[more[0]], events[more[1]]
    with psycopg.connect(fresh_database) as conn:
        for event_id in more:
            conn.execute(
                "INSERT INTO vigil.deliveries (sink, outbox_id, status, attempts) VALUES (%s, %s, 'pending', 1)",
                (name, event_id),
            )
    with path.open("ab") as f:
        f.write(file_line(written))
        f.write(file_line(torn)[:25])

    # Restart, reading the whole topic again (new group): nothing is written twice.
    with InProcessSink(stack, FileSink(name, path), engine, [topic], f"g2-{unique}", policy=FAST) as runner:
        wait_for(lambda: runner.stats.seen >= 32, 60, "32 messages")
    assert (runner.stats.delivered, runner.stats.skipped) == (2, 30)

    lines = path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert Counter(r["id"] for r in records) == Counter(ids + more)
    assert records[-1]["id"] == torn.id and records[-2]["id"] == written.id
    recorded = deliveries(fresh_database, name)
    assert recorded[written.id] == ("delivered", 2) and recorded[torn.id] == ("delivered", 2)


@pytest.mark.timeout(90)
def test_a_sink_started_before_its_outbox_topic_exists_creates_it_so_the_first_events_are_not_late(
    stack: Settings, fresh_database: str, engine: Engine, unique: str, tmp_path: Path
) -> None:
    # Without this, the subscription finds the topic only at a later metadata refresh and then
    # rebalances: the first events of a new aggregatetype sat unread for several seconds.
    topic = outbox_topic(unique)
    path = tmp_path / "events.jsonl"
    stop = threading.Event()
    thread = threading.Thread(
        target=run_sink,
        args=(stack, FileSink(f"file-{unique}", path), [topic], f"g-{unique}", stop),
        kwargs={"engine": engine, "policy": FAST},
        daemon=True,
    )
    thread.start()
    try:
        admin = make_admin(stack)
        wait_for(lambda: topic in admin.list_topics(timeout=5).topics, 30, "the sink to create its topic")
        ids = {str(i) for i in insert_outbox_rows(fresh_database, unique, 25)}
        relay_all(OutboxRelay(stack, engine, make_producer(stack)))

        def written() -> set[str]:
            return (
                {json.loads(line)["id"] for line in path.read_text().splitlines()} if path.exists() else set()
            )

        wait_for(lambda: written() == ids, 60, "the 25 events in the file")
    finally:
        stop.set()
        thread.join(30)
