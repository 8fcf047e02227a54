"""One event's failure stays its own: handlers' writes commit with their event, neighbours never re-run,
bad output is the event's failure (real worker processes, Postgres and the broker)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.kafka import make_admin, make_consumer, make_producer
from streams.settings import Settings
from tests.integration.workers import (
    handler_calls,
    produce_events,
    read_dlq,
    rows,
    scalar,
    start_worker,
    stop,
    wait_until,
)

pytestmark = pytest.mark.integration


def _processed(database_url: str) -> int:
    return scalar(database_url, "SELECT count(*) FROM vigil.processed_events")


def _produce_with_failures(stack: Settings, topic: str, total: int) -> set[str]:
    """Produce events ``evt-0`` … ``evt-<total - 1>``; one in a hundred asks its handler to fail.
    Returns the failing ones' ids."""
    failing = {f"evt-{n}" for n in range(total) if n % 100 == 42}
    produce_events(
        stack, topic, [(f"evt-{n}", {"n": n, "fail": f"evt-{n}" in failing}) for n in range(total)]
    )
    return failing


def _assert_each_tried_its_own_times(calls_file: Path, total: int, failing: set[str]) -> set[str]:
    """Exactly one handler invocation per attempt of its own: healthy events once, failing ones once
    per try (3). Returns the healthy events' ids."""
    calls = handler_calls(calls_file)
    healthy = {f"evt-{n}" for n in range(total)} - failing
    assert {e: calls.get(e) for e in healthy} == {e: [1] for e in healthy}
    assert {e: sorted(calls[e]) for e in failing} == {e: [1, 2, 3] for e in failing}
    return healthy


