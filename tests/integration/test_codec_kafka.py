"""The codec on the real broker: records written with it are read back by a plain confluent-kafka
consumer and decoded; garbage on the same topic lands in ``vigil.dlq`` while the rest is processed."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from schemas.codec import Codec
from schemas.examples import EXAMPLES
from streams.catalog import DLQ
from streams.deadletter import decode_or_dead_letter
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _drift(i: int) -> dict[str, Any]:
    return {
        **EXAMPLES["DriftEvent"],
        "id": f"evt-{i}",
        "value": float(i),
        "observed_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
    }


def _read(consumer: Consumer, count: int, timeout: float = 30.0) -> list[Message]:
    """Poll until ``count`` messages arrived (counted: the broker's watermarks are not trusted)."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        error = msg.error()
        if error is not None:
            assert error.code() == KafkaError._PARTITION_EOF, error
            continue
        got.append(msg)
    assert len(got) == count, f"read {len(got)} of {count} messages"
    return got


def _assigned_consumer(stack: Settings, unique: str, topic: str, partitions: int) -> Consumer:
    consumer = make_consumer(stack, f"{unique}-reader", **{"enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def test_codec_records_round_trip_and_garbage_is_dead_lettered(
    stack: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("drift", partitions=2)
    codec = Codec.from_registry_url(stack.schema_registry_url)
    producer = make_producer(stack)
    records = [_drift(i) for i in range(40)]
    positions: dict[bytes, tuple[int, int]] = {}

    def remember(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        value = msg.value()
        partition, offset = msg.partition(), msg.offset()
        assert value is not None and partition is not None and offset is not None
        positions[value] = (partition, offset)

    garbage = [b"\xff\xfenot avro", b"", b"\xc3\x01" + bytes(8) + b"unknown fingerprint", b'{"json": 1}']
    for i, record in enumerate(records):
        producer.produce(topic, key=record["id"].encode(), value=codec.encode("DriftEvent", record))
        if i % 10 == 5:
            producer.produce(
                topic, key=f"bad-{i}".encode(), value=garbage[(i // 10) % len(garbage)], on_delivery=remember
            )
    producer.produce(topic, key=b"tick", value=codec.encode("Tick", EXAMPLES["Tick"]))
    assert producer.flush(30) == 0

    consumer = _assigned_consumer(stack, unique, topic, 2)
    try:
        messages = _read(consumer, len(records) + len(garbage) + 1)
    finally:
        consumer.close()

    decoded = []
    for msg in messages:
        result = decode_or_dead_letter(msg, codec, producer)
        if result is not None:
            decoded.append(result)
    assert producer.flush(30) == 0

    drift = sorted((d.record for d in decoded if d.short_name == "DriftEvent"), key=lambda r: r["value"])
    assert drift == records
    assert [d.record for d in decoded if d.short_name == "Tick"] == [EXAMPLES["Tick"]]

    # The dead letters: read vigil.dlq from the beginning, keep those from this test's topic.
    dlq = make_consumer(stack, f"{unique}-dlq", **{"enable.auto.commit": False})
    dlq_partitions = dlq.list_topics(DLQ, timeout=10).topics[DLQ].partitions
    dlq.assign([TopicPartition(DLQ, p, OFFSET_BEGINNING) for p in dlq_partitions])
    letters: list[Message] = []
    deadline = time.monotonic() + 30
    try:
        while len(letters) < len(garbage) and time.monotonic() < deadline:
            msg = dlq.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            headers = dict(msg.headers() or [])
            if headers.get("vigil-source-topic") == topic.encode():
                letters.append(msg)
    finally:
        dlq.close()
    assert len(letters) == len(garbage)
    for letter in letters:
        headers = dict(letter.headers() or [])
        value = letter.value() or b""
        assert value in garbage
        assert headers["vigil-error-type"] == b"DecodeError"
        assert headers["vigil-error"]
        partition, offset = positions[value]
        assert headers["vigil-source-partition"] == str(partition).encode()
        assert headers["vigil-source-offset"] == str(offset).encode()
        assert headers["vigil-event-id"] == f"{topic}/{partition}/{offset}".encode()
        assert (letter.key() or b"").startswith(b"bad-")
    reasons = {dict(m.headers() or [])["vigil-error"].decode() for m in letters}
    assert any("not Avro" in r for r in reasons)
    assert any("empty message" in r for r in reasons)
    assert any("unknown schema fingerprint" in r for r in reasons)


def test_every_schema_survives_the_broker(
    stack: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("all")
    codec = Codec.from_registry_url(stack.schema_registry_url)
    producer = make_producer(stack)
    for name, record in sorted(EXAMPLES.items()):
        producer.produce(topic, key=name.encode(), value=codec.encode(name, record))
    assert producer.flush(30) == 0
    consumer = _assigned_consumer(stack, unique, topic, 1)
    try:
        messages = _read(consumer, len(EXAMPLES))
    finally:
        consumer.close()
    for msg in messages:
        decoded = codec.decode(msg.value() or b"")
        assert (msg.key() or b"").decode() == decoded.short_name
        assert decoded.record == EXAMPLES[decoded.short_name]
