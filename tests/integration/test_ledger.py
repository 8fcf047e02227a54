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
    reader = LedgerReader(
        make_consumer(
            stack, f"{unique}-ledger", **{"enable.auto.commit": False, "enable.partition.eof": True}
        ),
        table,
        topic,
        installation="db-a",
        retention_s=7 * 86_400,
    )
    reader.start()
    try:
        assert reader.caught_up.wait(60), "the reader reached the end of every partition"
    finally:
        reader.stop()
        reader.join(15)
    assert all(table.known("agent", f"new-{n}") for n in range(50))
    assert not any(table.known("agent", f"old-{n}") for n in range(50)), "records older than the retention"
    assert not any(table.known("agent", f"theirs-{n}") for n in range(50)), "another database's records"
    assert not any(table.known("agent", f"unnamed-{n}") for n in range(50)), "records naming no database"
    assert reader.ignored == 100
