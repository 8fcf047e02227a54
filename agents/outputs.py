"""What a unit of work sends to Kafka: stream outputs, dead letters, processed-event records.

Over one idempotent confluent-kafka producer. Stream outputs and dead letters are flushed before
the unit of work commits (at least once, stable ids); processed-event records are queued after the
commit and need no flush: the ledger topic is an accelerator, Postgres is the truth.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from confluent_kafka import KafkaException, Producer

from agents.context import StreamSend
from agents.unit_of_work import BatchResult, Item
from schemas.codec import Codec
from schemas.errors import OutputError, RetryableError
from streams import headers
from streams.catalog import DLQ, PROCESSED_EVENTS
from streams.deadletter import dead_letter
from streams.ledger_records import Processed, encode_processed, ledger_key
from streams.outgoing import Outgoing
from streams.produce import produce_and_flush
from streams.views import EVENT_ID_HEADER, TRACE_ID_HEADER, MessageParts

#: librdkafka's default ``message.max.bytes``, the largest message the producer accepts.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
#: How often the list of topics may be asked again for a topic not seen yet.
TOPIC_REFRESH_S = 2.0


class TopicCache:
    """The broker's topic names, asked again (at most every few seconds) when one is missing.

    Asked with a metadata request for all topics: asking for one topic by name could make a broker
    with ``auto.create.topics.enable`` create it, and a typo must not become a topic.
    """

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._names: set[str] = set()
        self._asked_at = 0.0
        self._lock = threading.Lock()

    def missing(self, topics: set[str]) -> set[str]:
        missing = topics - self._names
        if missing and time.monotonic() - self._asked_at >= TOPIC_REFRESH_S:
            with self._lock:
                try:
                    self._names = set(self._producer.list_topics(timeout=10).topics)
                except KafkaException as exc:
                    raise RetryableError(f"cannot list the broker's topics: {exc}") from exc
                self._asked_at = time.monotonic()
            missing = topics - self._names
        return missing

    def knows_all(self, topics: set[str]) -> bool:
        return topics <= self._names


class KafkaOutputs:
    """The :class:`agents.unit_of_work.Outputs` of a worker, plus the ledger records."""

    def __init__(
        self,
        producer: Producer,
        codec: Codec,
        *,
        dlq_topic: str = DLQ,
        installation: str = "",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.producer = producer
        self.codec = codec
        self.dlq_topic = dlq_topic
        self.installation = installation
        self.max_message_bytes = max_message_bytes
        self.topics = TopicCache(producer)

    async def check_sends(self, sends: Sequence[StreamSend]) -> None:
        if not sends:
            return
        for send in sends:
            if send.size > self.max_message_bytes:
                raise OutputError(
                    f"ctx.send to {send.topic}: the message is {send.size} bytes, over the producer's "
                    f"limit of {self.max_message_bytes}"
                )
        topics = {send.topic for send in sends}
        if self.topics.knows_all(topics):
            return
        missing = await asyncio.to_thread(self.topics.missing, topics)
        if missing:
            raise OutputError(
                f"ctx.send: topic {sorted(missing)[0]!r} does not exist; create it first "
                "(Vigil does not create topics for stream outputs)"
            )

    def send_and_flush(self, sends: Sequence[StreamSend]) -> dict[str, BaseException]:
        messages = [
            Outgoing(
                send.topic,
                send.key,
                send.value,
                ((EVENT_ID_HEADER, send.event_id.encode()), (TRACE_ID_HEADER, send.trace_id.encode())),
                tag=send.source_event_id,
            )
            for send in sends
        ]
        refused = produce_and_flush(self.producer, messages, what="stream outputs")
        return {
            str(r.tag): OutputError(f"ctx.send refused by Kafka: {r}", code=r.error.name()) for r in refused
        }

    def dead_letter(self, agent: str, parts: MessageParts, error: BaseException, attempts: int) -> None:
        letter = dead_letter(
            topic=parts.topic,
            partition=parts.partition,
            offset=parts.offset,
            key=parts.key,
            value=parts.value,
            headers=[
                *parts.headers.items(),
                (headers.AGENT, agent.encode()),
                (headers.ATTEMPTS, str(attempts).encode()),
            ],
            error=error,
        )
        refused = produce_and_flush(
            self.producer,
            [Outgoing(self.dlq_topic, letter.key, letter.value, letter.headers)],
            what="dead letter",
        )
        if not refused:
            return
        # Refused for good (most often: the original message plus the headers is over the size
        # limit). Keep the record of the failure, without the original value.
        note = f"original value omitted: the dead-letter topic refused it ({refused[0]})"
        refused = produce_and_flush(
            self.producer,
            [
                Outgoing(
                    self.dlq_topic,
                    letter.key,
                    None,
                    [*letter.headers, (headers.VALUE_OMITTED, note.encode())],
                )
            ],
            what="dead letter",
        )
        if refused:
            raise OutputError(f"the dead-letter topic refused a letter: {refused[0]}")

    def publish_processed(
        self, agent: str, items: Sequence[Item], result: BatchResult, keys: Mapping[str, bytes] | None = None
    ) -> None:
        """Queue one ``vigil.processed-events`` record per event this batch recorded as processed
        (``keys``: their ledger keys by event id, if made already)."""
        statuses = dict.fromkeys(result.succeeded, "succeeded")
        statuses.update(dict.fromkeys(result.rejected, "review"))
        statuses.update(dict.fromkeys(result.dead_lettered, "dead_lettered"))
        done: list[Item] = []
        rows: list[Processed] = []
        for item in items:
            status = statuses.pop(item.event_id, None)
            if status is None:
                continue
            parts = item.parts
            run_id = result.run_ids.get(item.event_id)
            rows.append(
                Processed(
                    item.event_id, str(run_id or ""), status, parts.topic, parts.partition, parts.offset
                )
            )
            done.append(item)
        values = encode_processed(self.codec, agent, self.installation, datetime.now(UTC), rows)
        produce = self.producer.produce
        for item, value in zip(done, values, strict=True):
            produce(
                PROCESSED_EVENTS,
                key=keys[item.event_id] if keys is not None else ledger_key(agent, item.event_id),
                value=value,
                headers=[
                    (EVENT_ID_HEADER, item.event_id.encode()),
                    (TRACE_ID_HEADER, item.view.trace_id.encode()),
                ],
            )
        self.producer.poll(0)
