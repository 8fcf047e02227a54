"""streams.produce against the embedded broker: what lands, what is refused for good, what is
retried. Every producer of Vigil that must know its messages arrived goes through it (the relay,
ticks, tombstones, drift events, dead letters, stream outputs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.errors import RetryableError, ServiceError
from streams.kafka import make_producer
from streams.outgoing import Outgoing
from streams.produce import produce_all, produce_and_flush
from streams.settings import Settings
from tests.integration.test_kafka_broker import read_all

pytestmark = pytest.mark.integration


def _batch(topic: str, count: int) -> list[Outgoing]:
    return [
        Outgoing(topic, f"k{n}".encode(), f"v{n}".encode(), (("n", str(n).encode()),), tag=n)
        for n in range(count)
    ]


@pytest.mark.timeout(60)
def test_produce_all_returns_once_every_message_is_on_the_topic(
    stack: Settings, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("all", partitions=2)
    produce_all(make_producer(stack), _batch(topic, 300), what="test messages")
    got = read_all(stack, topic, 2, lambda got: len(got) >= 300, timeout=30)
    assert sorted(int(m.value()[1:]) for m in got) == list(range(300))
    assert {dict(m.headers())["n"] for m in got} == {str(n).encode() for n in range(300)}


@pytest.mark.timeout(60)
def test_a_refusal_for_good_is_returned_with_its_tag_or_raised_naming_it(
    stack: Settings, make_topic: Callable[..., str]
) -> None:
    fine = make_topic("fine")
    small = make_topic("small", configs={"max.message.bytes": "1024"})
    too_big = Outgoing(small, b"big", b"x" * 5000, tag="the-big-one")
    producer = make_producer(stack)

    refused = produce_and_flush(producer, [*_batch(fine, 10), too_big], what="test messages")
    assert [(r.tag, r.topic) for r in refused] == [("the-big-one", small)]
    assert len(read_all(stack, fine, 1, lambda got: len(got) >= 10, timeout=30)) == 10

    with pytest.raises(
        RetryableError,
        match=r"test messages: 1 of 2 message\(s\) refused by Kafka, the first \(the-big-one\)",
    ):
        produce_all(producer, [*_batch(fine, 1), too_big], what="test messages")
    with pytest.raises(ServiceError, match="the-big-one") as raised:
        produce_all(producer, [too_big], what="test messages", refusal=ServiceError)
    assert raised.value.code == "MSG_SIZE_TOO_LARGE"


@pytest.mark.timeout(60)
def test_a_broker_that_never_answers_is_a_retryable_error(stack: Settings) -> None:
    nowhere = stack.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
    producer = make_producer(nowhere, **{"message.timeout.ms": 1500, "log_level": 0})
    with pytest.raises(RetryableError, match="test messages: 3 message"):
        produce_all(producer, _batch("anywhere", 3), what="test messages", timeout=10)
