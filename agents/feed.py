"""Batch delivery (``VIGIL_DELIVERY=batch``, the default): events reach a Faust agent a batch at a time.

With Faust's delivery (``VIGIL_DELIVERY=faust``) every message goes through Faust's consumer, conductor, stream,
take buffer and ack: on our 2-core machine a worker whose events were all duplicates, so that it did
nothing else, spent ≈ 180 µs of CPU per message (``bench dedup``), more than half of what a fresh
event costs. With batch delivery each agent has a confluent-kafka consumer of its own (group
``<app id>.<agent>``), polled in a thread: the first message is waited for with ``poll``, the rest
of the batch (up to ``batch_size``) taken with ``consume`` in librdkafka's C code: what has arrived
if the agent is idle, else what arrives within the batch window (the agent could not start it
sooner). The thread puts each batch, as one value, on the agent's Faust channel, a queue of at most
:data:`QUEUED_BATCHES` batches that Faust's rebalances never clear or suspend. The Faust agent runs
the unit of work over the batch, then hands the batch's next offsets back to the thread, which
commits them (asynchronously, at most once per ``commit_interval_ms``; before releasing partitions
and at a stop, synchronously) between its polls.

A partition the agent's group never committed starts where the app's group (Faust's delivery)
left it, if it did: switching a deployment to batch delivery goes on from where it was instead of
reading the topics from their beginning, where events older than the dedup window would run again.

What stays true: nothing is committed to Kafka before the unit of work committed to Postgres; a
batch cut short by a stop or a crash is read again by the partition's next owner, and its events
that were already processed are skipped by their processed-events claims. Before a rebalance moves
partitions, the feed lets its agent finish the batches it handed over and commits them, and drops
what it read meanwhile (``_on_revoke``, ``_read_again``). A batch that
did not arrive in order (which would mean one was lost between the thread and the agent) stops the
worker rather than committing past it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from agents.api import AgentSpec
from agents.named_thread import NamedThread
from streams.kafka import make_consumer
from streams.settings import Settings

log = logging.getLogger(__name__)

#: The start of a feed's thread's name (its agent's name follows), in Python and in the OS.
FEED_THREAD_PREFIX = "vigil-feed-"

#: Batches a feed may have waiting for its agent: the next one is read while one is processed.
QUEUED_BATCHES = 2
#: Kilobytes a feed's consumer fetches ahead, at most (librdkafka's default is 64 MB a consumer).
#: Tens of batches: enough to never wait for a fetch under a backlog; with two consumers per agent
#: the default let a worker's memory grow by ≈ 38 MB over 900,000 events (`bench memory`), 2.8 MB
#: with this.
PREFETCH_KB = 4096
#: Longest a feed's thread waits for a first message before it looks at its commits and stop flag.
IDLE_POLL_S = 0.2
#: Seconds before a failed offset commit is sent again.
COMMIT_RETRY_S = 1.0


def feed_group(app_id: str, agent: str) -> str:
    """The consumer group of an agent's feed: its own offsets, so two agents of one worker may read
    the same topic (one group would split its partitions between them)."""
    return f"{app_id}.{agent}"


def consumer_group(settings: Settings, agent: str) -> str:
    """The group whose committed offsets say how far ``agent`` got in a worker run with ``settings``
    (an agent with ``concurrency`` above 1 keeps Faust's delivery, and the app's group)."""
    return feed_group(settings.app_id, agent) if settings.delivery == "batch" else settings.app_id


def is_app_group(app_id: str, group: str) -> bool:
    """Whether ``group`` holds offsets of app ``app_id``'s agents: the app's own, or an agent's feed's."""
    return group == app_id or group.startswith(f"{app_id}.")


def feed_instance_id(base: str | None, agent: str, member: int) -> str | None:
    """The ``group.instance.id`` of an agent's ``member``-th feed (from 0) for a worker started with
    ``VIGIL_GROUP_INSTANCE_ID=base``, or None (dynamic membership). The feeds of one agent share its
    group, so each has an id of its own; restarted, the worker gives each feed the same one again."""
    return None if base is None else f"{base}.{agent}.{member}"


def fatal_error_text(error: KafkaError) -> str:
    """Why a feed stops on a fatal consumer error, naming the fix where there is one."""
    text = f"fatal consumer error: {error.str()}"
    said = f"{error.name()} {error.str()}".lower()
    if error.code() in (KafkaError._FENCED, KafkaError.FENCED_INSTANCE_ID) or "fenced" in said:
        text += (
            " (another running worker has the same VIGIL_GROUP_INSTANCE_ID: give every worker an id "
            "of its own, or unset it)"
        )
    return text


def next_offsets(records: Sequence[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """The offsets to commit after ``(topic, partition, offset)`` records were processed: per partition,
    one past the highest offset."""
    ends: dict[tuple[str, int], int] = {}
    for topic, partition, offset in records:
        here = (topic, partition)
        if offset + 1 > ends.get(here, -1):
            ends[here] = offset + 1
    return ends


class PendingCommits:
    """Offsets a feed's agent finished that the broker has not confirmed as committed.

    Commits go out asynchronously, and librdkafka reports each one later (``on_commit``, served by
    the feed's own polls). A commit that failed is sent again after :data:`COMMIT_RETRY_S`, with or
    without a later batch: a quiet partition would otherwise keep its lag, and its next owner would
    read the finished events again, until its next event came. Everything runs on the feed's thread.
    """

    def __init__(self, interval_s: float = 0.0) -> None:
        #: Least time between two commits of new offsets (``VIGIL_COMMIT_INTERVAL_MS``).
        self.interval_s = interval_s
        self.offsets: dict[tuple[str, int], int] = {}
        #: When a failed commit is sent again (``time.monotonic()``); None: no commit failed.
        self.retry_at: float | None = None
        #: Whether an offset moved since the last commit was sent, and when that was.
        self.moved = False
        self.sent_at = float("-inf")

    def add(self, ends: dict[tuple[str, int], int]) -> None:
        for here, offset in ends.items():
            if offset > self.offsets.get(here, -1):
                self.offsets[here] = offset
                self.moved = True

    def to_send(self, now: float, *, force: bool = False) -> list[TopicPartition]:
        """What to commit now: everything unconfirmed, if ``force``d, if a retry is due, or if
        offsets moved and the last commit went out at least ``interval_s`` ago."""
        if not self.offsets:
            return []
        retry = self.retry_at is not None and now >= self.retry_at
        if not (force or retry or (self.moved and now - self.sent_at >= self.interval_s)):
            return []
        self.retry_at = None
        self.moved = False
        self.sent_at = now
        return [TopicPartition(t, p, o) for (t, p), o in self.offsets.items()]

    def answered(self, error: KafkaError | None, partitions: Sequence[TopicPartition], now: float) -> bool:
        """The broker's answer to a commit: confirmed offsets are done, a failed one is retried.
        True if this answer scheduled a retry."""
        whole = error is not None and error.code() != KafkaError._NO_OFFSET
        failed = whole
        for tp in partitions:
            here = (tp.topic, tp.partition)
            if whole or tp.error is not None:
                failed = True
            elif self.offsets.get(here, -1) <= tp.offset:
                self.offsets.pop(here, None)
        if not failed or not self.offsets or self.retry_at is not None:
            return False
        self.retry_at = now + COMMIT_RETRY_S
        return True

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop revoked partitions: their next owner commits them (a late commit from here could move
        its offset back)."""
        for tp in partitions:
            self.offsets.pop((tp.topic, tp.partition), None)
        if not self.offsets:
            self.retry_at = None


@dataclass(frozen=True)
class FeedBatch:
    """What a feed hands its agent: ``number`` counts from 1, in order; ``messages`` are
    confluent-kafka messages without errors."""

    number: int
    messages: list[Any]


class FeedChannel(faust.Channel):  # type: ignore[type-arg]
    """A Faust channel whose queue belongs to its feed: Faust's flow control suspends and, on resume,
    clears the queues of its channels when its own consumer group rebalances, and a cleared batch
    must never be skipped past."""

    @property
    def queue(self) -> ThrowableQueue[Any]:
        if self._queue is None:
            self._queue = ThrowableQueue(
                maxsize=self.maxsize or QUEUED_BATCHES,
                flow_control=FlowControlEvent(initially_suspended=False),
                clear_on_resume=False,
            )
        return self._queue


class BatchFeed:
    """One agent's consumer, polled in a thread; batches go to the agent's :class:`FeedChannel`."""

    def __init__(
        self,
        settings: Settings,
        spec: AgentSpec,
        channel: FeedChannel,
        *,
        crash: Callable[[BaseException], Coroutine[Any, Any, None]],
        consumer: Consumer | None = None,
        member: int = 0,
    ) -> None:
        self.spec = spec
        #: Stops the worker (the app's ``crash``): a feed that died leaves its agent without events.
        self._crash = crash
        self.channel = channel
        self.group = feed_group(settings.app_id, spec.name)
        #: Static membership (``VIGIL_GROUP_INSTANCE_ID``): this feed's id in its group, or None.
        self.instance_id = feed_instance_id(settings.group_instance_id, spec.name, member)
        self.size = spec.batch_size or settings.batch_size
        window_ms = spec.batch_window_ms if spec.batch_window_ms is not None else settings.batch_window_ms
        self.window_s = window_ms / 1000
        #: Made when the feed starts (a worker's app is built before it may connect to anything).
        self._consumer = consumer
        #: Where a partition this group never committed starts: the app's group (Faust's delivery).
        self._seed_group = settings.app_id
        self._seed_probe: Consumer | None = None
        self._settings = settings
        self._commits: queue.SimpleQueue[list[TopicPartition]] = queue.SimpleQueue()
        #: Finished offsets not yet confirmed by the broker (the feed's thread only).
        self.pending = PendingCommits(settings.commit_interval_ms / 1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handed = 0
        #: Batches whose offsets the thread took from ``_commits`` (the agent finished them).
        self._finished = 0
        #: Counts the group's rebalances this member saw (its revocations).
        self._rebalances = 0
        #: The number of the last batch the agent took (the agent side's check of the order).
        self.taken = 0

    # -- the agent's side (event loop) ------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is not None:
            return
        self._loop = loop
        self._thread = NamedThread(
            target=self._run, name=f"{FEED_THREAD_PREFIX}{self.spec.name}", daemon=True
        )
        self._thread.start()

    def take(self, batch: FeedBatch) -> None:
        """Check that ``batch`` is the next one; a gap would commit past events never processed."""
        if batch.number != self.taken + 1:
            raise RuntimeError(
                f"agent {self.spec.name}: feed batch {batch.number} arrived after {self.taken}: a batch was "
                "lost between the feed and the agent; stopping before committing past it"
            )
        self.taken = batch.number

    def done(self, batch: FeedBatch) -> None:
        """The batch's unit of work committed: its offsets may be committed (by the feed's thread)."""
        ends = next_offsets([(m.topic(), m.partition(), m.offset()) for m in batch.messages])
        self._commits.put([TopicPartition(t, p, o) for (t, p), o in ends.items()])

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the feed's thread -------------------------------------------------------------------

    def _run(self) -> None:
        if self._consumer is None:
            self._consumer = make_consumer(
                self._settings,
                self.group,
                **{
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": self._settings.fetch_wait_ms(faust=False),
                    "queued.max.messages.kbytes": PREFETCH_KB,
                    "on_commit": self._on_commit,
                    **({"group.instance.id": self.instance_id} if self.instance_id else {}),
                },
            )
        consumer = self._consumer
        try:
            consumer.subscribe(list(self.spec.topics), on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._stop.is_set():
                self._commit_done()
                rebalances = self._rebalances
                first = consumer.poll(IDLE_POLL_S)
                if first is None:
                    continue
                rest = consumer.consume(self.size - 1, timeout=self._window()) if self.size > 1 else []
                messages = [m for m in (first, *rest) if self._usable(m)]
                if self._rebalances != rebalances:
                    self._read_again(consumer, messages)
                    continue
                if messages and not self._hand_over(messages):
                    break
        except Exception as exc:
            log.critical(
                "agent %s: its feed failed, stopping the worker: %r", self.spec.name, exc, exc_info=True
            )
            if self._loop is not None and not self._loop.is_closed():
                asyncio.run_coroutine_threadsafe(self._crash(exc), self._loop)
        finally:
            self._commit_done(wait=True)
            consumer.close()
            if self._seed_probe is not None:
                self._seed_probe.close()

    def _window(self) -> float:
        """How long to wait for the batch to fill: the batch window while the agent still works on
        batches it was handed (this one could not start before anyway, and a fuller batch costs less
        per event); nothing when the agent is idle, so that a lone event goes at once."""
        busy = self._handed > self._finished + self._commits.qsize()
        return self.window_s if busy else 0.0

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition this group never committed where the app's group left it (if it did)."""
        try:
            committed = consumer.committed(partitions, timeout=10)
            fresh = [TopicPartition(tp.topic, tp.partition) for tp in committed if tp.offset < 0]
            if fresh:
                if self._seed_probe is None:
                    self._seed_probe = make_consumer(
                        self._settings, self._seed_group, **{"enable.auto.commit": False}
                    )
                seeds = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in self._seed_probe.committed(fresh, timeout=10)
                    if tp.offset >= 0
                }
                if seeds:
                    for tp in partitions:
                        tp.offset = seeds.get((tp.topic, tp.partition), tp.offset)
                    log.info(
                        "agent %s: %d partition(s) new to group %s start where group %s left them: %s",
                        self.spec.name,
                        len(seeds),
                        self.group,
                        self._seed_group,
                        ", ".join(f"{t}/{p}@{o}" for (t, p), o in sorted(seeds.items())),
                    )
        except Exception as exc:  # the group's own offsets or the reset policy then decide, as without it
            log.warning(
                "agent %s: feed: offsets of group %s not looked up: %s", self.spec.name, self._seed_group, exc
            )
        if partitions:
            log.info(
                "agent %s: feed: assigned %s",
                self.spec.name,
                ", ".join(f"{tp.topic}/{tp.partition}" for tp in partitions),
            )
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before the group moves partitions, let the agent finish the batches it was handed and commit
        their offsets: the partitions' next owners start after them, and an event that is being
        retried alone is not run again by another member meanwhile."""
        self._rebalances += 1
        waiting = self._handed - self._finished
        if waiting and not self._stop.is_set():
            log.info(
                "agent %s: feed: the group rebalances; finishing %d batch(es) before releasing %d partition(s)",
                self.spec.name,
                waiting,
                len(partitions),
            )
        while self._finished < self._handed and not self._stop.is_set():
            self._commit_done(wait=True, block_s=IDLE_POLL_S)
        self._commit_done(wait=True)
        self.pending.forget(partitions)
        if partitions:
            log.info("agent %s: feed: released %d partition(s)", self.spec.name, len(partitions))

    def _read_again(self, consumer: Consumer, messages: list[Any]) -> None:
        """Drop ``messages``, read in a call during which the group rebalanced: some may be of
        partitions that another member owns now. Those this member still owns are read again from
        the first dropped offset (nothing was committed past it)."""
        firsts: dict[tuple[str, int], int] = {}
        for m in messages:
            here = (m.topic(), m.partition())
            firsts[here] = min(m.offset(), firsts.get(here, m.offset()))
        owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in firsts.items():
            if (topic, partition) not in owned:
                continue
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                # Assigned during the call and not fetched yet: its fetch starts at its committed
                # offset (or the earliest), which is not past the dropped messages.
                log.debug("agent %s: feed: %s/%d not rewound: %s", self.spec.name, topic, partition, exc)

    def _usable(self, msg: Any) -> bool:
        error = msg.error()
        if error is None:
            return True
        if error.fatal() or error.code() == KafkaError._FATAL:
            # The consumer can do nothing more (fenced by another member with its instance id, say):
            # the feed stops, and with it the worker, rather than leave the agent without events.
            raise KafkaException(KafkaError(error.code(), fatal_error_text(error), fatal=True))
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("agent %s: feed: %s", self.spec.name, error)
        return False

    def _hand_over(self, messages: list[Any]) -> bool:
        """Put the batch on the channel once the agent iterates it; False: stopped meanwhile."""
        assert self._loop is not None
        self._handed += 1
        batch = FeedBatch(self._handed, messages)
        future = asyncio.run_coroutine_threadsafe(self._put(batch), self._loop)
        while True:
            try:
                future.result(timeout=IDLE_POLL_S)
                return True
            except concurrent.futures.TimeoutError:
                self._commit_done()  # the agent finished a batch while this one waited for room
                if self._stop.is_set():
                    future.cancel()
                    return False

    async def _put(self, batch: FeedBatch) -> None:
        # Until the agent's stream iterates the channel, a put would reach no one (Faust signals no
        # subscription: this waits at most once per feed, at start).
        while not self.channel.subscriber_count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await self.channel.put(batch)  # type: ignore[arg-type]  # a plain value: the stream yields it as is

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if self.pending.answered(error, partitions, time.monotonic()):
            failed = error if error is not None else next((tp.error for tp in partitions if tp.error), None)
            log.warning(
                "agent %s: feed: an offset commit failed (%s); it is sent again in %.0fs",
                self.spec.name,
                failed.str() if failed is not None else "no reason given",
                COMMIT_RETRY_S,
            )

    def _commit_done(self, *, wait: bool = False, block_s: float = 0.0) -> None:
        """Commit the offsets of the batches the agent finished, and any whose commit failed
        (``wait``: for the broker's answer; ``block_s``: wait that long for the agent to finish one,
        if none is)."""
        consumer = self._consumer
        if consumer is None:
            return
        ends: dict[tuple[str, int], int] = {}
        while True:
            try:
                done = (
                    self._commits.get(timeout=block_s) if block_s and not ends else self._commits.get_nowait()
                )
            except queue.Empty:
                break
            self._finished += 1
            for tp in done:
                ends[(tp.topic, tp.partition)] = max(tp.offset, ends.get((tp.topic, tp.partition), -1))
        self.pending.add(ends)
        offsets = self.pending.to_send(time.monotonic(), force=wait)
        if not offsets:
            return
        try:
            if wait:
                answer = consumer.commit(offsets=offsets, asynchronous=False)
                self.pending.answered(None, answer or [], time.monotonic())
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # e.g. no longer a member after a rebalance: the next owner re-reads
            self.pending.answered(_as_error(exc), offsets, time.monotonic())
            log.info(
                "agent %s: feed: offsets not committed (%s); the events are read again", self.spec.name, exc
            )


def _as_error(exc: Exception) -> KafkaError:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return KafkaError(KafkaError._FAIL, str(exc))
