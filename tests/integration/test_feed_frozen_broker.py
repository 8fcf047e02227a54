"""A broker that stands still for seconds (a long pause of its JVM, a stalled VM): the offset commit a
feed sends meanwhile lands once the broker answers, with no rebalance, and nothing is read again.

librdkafka holds a commit while the group coordinator does not answer; it does not fail it. So a
commit fails only with the group's own state changing (a rebalance, a lost member), and then the
partitions' next owner commits: the feed's own retry (:data:`agents.feed.COMMIT_RETRY_S`) is for a
failure the broker answers. The freeze is short: one of 8 s here ended in a rebalance after the
thaw (likely the broker's own session with its KRaft controller, ``broker.session.timeout.ms`` 9 s,
running out; not looked into further). A broker of its own in a throwaway ``VIGIL_HOME``: the
session's broker is not frozen.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import TopicPartition

from agents.api import AgentSpec
from agents.feed import BatchFeed, FeedBatch, FeedChannel
from ops.services import stack as stack_mod
from streams.catalog import TopicSpec
from streams.kafka import make_consumer, make_producer
from streams.settings import load_settings
from streams.topics import ensure_topics
from tests.integration.workers import until_coordinator_ready

pytestmark = pytest.mark.integration

EVENTS = 5
FREEZE_S = 4.0
#: Longer than the freeze: the broker keeps the member.
SESSION_TIMEOUT_MS = 30_000


async def _handler(event: Any, ctx: Any) -> None:
    return None


async def _crash(exc: BaseException) -> None:
    raise AssertionError(f"the feed crashed: {exc!r}")


def _until(done: Callable[[], bool], timeout: float, what: str, serve: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        serve()


@pytest.mark.timeout(240)
def test_a_commit_sent_to_a_frozen_broker_lands_after_without_a_rebalance(throwaway_home: Path) -> None:
    kafka = stack_mod.embedded_kafka(load_settings(home=throwaway_home))
    status = kafka.start()
    assert status.pid is not None
    settings = load_settings(home=throwaway_home, kafka_bootstrap=status.bootstrap)
    topic, group = "frozen-broker.events", "frozen-broker.agent"
    ensure_topics(settings, [TopicSpec(topic, "frozen broker test", 1, {})])
    producer = make_producer(settings)
    for n in range(EVENTS):
        producer.produce(topic, key=f"k{n}".encode(), value=b"{}")
    assert producer.flush(30) == 0

    spec = AgentSpec(name="agent", topics=(topic,), handler=_handler)
    channel = FeedChannel(faust.App("frozen-broker", broker=f"kafka://{status.bootstrap}"))
    feed: BatchFeed
    consumer = make_consumer(
        settings,
        group,
        **{
            "enable.auto.commit": False,
            "on_commit": lambda error, partitions: feed._on_commit(error, partitions),
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 3000,
        },
    )
    # The feed's own commit bookkeeping over a real consumer, driven from here instead of its thread.
    feed = BatchFeed(settings, spec, channel, crash=_crash, consumer=consumer)
    consumer.subscribe([topic], on_assign=feed._on_assign, on_revoke=feed._on_revoke)
    messages: list[Any] = []

    def read() -> None:
        messages.extend(m for m in consumer.consume(EVENTS, 0.5) if m.error() is None)

    def serve() -> None:
        feed._commit_done()
        extra = consumer.poll(0.2)
        assert extra is None, "a message was read again: the group rebalanced"

    frozen = False
    try:
        _until(lambda: len(messages) >= EVENTS, 60, f"{EVENTS} messages", read)
        # The agent finished the batch; the feed commits it while the broker stands still.
        feed._handed = 1
        feed.done(FeedBatch(1, messages))
        os.kill(status.pid, signal.SIGSTOP)
        frozen = True
        feed._commit_done()
        thaw_at = time.monotonic() + FREEZE_S
        while time.monotonic() < thaw_at:
            serve()
        assert feed.pending.offsets == {(topic, 0): EVENTS}, "unconfirmed offsets are kept"
        os.kill(status.pid, signal.SIGCONT)
        frozen = False
        _until(lambda: not feed.pending.offsets, 60, "confirmed commit", serve)
        rebalances = feed._rebalances  # before close(), which revokes
    finally:
        if frozen:
            os.kill(status.pid, signal.SIGCONT)
        consumer.close()

    assert rebalances == 0, "the group rebalanced"
    probe = make_consumer(settings, group)
    try:
        committed = until_coordinator_ready(lambda: probe.committed([TopicPartition(topic, 0)], timeout=10))
    finally:
        probe.close()
    assert [tp.offset for tp in committed] == [EVENTS]
