"""The worker's table of processed events, kept from the compacted ``vigil.processed-events`` topic.

A fast path only: an id found here was committed in Postgres, so the event is skipped without a
database round trip. An id missing here (the table is stale, lost, or bounded) is checked by
Postgres, which stays the source of truth: the table can cause neither a duplicate nor a loss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from streams.catalog import PROCESSED_EVENTS

log = logging.getLogger(__name__)


class ProcessedTable:
    """A bounded set of ``<agent>/<event_id>`` keys, least recently added dropped first."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, agent: str, event_ids: Iterable[str]) -> None:
        with self._lock:
            for event_id in event_ids:
                self._add(f"{agent}/{event_id}")

    def add_keys(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._add(key)

    def _add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def known(self, agent: str, event_id: str) -> bool:
        return f"{agent}/{event_id}" in self._keys


class LedgerReader(threading.Thread):
    """Reads ``vigil.processed-events`` from the beginning into a :class:`ProcessedTable`, then follows it."""

    def __init__(
        self,
        consumer: Consumer,
        table: ProcessedTable,
        topic: str = PROCESSED_EVENTS,
        *,
        retention_s: float | None = None,
    ) -> None:
        super().__init__(name="vigil-ledger-reader", daemon=True)
        self.consumer = consumer
        self.table = table
        self.topic = topic
        self.retention_s = retention_s
        self._halt = threading.Event()

    def _start_positions(self, partitions: Iterable[int]) -> list[TopicPartition]:
        """Where to start reading: records younger than the retention (older ones may be pruned from
        Postgres anyway, and the topic only grows: every key is unique). From the beginning when the
        broker cannot look offsets up by time."""
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
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=10)
            partitions = metadata.topics[self.topic].partitions if self.topic in metadata.topics else {}
            self.consumer.assign(self._start_positions(partitions))
            while not self._halt.is_set():
                batch = self.consumer.consume(1000, timeout=0.5)
                keys = []
                for msg in batch:
                    error = msg.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.debug("ledger reader: %s", error)
                        continue
                    key = msg.key()
                    if key is not None and msg.value() is not None:
                        keys.append(key.decode("utf-8", errors="replace"))
                if keys:
                    self.table.add_keys(keys)
        except Exception:  # the table is an accelerator: losing it costs speed, never correctness
            log.exception("ledger reader stopped; processed-event checks go to Postgres")
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