@pytest.mark.timeout(300)
def test_a_failing_event_never_reruns_its_neighbours_and_keeps_no_writes(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("neighbours", partitions=2)
    total = 1000
    failing = _produce_with_failures(stack, topic, total)
    calls_file = tmp_path / "calls.txt"
    log = tmp_path / "worker.log"
    worker = start_worker(
        stack,
        fresh_database,
        topic=topic,
        app_id=unique,
        agent_name=unique,
        log_path=log,
        extra_env={"VIGIL_TEST_CALLS_FILE": str(calls_file)},
    )
    try:
        wait_until(lambda: _processed(fresh_database) >= total, 180, f"{total} processed events", worker, log)
    finally:
        stop(worker)
    healthy = _assert_each_tried_its_own_times(calls_file, total, failing)
    # The failing handlers wrote before raising: their savepoints were rolled back, nobody else's.
    core = rows(fresh_database, "SELECT event_id FROM public.effects_core")
    orm = rows(fresh_database, "SELECT event_id FROM public.effects_orm")
    assert sorted(core) == sorted(healthy) and sorted(orm) == sorted(healthy)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.runs WHERE status = 'failed'") == len(failing)
    assert {d["vigil-event-id"] for d in read_dlq(stack, unique, len(failing))} == failing


@pytest.mark.timeout(300)
def test_a_worker_joining_while_an_event_is_retried_alone_does_not_run_it_again(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("joining", partitions=3)
    total = 2000
    failing = _produce_with_failures(stack, topic, total)
    calls_file = tmp_path / "calls.txt"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # Each failing event is tried alone 3 times, 0.6 s of backoff: most of the first worker's time
    # is spent on them, so the second one joins while one is being retried.
    env = {"VIGIL_TEST_CALLS_FILE": str(calls_file), "VIGIL_TEST_SLOW_MS": "2"}
    common = {"topic": topic, "app_id": unique, "agent_name": unique, "extra_env": env}
    workers = [start_worker(stack, fresh_database, log_path=logs[0], **common)]
    try:
        wait_until(
            lambda: _processed(fresh_database) >= 100, 120, "the first worker's progress", workers[0], logs[0]
        )
        workers.append(start_worker(stack, fresh_database, log_path=logs[1], **common))
        wait_until(
            lambda: _processed(fresh_database) >= total, 240, f"{total} processed events", workers[1], logs[1]
        )
    finally:
        for worker in workers:
            stop(worker)
    # The group moved partitions while the first worker had batches in hand: it finished them first.
    assert "finishing" in logs[0].read_text()
    _assert_each_tried_its_own_times(calls_file, total, failing)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.runs WHERE status = 'failed'") == len(failing)


BAD_KINDS = {
    "payload": "not JSON-serializable",
    "aggregatetype": "valid outbox topic",
    "send_unknown": "does not exist",
    "send_large": "over the producer's limit",
    "validator_raises": "validator itself is broken",
    "connection_error": "could not connect",
}


@pytest.mark.timeout(300)
def test_bad_output_is_the_events_failure_and_the_worker_goes_on(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("bad-output", partitions=2)
    send_topic = make_topic("sent", partitions=1)
    kinds = sorted(BAD_KINDS)
    total = 300
    bad = {f"evt-{n}": kinds[n // 10 % len(kinds)] for n in range(total) if n % 10 == 3}
    events = [(f"evt-{n}", {"n": n, "bad": bad.get(f"evt-{n}"), "send": True}) for n in range(total)]
    produce_events(stack, topic, events)
    log = tmp_path / "worker.log"
    worker = start_worker(
        stack,
        fresh_database,
        topic=topic,
        app_id=unique,
        agent_name=unique,
        log_path=log,
        extra_env={"VIGIL_TEST_SEND_TOPIC": send_topic},
    )
    try:
        wait_until(lambda: _processed(fresh_database) >= total, 180, f"{total} processed events", worker, log)
        assert worker.poll() is None, "the worker must go on"
    finally:
        stop(worker)
    good = total - len(bad)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.runs WHERE status = 'succeeded'") == good
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.runs WHERE status = 'failed'") == len(bad)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.outbox") == good
    # Datetimes and decimals in a payload are encoded as JSON encoders usually do.
    payload = rows(fresh_database, "SELECT payload FROM vigil.outbox LIMIT 1")[0]
    assert (
        isinstance(payload, dict)
        and payload["at"].startswith("2026-01-01T00:00:00")
        and payload["amount"] == "1.10"
    )
    dead = {d["vigil-event-id"]: d["vigil-error"] for d in read_dlq(stack, unique, len(bad))}
    assert dead.keys() == bad.keys()
    for event_id, kind in bad.items():
        assert BAD_KINDS[kind] in dead[event_id], (kind, dead[event_id])
    # Stream outputs of the good events arrived, each with its input's trace id.
    sent = _read_all(stack, send_topic, good)
    assert len(sent) == good
    assert all(h["vigil-trace-id"] == f"evt-{int(v)}" for v, h in sent)


def _read_all(stack: Settings, topic: str, expected: int) -> list[tuple[bytes, dict[str, str]]]:
    consumer = make_consumer(stack, f"reader-{topic}")
    consumer.subscribe([topic])
    found: list[tuple[bytes, dict[str, str]]] = []
    try:
        wait_until(lambda: _poll_into(consumer, found) >= expected, 60, f"{expected} messages on {topic}")
    finally:
        consumer.close()
    return found


def _poll_into(consumer: object, found: list[tuple[bytes, dict[str, str]]]) -> int:
    for msg in consumer.consume(500, timeout=0.5):  # type: ignore[attr-defined]
        if msg.error() is None:
            found.append((msg.value(), {k: (v or b"").decode() for k, v in msg.headers() or []}))
    return len(found)


@pytest.mark.timeout(300)
def test_a_recreated_topics_messages_are_new_events(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    """Messages without a vigil-event-id are named by their position and the topic's id: after the
    topic is deleted and created again, offset 0 is a new event, not a duplicate of the old offset 0."""
    topic = make_topic("recreated", partitions=1)
    log = tmp_path / "worker.log"

    def run_once(app_id: str, expected: int) -> None:
        _produce_without_ids(stack, topic, 100)
        worker = start_worker(
            stack, fresh_database, topic=topic, app_id=app_id, agent_name=unique, log_path=log
        )
        try:
            wait_until(lambda: _processed(fresh_database) >= expected, 120, f"{expected} events", worker, log)
        finally:
            stop(worker)

    run_once(f"{unique}-1", 100)
    admin = make_admin(stack)
    admin.delete_topics([topic])[topic].result(30)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, 60, "the topic to be gone")
    make_topic("recreated", partitions=1)
    run_once(f"{unique}-2", 200)
    ids = rows(fresh_database, "SELECT event_id FROM vigil.processed_events")
    assert len(ids) == 200 and all("@" in str(i) for i in ids)
    assert len({str(i).split("/", 1)[0] for i in ids}) == 2, "two incarnations of the topic"


def _produce_without_ids(stack: Settings, topic: str, count: int) -> None:
    producer = make_producer(stack)
    for n in range(count):
        producer.produce(topic, key=str(n).encode(), value=json.dumps({"n": n}).encode())
    assert producer.flush(30) == 0
