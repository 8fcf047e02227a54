"""The worker's processed-events table, read back from a real topic."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agents.ledger import LedgerReader, ProcessedTable
from streams.kafka import make_consumer, make_producer
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
    for n in range(50):
        producer.produce(topic, key=f"agent/old-{n}".encode(), value=b"x", timestamp=ten_days_ago + n)
    for n in range(50):
        producer.produce(topic, key=f"agent/new-{n}".encode(), value=b"x", timestamp=now_ms + n)
    assert producer.flush(15) == 0

    table = ProcessedTable()
    reader = LedgerReader(
        make_consumer(stack, f"{unique}-ledger", **{"enable.auto.commit": False}),
        table,
        topic,
        retention_s=7 * 86_400,
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(table.known("agent", f"new-{n}") for n in range(50)):
            time.sleep(0.2)
    finally:
        reader.stop()
        reader.join(15)
    assert all(table.known("agent", f"new-{n}") for n in range(50))
    assert not any(table.known("agent", f"old-{n}") for n in range(50)), "records older than the retention"


def test_table_is_bounded() -> None:
    table = ProcessedTable(capacity=3)
    table.add("a", ["1", "2", "3", "4"])
    assert not table.known("a", "1") and table.known("a", "4") and len(table) == 3
