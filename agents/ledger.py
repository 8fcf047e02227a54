"""The worker's table of processed events, kept from the compacted ``vigil.processed-events`` topic.

A fast path only: an id found here was committed in Postgres, so the event is skipped without a
database round trip. An id missing here (the table is stale, lost, or bounded) is checked by
Postgres, which stays the source of truth: the table can cause neither a duplicate nor a loss.
The table itself (:class:`streams.processed_table.ProcessedTable`, 128-bit digests packed in
preallocated arrays) is pure and lives in ``streams``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from agents.named_thread import name_os_thread
from streams.catalog import PROCESSED_EVENTS
from streams.ledger_records import installation_tail
from streams.processed_table import ProcessedTable

__all__ = ["LedgerReader", "ProcessedTable"]

log = logging.getLogger(__name__)

#: The reader's thread's name, in Python and in the OS (cut to 15 bytes there).
LEDGER_THREAD = "vigil-ledger-reader"


class LedgerReader(threading.Thread):
    """Reads ``vigil.processed-events`` into a :class:`ProcessedTable` (the newest records that the
    table can hold, within the retention), then follows it.

    Only records committed in this worker's own database count (the ``installation`` field that
    ends each value, :func:`streams.ledger_records.installation_tail`, is ``installation``): two
    deployments sharing a Kafka cluster, or a database restored from a backup and given a new id,
    never skip an event on the word of another database. Telling them apart costs a byte compare:
    no header is read, and nothing is decoded. Records naming no database (written before the
    field existed) are not trusted either: Postgres answers for them.
    """

    def __init__(
        self,
        consumer: Consumer,
        table: ProcessedTable,
        topic: str = PROCESSED_EVENTS,
        *,
        installation: str,
        retention_s: float | None = None,
    ) -> None:
        super().__init__(name=LEDGER_THREAD, daemon=True)
        self.consumer = consumer
        self.table = table
        self.topic = topic
        self.tail = installation_tail(installation)
        self.retention_s = retention_s
        self._halt = threading.Event()
        #: Set once every partition was read to its end (with ``enable.partition.eof``).
        self.caught_up = threading.Event()
        #: Set once nobody need wait for the reader any more: it caught up, or it stopped.
        self.settled = threading.Event()
        self.ignored = 0

    def _start_positions(self, partitions: Iterable[int]) -> list[TopicPartition]:
        """Where to start reading: records younger than the retention (older ones may be pruned from
        Postgres anyway, and the topic only grows: every key is unique). From the beginning when the
        broker cannot look offsets up by time. (:meth:`_floors` may move them later still.)"""
        beginning = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
        if self.retention_s is None:
            return beginning
        since_ms = int((time.time() - self.retention_s) * 1000)
        try:
            found = self.consumer.offsets_for_times(
                [TopicPartition(self.topic, tp.partition, since_ms) for tp in beginning], timeout=10
            )
        except KafkaException as exc:
            log.debug("ledger reader: offsets_for_times failed (%s); reading from the beginning", exc)
            return beginning
        return [
            tp
            if tp.error is None and tp.offset >= 0
            else TopicPartition(self.topic, tp.partition, OFFSET_END)
            for tp in found
        ]

    def run(self) -> None:
        name_os_thread(self.name)
        # This worker's own records come back here after its run_batch added their keys: they are
        # recognised by their key's bytes (ProcessedTable.is_echo) and skipped before their keys are
        # hashed again. Keys stay bytes: the table digests a ledger key's UTF-8 bytes.
        self.table.expect_echoes = True
        is_echo = self.table.is_echo
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=10)
            partitions = metadata.topics[self.topic].partitions if self.topic in metadata.topics else {}
            # Before the assignment: a fetch in flight would hold each request up to its wait.
            ends = self._ends(partitions)
            starts = no_earlier_than(self._start_positions(partitions), self._floors(ends))
            self.consumer.assign(starts)
            at_end = already_at_end(starts, ends)
            self._check_caught_up(at_end, len(partitions))
            while not self._halt.is_set():
                batch = self.consumer.consume(1000, timeout=0.5)
                if not self.caught_up.is_set():
                    reached_ends(batch, ends, at_end)
                keys: list[bytes] = []
                pruned: list[bytes] = []
                for msg in batch:
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            at_end.add(msg.partition() or 0)
                        else:
                            log.debug("ledger reader: %s", error)
                        continue
                    key = msg.key()
                    if key is None:
                        continue
                    value = msg.value()
                    if value is None:
                        # A tombstone: the row was pruned, the event may run again. Whichever
                        # database pruned it, forgetting a key only costs a Postgres check.
                        pruned.append(key)
                        continue
                    if is_echo(key):
                        continue
                    if not value.endswith(self.tail):
                        self.ignored += 1
                        continue
                    keys.append(key)
                # Adds before discards: a key recorded and pruned in one batch ends up gone; one
                # pruned and recorded again is dropped too, which only costs a Postgres check.
                if keys:
                    self.table.add_keys(keys)
                if pruned:
                    self.table.discard_keys(pruned)
                # Caught up only once this batch's keys are in the table, not at the end-of-partition
                # event itself (the batch it came in may still hold keys).
                self._check_caught_up(at_end, len(partitions))
        except Exception:  # the table is an accelerator: losing it costs speed, never correctness
            log.exception("ledger reader stopped; processed-event checks go to Postgres")
        finally:
            self.table.stop_expecting_echoes()
            self.settled.set()
            self.consumer.close()

    def _floors(self, ends: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """Where each partition's reading may start at the earliest: the table keeps at most its
        capacity of keys, the newest, so older records would only be read to be dropped (each
        partition gets its share; records of other databases make the table hold fewer)."""
        if not ends:
            return {}
        share = -(-self.table.capacity // len(ends))
        return {p: max(low, high - share) for p, (low, high) in ends.items()}

    def _ends(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """Each partition's low and high watermark now: catching up reads to the high one. Empty
        when the broker does not answer; then only the end-of-partition events tell."""
        ends: dict[int, tuple[int, int]] = {}
        try:
            for p in partitions:
                marks = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
                if marks is None:  # timed out
                    return {}
                ends[p] = (marks[0], marks[1])
        except KafkaException as exc:
            log.debug("ledger reader: watermarks not read (%s); waiting for end-of-partition events", exc)
            return {}
        return ends

    def _check_caught_up(self, at_end: set[int], partitions: int) -> None:
        if len(at_end) >= partitions and not self.caught_up.is_set():
            self.caught_up.set()
            self.settled.set()
            log.info(
                "ledger caught up: %d keys known, %d records of other databases ignored",
                len(self.table),
                self.ignored,
            )

    def stop(self) -> None:
        self._halt.set()


def no_earlier_than(starts: Iterable[TopicPartition], floors: Mapping[int, int]) -> list[TopicPartition]:
    """``starts``, each moved up to its partition's floor (if it has one) when it is before it."""
    moved: list[TopicPartition] = []
    for tp in starts:
        floor = floors.get(tp.partition)
        before = tp.offset == OFFSET_BEGINNING or 0 <= tp.offset < (floor or 0)
        moved.append(TopicPartition(tp.topic, tp.partition, floor) if floor is not None and before else tp)
    return moved


