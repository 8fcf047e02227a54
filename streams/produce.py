"""Producing a group of messages and waiting for the broker: one place for the delivery bookkeeping.

Every Vigil producer that must know its messages arrived (stream outputs, dead letters, relayed
outbox rows, ticks, tombstones, drift events) produces through :func:`produce_and_flush`. It waits
on a full local queue instead of failing, flushes, and sorts the failures: a transient one (the
broker unreachable, a timeout) raises :class:`~schemas.errors.RetryableError` so the caller retries
everything later; a permanent one (message too large, unknown topic, not authorized) is returned
with the message's tag, so the caller can fail just the event that asked for it. Callers whose
messages stand or fall together use :func:`produce_all`, which raises for a refusal too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from schemas.errors import RetryableError, VigilError
from streams.outgoing import Outgoing

#: Broker answers that no retry will change.
PERMANENT_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._INVALID_ARG,
    }
)


@dataclass(frozen=True)
class Refusal:
    """A message the broker (or the client) refused for good."""

    tag: Hashable
    topic: str
    error: KafkaError

    def __str__(self) -> str:
        return f"{self.topic}: {self.error.str()} [{self.error.name()}]"


def is_permanent(error: KafkaError) -> bool:
    return error.code() in PERMANENT_CODES


class _Deliveries:
    def __init__(self) -> None:
        self.transient: list[KafkaError] = []
        self.refused: list[Refusal] = []
        self._lock = threading.Lock()

    def record(self, tag: Hashable, topic: str, error: KafkaError) -> None:
        with self._lock:
            if is_permanent(error):
                self.refused.append(Refusal(tag, topic, error))
            else:
                self.transient.append(error)


def produce_and_flush(
    producer: Producer, messages: Sequence[Outgoing], *, what: str, timeout: float = 30.0
) -> list[Refusal]:
    """Produce ``messages``, wait until each is acknowledged or refused; return the permanent refusals.

    Raises :class:`RetryableError` if any message failed transiently or was not acknowledged within
    ``timeout``: none of them may be taken as delivered then (idempotent ids make a resend safe).
    """
    deliveries = _Deliveries()
    for message in messages:

        def delivered(error: KafkaError | None, _msg: Message, message: Outgoing = message) -> None:
            if error is not None:
                deliveries.record(message.tag, message.topic, error)

        _produce_one(producer, message, delivered, deliveries)
    remaining = producer.flush(timeout)
    if remaining:
        raise RetryableError(f"{what}: {remaining} message(s) not acknowledged within {timeout:.0f}s")
    if deliveries.transient:
        first = deliveries.transient[0]
        raise RetryableError(
            f"{what}: {len(deliveries.transient)} message(s) not delivered: {first.str()}", code=first.name()
        )
    return deliveries.refused


def produce_all(
    producer: Producer,
    messages: Sequence[Outgoing],
    *,
    what: str,
    timeout: float = 30.0,
    refusal: type[VigilError] = RetryableError,
) -> None:
    """:func:`produce_and_flush` for messages that stand or fall together (a relayed batch, a
    schedule's ticks, a dead letter): returns once every one is acknowledged. Raises
    :class:`RetryableError` as it does, and ``refusal`` when the broker refused one for good
    (``RetryableError`` by default: the caller retries the whole group, and logs each try)."""
    refused = produce_and_flush(producer, messages, what=what, timeout=timeout)
    if refused:
        first = refused[0]
        which = f" ({first.tag})" if first.tag is not None else ""
        raise refusal(
            f"{what}: {len(refused)} of {len(messages)} message(s) refused by Kafka, the first{which}: {first}",
            code=first.error.name(),
        )


def _produce_one(
    producer: Producer,
    message: Outgoing,
    delivered: Callable[[KafkaError | None, Message], None],
    deliveries: _Deliveries,
) -> None:
    headers: list[tuple[str, str | bytes | None]] = list(message.headers)
    while True:
        try:
            producer.produce(
                message.topic, key=message.key, value=message.value, headers=headers, on_delivery=delivered
            )
            return
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain
        except KafkaException as exc:  # refused by the client itself (too large, bad argument)
            deliveries.record(message.tag, message.topic, exc.args[0])
            return
