"""Batch delivery's pure parts: offsets to commit, groups, the order check, a queue Faust cannot clear."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from agents.api import AgentSpec
from agents.feed import (
    COMMIT_RETRY_S,
    QUEUED_BATCHES,
    BatchFeed,
    FeedBatch,
    FeedChannel,
    PendingCommits,
    consumer_group,
    fatal_error_text,
    feed_group,
    feed_instance_id,
    is_app_group,
    next_offsets,
)
from agents.worker import agent_group
from streams.settings import Settings


def test_next_offsets_are_one_past_the_highest_offset_of_each_partition() -> None:
    records = [("a", 0, 5), ("a", 0, 7), ("a", 1, 3), ("b", 0, 0), ("a", 0, 6)]
    assert next_offsets(records) == {("a", 0): 8, ("a", 1): 4, ("b", 0): 1}
    assert next_offsets([]) == {}


@given(st.lists(st.tuples(st.sampled_from("xy"), st.integers(0, 3), st.integers(0, 10_000))))
def test_next_offsets_never_commit_past_a_record_not_in_the_batch(
    records: list[tuple[str, int, int]],
) -> None:
    ends = next_offsets(records)
    assert set(ends) == {(t, p) for t, p, _ in records}
    for (topic, partition), end in ends.items():
        assert end - 1 == max(o for t, p, o in records if (t, p) == (topic, partition))


def test_an_agent_with_a_feed_has_a_group_of_its_own_the_others_share_the_apps() -> None:
    assert feed_group("vigil", "order-watch") == "vigil.order-watch"
    runtime = SimpleNamespace(settings=Settings(app_id="app"), feeds={"a": [_feed(consumer=object())]})
    assert agent_group(runtime, "a") == "app.a"  # type: ignore[arg-type]
    assert agent_group(runtime, "b") == "app"  # type: ignore[arg-type]


async def _handler(event: Any, ctx: Any) -> None:
    return None


def _feed(consumer: Any, settings: Settings | None = None) -> BatchFeed:
    app = faust.App("feed-unit", broker="kafka://localhost:1")
    spec = AgentSpec(name="a", topics=("t",), handler=_handler)

    async def crash(exc: BaseException) -> None:
        return None

    settings = settings or Settings(app_id="app")
    return BatchFeed(settings, spec, FeedChannel(app), crash=crash, consumer=consumer)


def test_a_batch_fills_within_the_window_only_while_the_agent_is_busy() -> None:
    feed = _feed(consumer=object(), settings=Settings(app_id="app", batch_window_ms=25))
    assert feed._window() == 0.0  # idle: what has arrived goes at once
    feed._handed = 1
    assert feed._window() == 0.025  # the agent works on batch 1: this one could not start sooner
    feed.done(FeedBatch(1, [_message("t", 0, 4)]))
    assert feed._window() == 0.0  # finished, though the feed has not committed its offsets yet
    feed._commit_done()
    assert feed._finished == 1 and feed._window() == 0.0


def test_a_batch_out_of_order_stops_the_agent_before_anything_is_committed() -> None:
    feed = _feed(consumer=object())
    feed.take(FeedBatch(1, []))
    feed.take(FeedBatch(2, []))
    with pytest.raises(RuntimeError, match="lost between the feed and the agent"):
        feed.take(FeedBatch(4, []))


def test_the_channel_queue_is_bounded_and_outside_fausts_flow_control() -> None:
    async def check() -> None:
        app = faust.App("feed-unit-q", broker="kafka://localhost:1")
        app.flow_control.resume()
        fausts = app.channel().queue
        q = FeedChannel(app).queue
        assert q.maxsize == QUEUED_BATCHES
        await fausts.put("one")
        await q.put("one")
        app.flow_control.suspend()  # what Faust does while its own group rebalances
        app.flow_control.resume()  # ... and on resume it clears the queues it manages
        assert fausts.empty(), "a plain Faust channel loses what it held"
        await asyncio.wait_for(q.put("two"), 1)
        assert [q.get_nowait(), q.get_nowait()] == ["one", "two"]

    asyncio.run(check())


def test_other_processes_find_an_agents_group_from_the_settings() -> None:
    assert consumer_group(Settings(app_id="app", delivery="batch"), "a") == "app.a"
    assert consumer_group(Settings(app_id="app", delivery="faust"), "a") == "app"
    assert is_app_group("app", "app") and is_app_group("app", "app.order-watch")
    assert not is_app_group("app", "app-sink") and not is_app_group("app", "application.a")


def test_the_worker_feeds_agents_of_one_actor_and_leaves_the_others_to_faust() -> None:
    from agents.worker import build_app
    from streams import app as app_module

    settings = Settings(kafka_bootstrap="x:1", app_id="feeds-unit", delivery="batch")
    one = AgentSpec(name="one", topics=("t1",), handler=_handler)
    many = AgentSpec(name="many", topics=("t2",), handler=_handler, concurrency=2)
    runtime = SimpleNamespace(settings=settings, feeds={})
    app = build_app(settings, [one], runtime)  # type: ignore[arg-type]
    assert set(runtime.feeds) == {"one"} and isinstance(app.agents["one"].channel, FeedChannel)
    assert "feeds-unit" not in app_module._FETCH_MAX_WAIT_MS  # Faust's consumer reads no agent topic
    runtime = SimpleNamespace(settings=settings, feeds={})
    app = build_app(settings, [one, many], runtime)  # type: ignore[arg-type]
    assert set(runtime.feeds) == {"one"} and not isinstance(app.agents["many"].channel, FeedChannel)
    assert app_module._FETCH_MAX_WAIT_MS["feeds-unit"] == settings.fetch_wait_ms(faust=True)


def test_each_agent_gets_its_consumers_in_its_one_group_each_with_a_faust_agent_of_its_own() -> None:
    from agents.worker import agent_group, build_app, feed_agent_name

    settings = Settings(kafka_bootstrap="x:1", app_id="feeds-many", delivery="batch", agent_consumers=3)
    one = AgentSpec(name="one", topics=("t1",), handler=_handler)
    runtime = SimpleNamespace(settings=settings, feeds={})
    app = build_app(settings, [one], runtime)  # type: ignore[arg-type]
    feeds = runtime.feeds["one"]
    assert len(feeds) == 3 and {feed.group for feed in feeds} == {"feeds-many.one"}
    assert agent_group(runtime, "one") == "feeds-many.one"  # type: ignore[arg-type]
    names = [feed_agent_name("one", n) for n in range(3)]
    assert names == ["one", "one#2", "one#3"]
    assert [app.agents[name].channel for name in names] == [feed.channel for feed in feeds]
    assert Settings(kafka_bootstrap="x:1").agent_consumers == 2


class _RebalancedConsumer:
    """What `_read_again` and `_on_revoke` use of a consumer: its assignment, seek and commit."""

    def __init__(
        self, owned: list[tuple[str, int]], unfetched: frozenset[tuple[str, int]] = frozenset()
    ) -> None:
        self.owned = owned
        self.unfetched = unfetched
        self.seeks: list[tuple[str, int, int]] = []
        self.commits: list[list[tuple[str, int, int]]] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.owned]

    def seek(self, tp: TopicPartition) -> None:
        if (tp.topic, tp.partition) in self.unfetched:
            raise KafkaException(KafkaError(KafkaError._STATE))
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])


def _message(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=lambda: topic, partition=lambda: partition, offset=lambda: offset)


def test_messages_read_during_a_rebalance_are_read_again_from_the_first_where_still_owned() -> None:
    consumer = _RebalancedConsumer(owned=[("t", 0), ("t", 2)], unfetched={("t", 2)})
    feed = _feed(consumer=consumer)
    messages = [_message("t", 0, 9), _message("t", 1, 4), _message("t", 0, 7), _message("t", 2, 3)]
    feed._read_again(consumer, messages)  # type: ignore[arg-type]
    # t/1 is another member's now; t/2 was just assigned and starts at its committed offset anyway.
    assert consumer.seeks == [("t", 0, 7)]


def test_a_revoked_feed_waits_for_the_batches_it_handed_and_commits_them() -> None:
    consumer = _RebalancedConsumer(owned=[("t", 0)])
    feed = _feed(consumer=consumer)
    feed._handed = 2
    batches = [FeedBatch(1, [_message("t", 0, 4)]), FeedBatch(2, [_message("t", 0, 5), _message("t", 1, 8)])]

    def agent() -> None:
        for batch in batches:
            time.sleep(0.05)
            feed.done(batch)

    finisher = threading.Thread(target=agent)
    finisher.start()
    feed._on_revoke(consumer, [TopicPartition("t", 0)])  # type: ignore[arg-type]
    finisher.join()
    committed = {(t, p): o for commit in consumer.commits for t, p, o in commit}
    assert committed == {("t", 0): 6, ("t", 1): 9}
    assert feed._finished == 2 and feed._rebalances == 1


def _tp(topic: str, partition: int, offset: int, error: KafkaError | None = None) -> Any:
    """A partition of a commit's answer (a real TopicPartition's ``error`` cannot be set)."""
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, error=error)


def test_a_failed_offset_commit_is_sent_again_without_waiting_for_another_batch() -> None:
    pending = PendingCommits()
    pending.add({("t", 0): 5, ("t", 1): 9})
    sent = pending.to_send(0.0)
    assert {(tp.topic, tp.partition, tp.offset) for tp in sent} == {("t", 0, 5), ("t", 1, 9)}
    assert pending.to_send(0.1) == [], "nothing new and nothing failed: nothing to send"
    timeout = KafkaError(KafkaError.REQUEST_TIMED_OUT)
    assert pending.answered(timeout, sent, now=0.2)
    assert not pending.answered(timeout, sent, now=0.3), "one retry is scheduled at a time"
    assert pending.to_send(0.2 + COMMIT_RETRY_S / 2) == []
    again = pending.to_send(0.2 + COMMIT_RETRY_S)
    assert {(tp.topic, tp.partition, tp.offset) for tp in again} == {("t", 0, 5), ("t", 1, 9)}
    pending.answered(None, again, now=2.0)
    assert pending.offsets == {} and pending.to_send(9.0) == []


def test_a_commit_answer_confirms_only_what_it_covers() -> None:
    pending = PendingCommits()
    pending.add({("t", 0): 5})
    first = pending.to_send(0.0)
    pending.add({("t", 0): 8, ("t", 1): 2})  # a later batch, before the first commit's answer
    pending.add({("t", 0): 7})  # never moves an offset back
    pending.answered(None, first, now=0.1)
    assert pending.offsets == {("t", 0): 8, ("t", 1): 2}, "an older commit's answer confirms no newer offset"
    # One partition refused: it stays, and the commit is retried; the other one is confirmed.
    sent = pending.to_send(0.2)
    answer = [_tp("t", 0, 8), _tp("t", 1, 2, KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE))]
    assert pending.answered(None, answer, now=0.3)
    assert pending.offsets == {("t", 1): 2} and len(sent) == 2
    # Nothing to commit is not a failure.
    assert not PendingCommits().answered(KafkaError(KafkaError._NO_OFFSET), [], now=0.0)


def test_with_an_interval_new_offsets_wait_for_it_and_a_forced_commit_sends_them_at_once() -> None:
    pending = PendingCommits(interval_s=1.0)
    pending.add({("t", 0): 5})
    assert [tp.offset for tp in pending.to_send(10.0)] == [5]
    pending.add({("t", 0): 9})
    assert pending.to_send(10.5) == [], "the last commit went out 0.5 s ago"
    assert [tp.offset for tp in pending.to_send(11.0)] == [9]
    pending.add({("t", 0): 12})
    assert [tp.offset for tp in pending.to_send(11.1, force=True)] == [12], "a rebalance or a stop"
    pending.answered(None, [_tp("t", 0, 12)], now=11.2)
    assert pending.to_send(20.0) == [] and pending.to_send(20.0, force=True) == []


def test_revoked_partitions_are_forgotten_so_a_late_retry_never_moves_their_new_owners_offset_back() -> None:
    pending = PendingCommits()
    pending.add({("t", 0): 5, ("t", 1): 3})
    sent = pending.to_send(0.0)
    pending.answered(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), sent, now=0.0)
    pending.forget([TopicPartition("t", 0)])
    assert [(tp.topic, tp.partition) for tp in pending.to_send(5.0)] == [("t", 1)]
    pending.forget([TopicPartition("t", 1)])
    assert pending.offsets == {} and pending.retry_at is None


class _FailingCommits(_RebalancedConsumer):
    """Asynchronous commits fail (librdkafka's ``on_commit`` says so); synchronous ones succeed."""

    def __init__(self) -> None:
        super().__init__(owned=[("t", 0)])
        self.feed: BatchFeed | None = None

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition] | None:
        super().commit(offsets, asynchronous)
        if asynchronous:
            assert self.feed is not None
            self.feed._on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), offsets)
            return None
        return offsets


