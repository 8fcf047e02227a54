"""Consumer groups as seen from outside: the lag of a group on some topics (the end of each partition
minus the group's committed offset; a partition the group never committed counts from its
beginning), and a group's description (state, members, their assignments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition
from confluent_kafka.admin import AdminClient

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


@dataclass(frozen=True)
class GroupView:
    """What the broker says of a consumer group: its state, its members, the topics assigned."""

    state: ConsumerGroupState
    members: int
    #: Topics with at least one partition assigned to a member.
    topics: frozenset[str]

    @property
    def stable(self) -> bool:
        return self.state == ConsumerGroupState.STABLE


def describe_group(admin: AdminClient, group: str, timeout: float = 5.0) -> GroupView:
    """``group`` as the broker describes it; raises ``KafkaException`` if the broker gives nothing."""
    desc = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result()
    topics = frozenset(
        tp.topic
        for member in desc.members
        if member.assignment
        for tp in member.assignment.topic_partitions or []
    )
    return GroupView(state=desc.state, members=len(desc.members), topics=topics)
