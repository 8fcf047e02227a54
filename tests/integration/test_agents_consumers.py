"""An agent reads its topics with several consumers of one group (``VIGIL_AGENT_CONSUMERS``): each
takes some partitions, and a partition's events still run in order, each once (real worker, Postgres
and the broker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import KafkaError, TopicPartition

from streams.kafka import make_admin, make_consumer
from streams.settings import Settings
from tests.integration.workers import (
    assert_exactly_once,
    produce_events,
    scalar,
    start_worker,
    stop,
    wait_until,
)

pytestmark = pytest.mark.integration


def _partitions_of(stack: Settings, topic: str, partitions: int, total: int) -> dict[str, int]:
    """Each event id's partition, read back from the topic."""
    consumer = make_consumer(stack, f"read-{topic}", **{"enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: dict[str, int] = {}
    ended: set[int] = set()
    deadline = time.monotonic() + 60
    while len(ended) < partitions and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(msg.partition())
                continue
            found[msg.key().decode()] = msg.partition()
    consumer.close()
    assert len(found) == total
    return found


def _members(stack: Settings, group: str) -> list[set[int]]:
    """The partitions each member of ``group`` holds now."""
    admin = make_admin(stack)  # kept until the answer came: its thread answers the future
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:  # the group coordinator still loading, or the group not formed yet: ask again
        return []
    return [{tp.partition for tp in member.assignment.topic_partitions} for member in description.members]


@pytest.mark.timeout(300)
def test_two_consumers_share_an_agents_partitions_and_keep_each_partitions_order(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    partitions, total = 3, 6000
    topic = make_topic("lanes", partitions=partitions)
    produce_events(stack, topic, [(f"evt-{n}", {"n": n}) for n in range(total)])
    log = tmp_path / "worker.log"
    worker = start_worker(
        stack,
        fresh_database,
        topic=topic,
        app_id=unique,
        agent_name=unique,
        log_path=log,
        extra_env={"VIGIL_AGENT_CONSUMERS": "2"},
    )
    members: list[set[int]] = []
    try:

        def shared() -> bool:
            nonlocal members
            members = _members(stack, f"{unique}.{unique}")
            return len(members) == 2 and all(members)

        wait_until(shared, 120, "two members of the agent's group, each with partitions", worker, log)
        count = lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
        wait_until(lambda: count() >= total, 240, f"{total} processed events", worker, log)
    finally:
        stop(worker)
    assert sorted(p for held in members for p in held) == list(range(partitions)), members
    assert_exactly_once(fresh_database, unique, total)
    # The recorder's ORM rows take their serial ids in the order the handlers ran.
    partition_of = _partitions_of(stack, topic, partitions, total)
    ran: dict[int, list[int]] = {p: [] for p in range(partitions)}
    with psycopg.connect(fresh_database) as conn:
        for event_id, n in conn.execute("SELECT event_id, n FROM public.effects_orm ORDER BY id"):
            ran[partition_of[event_id]].append(n)
    for partition, ns in ran.items():
        assert ns and ns == sorted(ns), f"partition {partition} ran out of order"