def test_a_feed_sends_a_failed_commit_again_while_its_partition_stays_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = _FailingCommits()
    feed = _feed(consumer=consumer)
    consumer.feed = feed
    clock = [100.0]
    monkeypatch.setattr("agents.feed.time.monotonic", lambda: clock[0])
    feed.done(FeedBatch(1, [_message("t", 0, 4)]))
    feed._commit_done()
    feed._commit_done()  # the loop's next turns: no batch came, the retry is not due yet
    assert consumer.commits == [[("t", 0, 5)]]
    clock[0] += COMMIT_RETRY_S
    feed._commit_done()
    assert consumer.commits == [[("t", 0, 5)], [("t", 0, 5)]]
    feed._commit_done(wait=True)  # e.g. before a rebalance: synchronous, and confirmed
    assert consumer.commits[-1] == [("t", 0, 5)] and feed.pending.offsets == {}


def test_feeds_commit_new_offsets_at_most_once_a_second_by_default() -> None:
    feed = _feed(consumer=object())
    assert feed.pending.interval_s == 1.0
    assert _feed(object(), Settings(app_id="app", commit_interval_ms=0)).pending.interval_s == 0.0


def test_each_feed_of_an_agent_has_an_instance_id_of_its_own_and_none_without_the_setting() -> None:
    ids = {feed_instance_id("worker-a", agent, n) for agent in ("route", "audit") for n in (0, 1)}
    assert ids == {"worker-a.route.0", "worker-a.route.1", "worker-a.audit.0", "worker-a.audit.1"}
    assert feed_instance_id(None, "route", 0) is None


def test_a_fenced_feed_names_the_setting_to_change() -> None:
    fenced = KafkaError(
        KafkaError._FATAL,
        "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id",
    )
    assert "same VIGIL_GROUP_INSTANCE_ID" in fatal_error_text(fenced)
    other = KafkaError(KafkaError._FATAL, "Fatal error: something else")
    assert fatal_error_text(other) == "fatal consumer error: Fatal error: something else"
