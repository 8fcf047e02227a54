"""``vigil inspect topics|groups|get`` on the real broker; a replay leaves no committed group behind."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from confluent_kafka import TopicPartition
from rich.console import Console

from ops.inspect import get_message, group_infos, topic_infos
from ops.replay import ReplayRequest, replay
from schemas.codec import Codec
from schemas.examples import EXAMPLES
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_topics_groups_and_one_message(stack: Settings, make_topic: Callable[..., str], unique: str) -> None:
    topic = make_topic("inspected", partitions=2, configs={"cleanup.policy": "compact"})
    producer = make_producer(stack)
    value = Codec().encode("DriftEvent", {**EXAMPLES["DriftEvent"], "id": "evt-inspect"})
    for i in range(6):
        producer.produce(topic, key=f"k{i}".encode(), value=value, partition=i % 2, headers=[("h", b"v")])
    assert producer.flush(30) == 0

    info = next(i for i in topic_infos(stack) if i.name == topic)
    assert (info.partitions, info.messages, info.offsets) == (2, 6, {0: (0, 3), 1: (0, 3)})
    assert info.configs["cleanup.policy"] == "compact"

    group = f"{unique}-group"
    consumer = make_consumer(stack, group, **{"enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 3)], asynchronous=False)
    consumer.close()
    (found,) = group_infos(stack, group)
    assert found.lag == {(topic, 0): (1, 3, 2), (topic, 1): (3, 3, 0)}
    assert found.as_json()["lag"] == 2

    message = get_message(stack, topic, 1, 2)
    assert message["key"] == "k5" and message["headers"] == {"h": "v"}
    assert message["format"] == "avro:vigil.DriftEvent" and message["value"]["id"] == "evt-inspect"

    result = replay(
        stack,
        Console(file=io.StringIO()),
        ReplayRequest(topic=topic, to_topic=f"{topic}.sandbox"),
        show_progress=False,
    )
    assert result.copied == 6
    assert group_infos(stack, f"vigil-replay-{result.replay_id}")[0].lag == {}  # it never committed
    assert group_infos(stack, group)[0].lag == found.lag  # the live group's offsets did not move
