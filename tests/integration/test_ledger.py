"""The worker's processed-events table, read back from a real topic."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agents.ledger import LedgerReader, ProcessedTable
from streams.kafka import make_consumer, make_producer
from streams.ledger_records import installation_tail
from streams.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_reader_loads_records_younger_than_the_retention(
    stack: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("processed", partitions=2)
    producer = make_producer(stack)
    now_ms = int(time.time() * 1000)
    ten_days_ago = now_ms - 10 * 86_400_000
    # A value ends with the database's id (ProcessedEvent's last field): what the reader compares.
    ours = b"x" + installation_tail("db-a")
    for n in range(50):
        producer.produce(topic, key=f"agent/old-{n}".encode(), value=ours, timestamp=ten_days_ago + n)
    for n in range(50):
        producer.produce(topic, key=f"agent/new-{n}".encode(), value=ours, timestamp=now_ms + n)
        # the same agent and event in another database sharing the cluster, and a record naming none
        producer.produce(topic, key=f"agent/theirs-{n}".encode(), value=b"x" + installation_tail("db-b"))
        producer.produce(topic, key=f"agent/unnamed-{n}".encode(), value=b"x")
    assert producer.flush(15) == 0

    table = ProcessedTable()
    reader = _read_until_caught_up(stack, topic, f"{unique}-ledger", table)
    assert all(table.known("agent", f"new-{n}") for n in range(50))
    assert not any(table.known("agent", f"old-{n}") for n in range(50)), "records older than the retention"
    assert not any(table.known("agent", f"theirs-{n}") for n in range(50)), "another database's records"
    assert not any(table.known("agent", f"unnamed-{n}") for n in range(50)), "records naming no database"
    assert reader.ignored == 100


@pytest.mark.timeout(120)
def test_reader_reads_no_more_than_its_table_holds_and_is_caught_up_when_the_topic_is_read(
    stack: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("processed", partitions=2)
    producer = make_producer(stack)
    ours = b"x" + installation_tail("db-a")
    for n in range(400):
        producer.produce(topic, key=f"agent/e-{n}".encode(), value=ours, partition=n % 2)
    assert producer.flush(15) == 0

    def read(capacity: int, *, eof: bool = True) -> ProcessedTable:
        table = ProcessedTable(capacity)
        _read_until_caught_up(stack, topic, f"{unique}-ledger-{capacity}", table, eof=eof)
        return table

    # A table of 100 keys: the newest 50 records of each partition are read, no older one.
    table = read(100)
    assert len(table) == 100
    assert all(table.known("agent", f"e-{n}") for n in range(300, 400))
    assert not any(table.known("agent", f"e-{n}") for n in range(300))
    # A table of 1,000 reads all 400. It is caught up once the last record at start is read, by the
    # watermarks read then: no end-of-partition event is needed (none comes here), so the broker's
    # fetch wait, held once more per partition to tell that nothing follows, is not waited for.
    table = read(1000, eof=False)
    assert len(table) == 400


def _read_until_caught_up(
    stack: Settings, topic: str, group: str, table: ProcessedTable, *, eof: bool = True
) -> LedgerReader:
    """A reader of database ``db-a``'s records (a week's retention) run until it has caught up."""
    consumer = make_consumer(stack, group, **{"enable.auto.commit": False, "enable.partition.eof": eof})
    reader = LedgerReader(consumer, table, topic, installation="db-a", retention_s=7 * 86_400)
    reader.start()
    try:
        assert reader.caught_up.wait(60), "the reader reached the end of every partition"
    finally:
        reader.stop()
        reader.join(15)
    return reader
