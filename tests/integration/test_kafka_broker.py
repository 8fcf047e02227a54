"""The embedded Apache Kafka behaves as Kafka: durable acks across kill -9, compaction, time lookups.

The kill and down/up tests run their own stack in a throwaway ``VIGIL_HOME`` (the session's broker
stays untouched); compaction and offset-by-time use the session's broker on their own topics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from ops.services import stack as stack_mod
from streams.catalog import CATALOG, PROCESSED_EVENTS, TopicSpec
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings, load_settings
from streams.topics import ensure_topics
from tests.integration.workers import until_coordinator_ready

pytestmark = pytest.mark.integration

VIGIL = str(Path(sys.executable).parent / "vigil")


def _vigil(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_HOME"] = str(home)
    return subprocess.run([VIGIL, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def _kafka_pid(home: Path) -> int:
    return int(json.loads((home / "kafka" / "kafka.json").read_text())["pid"])


def read_all(
    settings: Settings, topic: str, partitions: int, done: Callable[[list[Message]], bool], timeout: float
) -> list[Message]:
    """Every record of ``topic`` from the beginning (assigned, no group) until ``done`` or timeout."""
    consumer = make_consumer(settings, f"read-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(got) and time.monotonic() < deadline:
            got.extend(m for m in consumer.consume(1000, 0.5) if not m.error())
    finally:
        consumer.close()
    return got


def _end_offsets(settings: Settings, topic: str, partitions: int) -> dict[int, int]:
    consumer = make_consumer(settings, f"wm-{uuid.uuid4().hex[:8]}")
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


RECORDS = 20_000


@pytest.mark.timeout(300)
def test_kill_9_of_the_broker_loses_no_acknowledged_record(throwaway_home: Path) -> None:
    started = _vigil(throwaway_home, "services", "up", "--json")
    assert started.returncode == 0, started.stderr
    settings = load_settings(
        home=throwaway_home, kafka_bootstrap=json.loads(started.stdout)["kafka_bootstrap"]
    )
    topic = f"t{uuid.uuid4().hex[:8]}.durable"
    ensure_topics(settings, [TopicSpec(topic, "kill -9 test", 3, {})])

    acked: dict[int, dict[int, int]] = {}  # partition -> offset -> sequence number
    failed: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append(str(err))
            return
        acked.setdefault(msg.partition() or 0, {})[msg.offset() or 0] = int(msg.value() or b"-1")

    # Retries outlast the broker's restart: the idempotent producer resends what was not acked.
    producer = make_producer(settings, **{"message.timeout.ms": 180_000, "linger.ms": 5})
    pid = _kafka_pid(throwaway_home)
    killed = False
    produced = 0
    while produced < RECORDS:
        # Chunks with a bounded number in flight, so that the kill lands mid-stream.
        for seq in range(produced, min(produced + 200, RECORDS)):
            producer.produce(
                topic, key=str(seq % 97).encode(), value=str(seq).encode(), on_delivery=delivered
            )
        produced = min(produced + 200, RECORDS)
        deadline = time.monotonic() + 30
        while (
            killed is False
            and sum(map(len, acked.values())) < produced - 1000
            and time.monotonic() < deadline
        ):
            producer.poll(0.01)
        producer.poll(0)
        if not killed and sum(map(len, acked.values())) >= RECORDS // 4:
            os.kill(pid, signal.SIGKILL)
            killed = True
            restarted = _vigil(throwaway_home, "services", "up", "--json")
            assert restarted.returncode == 0, restarted.stderr
    assert killed
    assert producer.flush(180) == 0
    assert not failed, failed[:5]
    assert sum(len(v) for v in acked.values()) == RECORDS
    assert _kafka_pid(throwaway_home) != pid

    got = read_all(settings, topic, 3, lambda msgs: len(msgs) >= RECORDS, timeout=120)
    stored = {(m.partition(), m.offset()): int(m.value() or b"-1") for m in got}
    for partition, by_offset in acked.items():
        for offset, seq in by_offset.items():
            assert stored.get((partition, offset)) == seq, f"acked record {seq} lost at {partition}/{offset}"
    # Per key (so per partition) the records are in the order they were produced.
    last_by_key: dict[bytes, int] = {}
    for m in sorted(got, key=lambda m: (m.partition() or 0, m.offset() or 0)):
        seq = int(m.value() or b"-1")
        key = m.key() or b""
        assert seq > last_by_key.get(key, -1), f"key {key!r}: {seq} after {last_by_key[key]}"
        last_by_key[key] = seq
    assert len(got) == RECORDS, "the idempotent producer wrote no duplicate"


@pytest.mark.timeout(300)
def test_topics_and_group_offsets_survive_down_and_up(throwaway_home: Path) -> None:
    settings = stack_mod.up(load_settings(home=throwaway_home))
    topic = f"t{uuid.uuid4().hex[:8]}.kept"
    group = f"{topic}-group"
    ensure_topics(settings, [TopicSpec(topic, "down/up test", 2, {})])
    producer = make_producer(settings)
    for i in range(100):
        producer.produce(topic, key=str(i).encode(), value=str(i).encode())
    assert producer.flush(30) == 0
    consumer = make_consumer(settings, group)
    try:
        kept = [TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 11)]
        until_coordinator_ready(lambda: consumer.commit(offsets=kept, asynchronous=False))
    finally:
        consumer.close()

    assert "kafka" in stack_mod.down(load_settings(home=throwaway_home))
    again = stack_mod.up(load_settings(home=throwaway_home))
    assert again.kafka_bootstrap == settings.kafka_bootstrap

    consumer = make_consumer(again, group)
    try:
        committed = until_coordinator_ready(
            lambda: consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)
        )
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 7), (1, 11)]
    assert sum(_end_offsets(again, topic, 2).values()) == 100
    assert len(read_all(again, topic, 2, lambda msgs: len(msgs) >= 100, timeout=60)) == 100


KEYS = 200


@pytest.mark.timeout(300)
def test_processed_events_config_really_compacts(stack: Settings, unique: str) -> None:
    catalog = {spec.name: spec for spec in CATALOG}[PROCESSED_EVENTS]
    topic = f"{unique}.processed"
    configs = {
        **catalog.configs,
        # Small segments that roll quickly and a cleaner that acts at once: the test's own topic only.
        "min.compaction.lag.ms": "0",
        "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "100",
    }
    ensure_topics(stack, [TopicSpec(topic, "compaction test", 1, configs)])
    producer = make_producer(stack)
    latest: dict[str, str] = {}
    for batch in range(10):
        for i in range(RECORDS // 10):
            seq = batch * (RECORDS // 10) + i
            key = f"agent/{seq % KEYS}"
            producer.produce(topic, key=key.encode(), value=str(seq).encode())
            latest[key] = str(seq)
            producer.poll(0)
        assert producer.flush(30) == 0
        time.sleep(0.25)  # let segment.ms pass so the next batch starts a new segment

    # The active segment is never cleaned: keep appending a marker so the cleaned ones close.
    deadline = time.monotonic() + 180
    remaining: list[Message] = []
    while time.monotonic() < deadline:
        producer.produce(topic, key=b"roll", value=b"roll")
        producer.flush(10)
        remaining = [
            m for m in read_all(stack, topic, 1, lambda msgs: False, timeout=2.0) if m.key() != b"roll"
        ]
        if len(remaining) <= KEYS * 3:
            break
        time.sleep(1.0)
    assert len(remaining) <= KEYS * 3, f"{len(remaining)} records left of {RECORDS}: not compacted"
    last: dict[str, str] = {}
    for m in remaining:
        last[(m.key() or b"").decode()] = (m.value() or b"").decode()
    assert last == latest, "every key keeps its latest value"


@pytest.mark.timeout(120)
def test_offsets_for_times_matches_produced_timestamps(stack: Settings, unique: str) -> None:
    topic = f"{unique}.times"
    ensure_topics(stack, [TopicSpec(topic, "offsets_for_times test", 1, {})])
    base = int(time.time() * 1000) - 1_000_000
    producer = make_producer(stack)
    for i in range(100):
        producer.produce(topic, value=str(i).encode(), timestamp=base + i * 1000)
    assert producer.flush(30) == 0

    consumer = make_consumer(stack, f"{unique}-times")
    try:
        queries = {
            0: 0,
            1: base - 5,
            2: base,
            3: base + 1,
            4: base + 42_000,
            5: base + 99_000,
            6: base + 99_001,
        }
        expected = {0: 0, 1: 0, 2: 0, 3: 1, 4: 42, 5: 99, 6: -1}
        found: dict[int, Any] = {}
        for qid, ts in queries.items():
            result = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            found[qid] = result[0].offset
    finally:
        consumer.close()
    assert found == expected
