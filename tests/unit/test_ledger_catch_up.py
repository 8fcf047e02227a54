"""When the ledger reader has caught up: from the watermarks read at start, without waiting for the
broker to hold a fetch per partition to tell there is nothing more (pure: no broker)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

from agents.ledger import already_at_end, reached_ends

TOPIC = "vigil.processed-events"


@dataclass
class FakeMessage:
    """The three calls ``reached_ends`` makes of a confluent-kafka ``Message``."""

    _partition: int
    _offset: int
    _error: KafkaError | None = None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> KafkaError | None:
        return self._error


def test_partitions_with_nothing_to_read_are_at_their_end_before_any_fetch() -> None:
    starts = [
        TopicPartition(TOPIC, 0, OFFSET_END),  # no record within the retention: read from the end
        TopicPartition(TOPIC, 1, 40),  # from an offset that is the end
        TopicPartition(TOPIC, 2, 45),  # past it (the end was read after the offset was looked up)
        TopicPartition(TOPIC, 3, OFFSET_BEGINNING),  # from the beginning of an empty partition
        TopicPartition(TOPIC, 4, OFFSET_BEGINNING),  # from the beginning of one with records
        TopicPartition(TOPIC, 5, 10),  # from an offset before the end
        TopicPartition(TOPIC, 6, 10),  # its watermarks were not read
    ]
    ends = {0: (0, 50), 1: (0, 40), 2: (0, 40), 3: (7, 7), 4: (0, 3), 5: (0, 40)}
    assert already_at_end(starts, ends) == {0, 1, 2, 3}


def test_no_watermarks_means_only_end_of_partition_events_tell() -> None:
    starts = [TopicPartition(TOPIC, 0, 5), TopicPartition(TOPIC, 1, OFFSET_BEGINNING)]
    assert already_at_end(starts, {}) == set()
    at_end: set[int] = set()
    reached_ends([FakeMessage(0, 99), FakeMessage(1, 99)], {}, at_end)
    assert at_end == set()


def test_a_partition_is_at_its_end_once_its_last_record_at_start_is_read() -> None:
    ends = {0: (0, 10), 1: (0, 20), 2: (0, 30)}
    at_end: set[int] = set()
    reached_ends([FakeMessage(0, 8), FakeMessage(1, 19), FakeMessage(2, 5)], ends, at_end)
    assert at_end == {1}
    # A record written after the start (past the end read then) counts as well.
    reached_ends([FakeMessage(0, 9), FakeMessage(2, 31)], ends, at_end)
    assert at_end == {0, 1, 2}


def test_an_error_event_is_not_a_record() -> None:
    at_end: set[int] = set()
    eof = KafkaError(KafkaError._PARTITION_EOF)
    reached_ends([FakeMessage(0, 9, eof)], {0: (0, 10)}, at_end)
    assert at_end == set()


def test_reading_starts_no_earlier_than_the_table_can_hold() -> None:
    from agents.ledger import no_earlier_than

    starts = [
        TopicPartition(TOPIC, 0, OFFSET_BEGINNING),
        TopicPartition(TOPIC, 1, 100),  # the retention's start, before the floor
        TopicPartition(TOPIC, 2, 900),  # after it
        TopicPartition(TOPIC, 3, OFFSET_END),
        TopicPartition(TOPIC, 4, OFFSET_BEGINNING),  # no floor: its watermarks were not read
    ]
    moved = no_earlier_than(starts, {0: 500, 1: 500, 2: 500, 3: 500})
    assert [(tp.partition, tp.offset) for tp in moved] == [
        (0, 500),
        (1, 500),
        (2, 900),
        (3, OFFSET_END),
        (4, OFFSET_BEGINNING),
    ]
