"""The bridge's Kafka side and state files, without a JVM or a broker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from connectors.engine import KafkaSink, _is_config_error
from connectors.records import OutgoingMessage
from connectors.state import ConnectorState, read_state, write_state
from ops.services.procs import pid_alive
from schemas.errors import RetryableError
from streams.settings import Settings


class FakeProducer:
    """Acknowledges (or refuses) every message on flush, like librdkafka's delivery reports."""

    def __init__(self, refuse: bool = False, stuck: int = 0) -> None:
        self.refuse, self.stuck = refuse, stuck
        self.pending: list[Any] = []
        self.sent: list[tuple[str, bytes | None, bytes | None, list[Any]]] = []

    def produce(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[Any], on_delivery: Any
    ) -> None:
        self.sent.append((topic, key, value, headers))
        self.pending.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if self.refuse else None
        for callback in self.pending:
            callback(error, None)
        self.pending.clear()
        return self.stuck


def sink(producer: FakeProducer) -> KafkaSink:
    s = KafkaSink(Settings(kafka_bootstrap="unused:9092"), producer=producer)  # type: ignore[arg-type]
    s._known_topics.add("cdc.public.t")
    return s


def message(i: int) -> OutgoingMessage:
    return OutgoingMessage("cdc.public.t", b"k%d" % i, b"v", [("vigil-event-id", b"e%d" % i)], f"e{i}")


def test_a_batch_returns_only_once_every_message_is_acknowledged() -> None:
    producer = FakeProducer()
    sink(producer).send([message(1), message(2)])
    assert [s[1] for s in producer.sent] == [b"k1", b"k2"]
    assert producer.sent[0][3] == [("vigil-event-id", b"e1")]
    assert not producer.pending


def test_a_refused_record_fails_the_batch() -> None:
    with pytest.raises(RetryableError, match="refused 2"):
        sink(FakeProducer(refuse=True)).send([message(1), message(2)])


def test_unacknowledged_records_fail_the_batch() -> None:
    with pytest.raises(RetryableError, match="not acknowledged"):
        sink(FakeProducer(stuck=1)).send([message(1)])


def test_config_errors_are_not_retried() -> None:
    assert _is_config_error("io.debezium.DebeziumException: Connector configuration is not valid. …")
    assert not _is_config_error("connection refused")
    assert not _is_config_error(None)


def test_state_file_round_trip(tmp_path: Path) -> None:
    assert read_state(tmp_path, "c1") is None
    state = ConnectorState("c1", os.getpid(), "running", 1.0, 2.0, events=3, last_event_at=2.0)
    write_state(tmp_path, state)
    assert read_state(tmp_path, "c1") == state
    assert pid_alive(os.getpid())
    assert not pid_alive(2**22 + 12345)
