"""Agents wait for the ledger of processed events before they start, but not forever."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, cast

import pytest

from agents.ledger import LedgerReader, ProcessedTable
from agents.worker import WorkerRuntime
from streams.settings import Settings


class _Reader:
    def __init__(self) -> None:
        self.settled = threading.Event()


def _runtime(reader: _Reader, wait_s: float) -> WorkerRuntime:
    settings = Settings(kafka_bootstrap="x:1", ledger_wait_s=wait_s)
    return WorkerRuntime(
        settings, cast(Any, None), cast(Any, None), ProcessedTable(), ledger=cast(LedgerReader, reader)
    )


def test_agents_start_once_the_ledger_is_read() -> None:
    reader = _Reader()
    threading.Timer(0.3, reader.settled.set).start()
    started = time.monotonic()
    asyncio.run(_runtime(reader, 30).ledger_read())
    assert 0.25 <= time.monotonic() - started < 5


def test_agents_start_anyway_after_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    asyncio.run(_runtime(_Reader(), 0.2).ledger_read())
    assert 0.15 <= time.monotonic() - started < 5
    assert "VIGIL_LEDGER_WAIT_S" in caplog.text


def test_no_wait_when_told_not_to_or_without_a_ledger() -> None:
    started = time.monotonic()
    asyncio.run(_runtime(_Reader(), 0).ledger_read())
    runtime = _runtime(_Reader(), 30)
    runtime.ledger = None
    asyncio.run(runtime.ledger_read())
    assert time.monotonic() - started < 1


def test_every_agent_awaits_one_wait_and_the_worker_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    runtime = _runtime(_Reader(), 0.2)

    async def six_agents() -> None:
        await asyncio.gather(*(runtime.ledger_read() for _ in range(6)))

    asyncio.run(six_agents())
    assert caplog.text.count("VIGIL_LEDGER_WAIT_S") == 1
