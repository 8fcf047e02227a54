"""What a unit of work sends to Kafka: stream outputs, dead letters, processed-event records.

Over one idempotent confluent-kafka producer. Stream outputs and dead letters are flushed before
the unit of work commits (at least once, stable ids); processed-event records are queued after the
commit and need no flush: the ledger topic is an accelerator, Postgres is the truth.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from agents.context import StreamSend
from agents.unit_of_work import BatchResult, Item
from schemas.codec import Codec
from schemas.errors import RetryableError
from streams.catalog import DLQ, PROCESSED_EVENTS
from streams.deadletter import dead_letter, send_dead_letter
from streams.views import EVENT_ID_HEADER, TRACE_ID_HEADER, MessageParts


class _Deliveries:
    """Collects delivery reports of one flush; raises if any failed."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            with self._lock:
                self.errors.append(f"{msg.topic()}: {err}")

    def check(self, producer: Producer, what: str, timeout: float = 30.0) -> None:
        remaining = producer.flush(timeout)
        if remaining:
            raise RetryableError(f"{what}: {remaining} message(s) not delivered within {timeout:.0f}s")
        if self.errors:
            raise RetryableError(f"{what}: delivery failed: {'; '.join(self.errors[:3])}")


class KafkaOutputs:
    """The :class:`agents.unit_of_work.Outputs` of a worker, plus the ledger records."""

    def __init__(self, producer: Producer, codec: Codec, *, dlq_topic: str = DLQ) -> None:
        self.producer = producer
        self.codec = codec
        self.dlq_topic = dlq_topic

    def send_and_flush(self, sends: Sequence[StreamSend], trace_id_of: Callable[[str], str]) -> None:
        deliveries = _Deliveries()
        for send in sends:
            source_event = send.event_id.split("/", 1)[0]
            self.producer.produce(
                send.topic,
                key=send.key,
                value=send.value,
                headers=[
                    (EVENT_ID_HEADER, send.event_id.encode()),
                    (TRACE_ID_HEADER, trace_id_of(source_event).encode()),
                ],
                on_delivery=deliveries,
            )
        deliveries.check(self.producer, "stream outputs")

    def dead_letter(self, agent: str, parts: MessageParts, error: BaseException, attempts: int) -> None:
        letter = dead_letter(
            topic=parts.topic,
            partition=parts.partition,
            offset=parts.offset,
            key=parts.key,
            value=parts.value,
            headers=[
                *parts.headers.items(),
                ("vigil-agent", agent.encode()),
                ("vigil-attempts", str(attempts).encode()),
            ],
            error=error,
        )
        deliveries = _Deliveries()
        send_dead_letter(self.producer, letter, self.dlq_topic, on_delivery=deliveries)
        deliveries.check(self.producer, "dead letter")

    def publish_processed(self, agent: str, items: Sequence[Item], result: BatchResult) -> None:
        """Queue one ``vigil.processed-events`` record per event this batch recorded as processed."""
        statuses: dict[str, str] = {}
        statuses.update((e, "succeeded") for e in result.succeeded)
        statuses.update((e, "review") for e in result.rejected)
        statuses.update((e, "dead_lettered") for e in result.dead_lettered)
        now = datetime.now(UTC)
        for item in items:
            status = statuses.pop(item.event_id, None)
            if status is None:
                continue
            record: dict[str, Any] = {
                "agent": agent,
                "event_id": item.event_id,
                "run_id": str(result.run_ids.get(item.event_id, "")),
                "status": status,
                "processed_at": now,
                "source_topic": item.parts.topic,
                "source_partition": item.parts.partition,
                "source_offset": item.parts.offset,
            }
            self.producer.produce(
                PROCESSED_EVENTS,
                key=f"{agent}/{item.event_id}".encode(),
                value=self.codec.encode("ProcessedEvent", record),
                headers=[
                    (EVENT_ID_HEADER, item.event_id.encode()),
                    (TRACE_ID_HEADER, item.view.trace_id.encode()),
                ],
            )
        self.producer.poll(0)