def already_at_end(starts: Iterable[TopicPartition], ends: Mapping[int, tuple[int, int]]) -> set[int]:
    """The partitions with nothing to read at start (``ends``: each one's low and high watermark):
    read from their end, from an offset at or past it, or from the beginning of an empty one."""
    done: set[int] = set()
    for tp in starts:
        low, high = ends.get(tp.partition, (-1, -1))
        if (
            tp.offset == OFFSET_END
            or (tp.offset == OFFSET_BEGINNING and 0 <= high <= low)
            or (tp.offset >= 0 and 0 <= high <= tp.offset)
        ):
            done.add(tp.partition)
    return done


def reached_ends(batch: Iterable[Message], ends: Mapping[int, tuple[int, int]], at_end: set[int]) -> None:
    """Add to ``at_end`` the partitions whose record just before their end at start is in ``batch``.
    Catching up needs no more: without this, it waits for the broker to hold one more fetch per
    partition (``fetch.wait.max.ms``) to hear that there is nothing after it. (A partition whose last
    record is never delivered, say a transaction marker, still ends by its end-of-partition event.)"""
    for msg in batch:
        partition = msg.partition()
        if partition is None or partition not in ends or msg.error() is not None:
            continue
        if (msg.offset() or 0) >= ends[partition][1] - 1:
            at_end.add(partition)
