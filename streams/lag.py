"""Consumer lag of a group on some topics: the end of each partition minus the group's committed
offset (a partition the group never committed counts from its beginning)."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, TopicPartition

from streams.kafka import make_consumer
from streams.settings import Settings


def group_lag(consumer: Consumer, topics: Sequence[str], timeout: float = 5.0) -> dict[str, int]:
    """Lag per topic of the group ``consumer`` was made for (it need not be subscribed)."""
    lag: dict[str, int] = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        committed = consumer.committed(partitions, timeout=timeout)
        total = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)
            start = tp.offset if tp.offset >= 0 else low
            total += max(0, high - max(start, low))
        lag[topic] = total
    return lag


def lag_probe(settings: Settings, group: str) -> Consumer:
    """A consumer of ``group`` that never subscribes or commits: only reads offsets."""
    return make_consumer(settings, group, **{"enable.auto.commit": False})
