"""Helpers for tests that run real ``vigil worker`` processes against the real stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException

from agents.feed import consumer_group
from ops.services.procs import free_port
from streams.kafka import make_producer
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
VIGIL = str(Path(sys.executable).parent / "vigil")
T = TypeVar("T")


def start_worker(
    stack: Settings,
    database_url: str,
    *,
    topic: str,
    app_id: str,
    agent_name: str,
    log_path: Path,
    module: str = "tests.integration.agentmods.recorder",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    create_business_tables(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_HOME": str(log_path.parent),
            "VIGIL_DATABASE_URL": database_url,
            "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
            "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "VIGIL_APP_ID": app_id,
            "VIGIL_TEST_TOPIC": topic,
            "VIGIL_TEST_AGENT": agent_name,
            "PYTHONPATH": str(ROOT),
            # The built-in drift agents would read the shared drift topics: only drift tests want them.
            "VIGIL_BUILTIN_AGENTS": "false",
            # Never the default port: tests (and test processes) run side by side.
            "VIGIL_HTTP_PORT": str(free_port()),
        }
    )
    env.update(extra_env or {})
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [VIGIL, "worker", "-A", module], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )


def start_sink(
    stack: Settings, database_url: str, url: str, topic: str, group: str, logdir: Path
) -> subprocess.Popen[bytes]:
    """A webhook sink process delivering ``topic`` to ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_DATABASE_URL": database_url,
            "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
            "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "PYTHONPATH": str(ROOT),
        }
    )
    argv = [sys.executable, "-m", "agents.sinks.run", "webhook", "--name", group, "--url", url]
    argv += ["--topic", topic, "--group", group]
    with (logdir / "sink.log").open("ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def create_business_tables(database_url: str) -> None:
    """The tables the recorder agent writes its business rows to (idempotent)."""
    from tests.integration.agentmods.recorder import BUSINESS_TABLES

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(BUSINESS_TABLES)


def handler_calls(calls_file: Path) -> dict[str, list[int]]:
    """The attempts of every handler invocation, by event id, from the recorder's calls file."""
    calls: dict[str, list[int]] = {}
    if calls_file.exists():
        for line in calls_file.read_text().splitlines():
            event_id, attempt, _pid = line.split()
            calls.setdefault(event_id, []).append(int(attempt))
    return calls


def rows(database_url: str, sql: str, *params: object) -> list[object]:
    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute(sql, params).fetchall()]


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def exit_code(proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> int:
    """The process's exit code within ``timeout``; otherwise the test fails with its log, from the
    worker's first report of what holds its stop (:mod:`agents.stop_watch`) if it made one."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        text = log_path.read_text(errors="replace")
        held = text.find("has been stopping for")
        shown = text[max(0, held - 2000) : held + 12000] if held >= 0 else text[-4000:]
        pytest.fail(f"pid {proc.pid} did not exit within {timeout:.0f} s; its log:\n{shown}")


def produce_events(
    stack: Settings, topic: str, events: Iterable[tuple[str, dict[str, object]]], copies: int = 1
) -> int:
    """Produce each (event_id, value) ``copies`` times, with the id in ``vigil-event-id``."""
    producer = make_producer(stack, **{"linger.ms": 20})
    sent = 0
    batch = list(events)
    for _ in range(copies):
        for event_id, value in batch:
            producer.produce(
                topic,
                key=event_id.encode(),
                value=json.dumps(value).encode(),
                headers=[("vigil-event-id", event_id.encode())],
            )
            sent += 1
            if sent % 5000 == 0:
                producer.flush(30)
    assert producer.flush(60) == 0
    return sent


def scalar(database_url: str, sql: str, *params: object) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path else ""
            raise AssertionError(f"worker exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(0.5)
    tail = log_path.read_text()[-3000:] if log_path else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


def wait_for_count(
    count: Callable[[], int],
    target: int,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    *,
    stall_s: float = 60.0,
    timeout: float = 540.0,
) -> None:
    """Wait until ``count()`` reaches ``target``; fail when it stops growing for ``stall_s``.

    A stall is what these waits look for: on a loaded machine the work may be slow, and a fixed
    deadline would fail a test that was still making progress (``timeout`` bounds the whole wait).
    """
    started = last_change = time.monotonic()
    seen = -1
    while True:
        now = time.monotonic()
        value = count()
        if value >= target:
            return
        if value != seen:
            seen, last_change = value, now
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path else ""
            raise AssertionError(f"worker exited ({proc.returncode}) at {value} waiting for {what}:\n{tail}")
        if now - last_change > stall_s or now - started > timeout:
            tail = log_path.read_text()[-3000:] if log_path else ""
            stalled = f"no progress for {stall_s:.0f}s" if now - last_change > stall_s else "timed out"
            raise AssertionError(f"{stalled} at {value}/{target} waiting for {what}\n{tail}")
        time.sleep(0.5)


def assert_exactly_once(database_url: str, agent: str, expected: int) -> None:
    """Each of ``expected`` events has exactly one of everything: processed row, succeeded run, outbox
    row, and the business rows the recorder wrote through ``ctx.session`` (Core and ORM).

    Counts and distinct counts are compared, so a duplicate shows as well as a loss, and the business
    rows must belong to exactly the processed events.
    """
    processed = set(rows(database_url, "SELECT event_id FROM vigil.processed_events WHERE agent = %s", agent))
    counts = {
        "processed": scalar(
            database_url, "SELECT count(*) FROM vigil.processed_events WHERE agent = %s", agent
        ),
        "succeeded runs": scalar(
            database_url, "SELECT count(*) FROM vigil.runs WHERE agent = %s AND status = 'succeeded'", agent
        ),
        "outbox": scalar(database_url, "SELECT count(*) FROM vigil.outbox"),
        "distinct outbox keys": scalar(database_url, "SELECT count(DISTINCT aggregateid) FROM vigil.outbox"),
        "core rows": scalar(database_url, "SELECT count(*) FROM public.effects_core"),
        "distinct core events": scalar(
            database_url, "SELECT count(DISTINCT event_id) FROM public.effects_core"
        ),
        "orm rows": scalar(database_url, "SELECT count(*) FROM public.effects_orm"),
        "distinct orm events": scalar(
            database_url, "SELECT count(DISTINCT event_id) FROM public.effects_orm"
        ),
    }
    assert counts == dict.fromkeys(counts, expected), counts
    assert set(rows(database_url, "SELECT event_id FROM public.effects_core")) == processed
    assert set(rows(database_url, "SELECT event_id FROM public.effects_orm")) == processed


def read_dlq(stack: Settings, agent: str, expected: int, timeout: float = 60.0) -> list[dict[str, str]]:
    """Headers of the dead letters an agent wrote (read from the start of ``vigil.dlq``)."""
    from streams.catalog import DLQ
    from streams.kafka import make_consumer

    consumer = make_consumer(stack, f"dlq-reader-{agent}-{time.monotonic_ns()}")
    consumer.subscribe([DLQ])
    found: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            headers = {k: (v or b"").decode() for k, v in msg.headers() or []}
            if headers.get("vigil-agent") == agent:
                found[headers["vigil-event-id"]] = headers
    finally:
        consumer.close()
    return list(found.values())


#: How a worker started by these helpers delivers events unless the test says (``VIGIL_DELIVERY``).
DEFAULT_DELIVERY: str = Settings.model_fields["delivery"].default


def agent_group(app_id: str, agent: str, delivery: str = DEFAULT_DELIVERY) -> str:
    """The consumer group an agent's offsets are committed under (see agents.feed.consumer_group)."""
    return consumer_group(Settings(app_id=app_id, delivery=delivery), agent)  # type: ignore[arg-type]


#: What a group coordinator answers while __consumer_offsets is being created or loaded.
COORDINATOR_NOT_READY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def until_coordinator_ready(call: Callable[[], T], timeout: float = 60.0) -> T:
    """``call()``, retried while the group coordinator is not ready (a broker that just started
    creates or loads __consumer_offsets first): clients retry these errors."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except KafkaException as exc:
            if exc.args[0].code() not in COORDINATOR_NOT_READY or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def group_caught_up(stack: Settings, group: str, topic: str) -> bool:
    """True when ``group`` has committed, on every partition of ``topic``, the end of the partition:
    everything there was consumed and acked, so nothing more is on its way to the database."""
    from confluent_kafka import TopicPartition

    from streams.kafka import make_consumer

    probe = make_consumer(stack, group, **{"enable.auto.commit": False})
    try:
        metadata = probe.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        # Right after a broker restart the coordinator may still be loading the group's offsets.
        committed = until_coordinator_ready(lambda: probe.committed(partitions, timeout=10))
        for tp in committed:
            _low, high = probe.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if tp.offset < high:
                return False
        return True
    finally:
        probe.close()


def wait_group_caught_up(stack: Settings, group: str, topic: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: group_caught_up(stack, group, topic), timeout, f"group {group} to commit the end of {topic}"
    )


def start_up(env: dict[str, str], out: Path, *args: str) -> subprocess.Popen[bytes]:
    """``vigil up *args`` with its output appended to ``out``."""
    with out.open("ab") as log:
        return subprocess.Popen([VIGIL, "up", *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def stop_up(up: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then kill after 60 s: never leave a worker behind (a killed ``vigil up`` could not
    stop its children)."""
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
