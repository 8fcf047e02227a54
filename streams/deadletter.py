"""Dead letters: a message Vigil cannot process goes to ``vigil.dlq`` as it was, with headers saying why.

A dead letter keeps the original key, value (the original bytes) and headers, and adds
``vigil-error`` (the reason), ``vigil-error-type`` (the error's class), ``vigil-source-topic``,
``vigil-source-partition`` and ``vigil-source-offset``. It also carries ``vigil-event-id`` and
``vigil-trace-id`` like every message Vigil writes: the original's when it had them, else the id
``<topic>/<partition>/<offset>``. :func:`dead_letter` is the pure part; :func:`decode_or_dead_letter`
is the one call a consumer loop makes per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from schemas.codec import Codec, Decoded
from schemas.errors import DecodeError, PoisonError
from streams import headers
from streams.catalog import DLQ
from streams.views import maybe_bytes

ERROR = headers.ERROR
ERROR_TYPE = headers.ERROR_TYPE
SOURCE_TOPIC = headers.SOURCE_TOPIC
SOURCE_PARTITION = headers.SOURCE_PARTITION
SOURCE_OFFSET = headers.SOURCE_OFFSET
EVENT_ID = headers.EVENT_ID
TRACE_ID = headers.TRACE_ID
DEAD_LETTER_HEADERS = (ERROR, ERROR_TYPE, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET)

Headers = list[tuple[str, bytes]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


@dataclass(frozen=True)
class DeadLetter:
    """What to produce to the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
    error: BaseException,
) -> DeadLetter:
    """The dead letter of one message: original key, value and headers, plus the error and source position.

    Original headers with the dead-letter names are dropped (a re-dead-lettered message names its
    latest failure only); every other original header is kept, in order.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    kept: Headers = [(name, _as_bytes(v)) for name, v in pairs if name not in DEAD_LETTER_HEADERS]
    names = {name for name, _ in kept}
    reason = error.reason if isinstance(error, DecodeError) else str(error)
    added: Headers = [
        (ERROR, reason.encode("utf-8")),
        (ERROR_TYPE, type(error).__name__.encode("utf-8")),
        (SOURCE_TOPIC, topic.encode("utf-8")),
        (SOURCE_PARTITION, str(partition).encode("ascii")),
        (SOURCE_OFFSET, str(offset).encode("ascii")),
    ]
    position_id = f"{topic}/{partition}/{offset}".encode()
    if EVENT_ID not in names:
        added.append((EVENT_ID, position_id))
    if TRACE_ID not in names:
        added.append((TRACE_ID, dict(kept).get(EVENT_ID, position_id)))
    return DeadLetter(key=key, value=value, headers=kept + added)


def dead_letter_of(msg: Message, error: BaseException) -> DeadLetter:
    """:func:`dead_letter` for a consumed confluent-kafka message."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    return dead_letter(
        topic=topic or "",
        partition=-1 if partition is None else partition,
        offset=-1 if offset is None else offset,
        key=maybe_bytes(msg.key()),
        value=maybe_bytes(msg.value()),
        headers=msg.headers(),
        error=error,
    )


def send_dead_letter(
    producer: Producer,
    letter: DeadLetter,
    dlq_topic: str = DLQ,
    on_delivery: DeliveryCallback | None = None,
) -> None:
    """Queue ``letter`` on ``producer``. Flush the producer before committing the source offset."""
    headers: list[tuple[str, str | bytes | None]] = list(letter.headers)
    if on_delivery is None:
        producer.produce(dlq_topic, value=letter.value, key=letter.key, headers=headers)
    else:
        producer.produce(
            dlq_topic, value=letter.value, key=letter.key, headers=headers, on_delivery=on_delivery
        )
    producer.poll(0)


def decode_or_dead_letter(
    msg: Message,
    codec: Codec,
    producer: Producer,
    dlq_topic: str = DLQ,
    *,
    expect: str | None = None,
    on_delivery: DeliveryCallback | None = None,
) -> Decoded | None:
    """The decoded record of ``msg``, or None after queueing its dead letter.

    Only poison (:class:`~schemas.errors.PoisonError`, e.g. undecodable bytes) is dead-lettered; a
    :class:`~schemas.errors.RetryableError` (an unreachable schema registry) propagates, since the
    message may be fine. The dead letter is queued, not awaited: flush ``producer`` (or wait for
    ``on_delivery``) before committing the source offset, so a crash cannot lose it.
    """
    value = msg.value()
    try:
        if value is None:
            raise DecodeError("no value (a tombstone)")
        return codec.decode(_as_bytes(value), expect=expect)
    except PoisonError as exc:
        send_dead_letter(producer, dead_letter_of(msg, exc), dlq_topic, on_delivery)
        return None
