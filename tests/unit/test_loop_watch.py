"""The event loop standing still is logged with where it stood (agents.loop_watch): a real loop, no I/O."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from agents.loop_watch import LoopWatch


def _blocks_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # a synchronous call inside a handler, say


async def _run(watch: LoopWatch, body_s: float, block_s: float | None) -> None:
    watch.start()
    try:
        await asyncio.sleep(body_s / 2)
        if block_s is not None:
            _blocks_the_loop(block_s)
        await asyncio.sleep(body_s / 2)
    finally:
        watch.stop()


def test_a_blocked_loop_is_logged_with_how_long_and_where(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agents.loop_watch")

    async def main() -> LoopWatch:
        watch = LoopWatch(asyncio.get_running_loop(), stall_ms=50, beat_s=0.01)
        await _run(watch, 0.3, 0.4)
        return watch

    watch = asyncio.run(main())
    assert watch.stalls == 1
    [record] = [r for r in caplog.records if r.name == "agents.loop_watch"]
    message = record.getMessage()
    assert "_blocks_the_loop" in message and "time.sleep(seconds)" in message
    stood_ms = float(message.split("stood still for ")[1].split(" ms")[0])
    assert 300 <= stood_ms <= 1000


def test_a_loop_stuck_in_c_code_is_logged_with_where_the_other_threads_were(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="agents.loop_watch")
    release = threading.Event()

    def _other_threads_work() -> None:
        release.wait(5)

    other = threading.Thread(target=_other_threads_work, name="busy-neighbour")
    other.start()

    async def main() -> LoopWatch:
        loop = asyncio.get_running_loop()
        watch = LoopWatch(loop, stall_ms=50, beat_s=0.01)
        watch.start()
        try:
            await asyncio.sleep(0.5)  # the watch learns where the loop's thread waits when idle
            loop.call_soon(time.sleep, 0.4)  # a C function, called by the loop: no Python frame
            await asyncio.sleep(0.6)
        finally:
            watch.stop()
        return watch

    try:
        watch = asyncio.run(main())
    finally:
        release.set()
        other.join()
    assert watch.stalls == 1
    [record] = [r for r in caplog.records if r.name == "agents.loop_watch"]
    message = record.getMessage()
    assert "ran no Python code of its own" in message
    assert "[busy-neighbour]" in message and "_other_threads_work" in message
    assert "and the loop's thread in (innermost last):" in message  # shown too: the depth is a heuristic


def test_a_loop_that_keeps_answering_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agents.loop_watch")

    async def main() -> LoopWatch:
        watch = LoopWatch(asyncio.get_running_loop(), stall_ms=200, beat_s=0.01)
        await _run(watch, 0.3, None)
        return watch

    assert asyncio.run(main()).stalls == 0
    assert not [r for r in caplog.records if r.name == "agents.loop_watch"]


def test_a_closed_loop_ends_the_watch() -> None:
    loop = asyncio.new_event_loop()
    watch = LoopWatch(loop, stall_ms=50, beat_s=0.01)
    loop.run_until_complete(asyncio.sleep(0))
    watch.start()
    loop.close()
    assert watch._thread is not None
    watch._thread.join(2)
    assert not watch._thread.is_alive()


def test_a_loop_that_stays_stuck_is_logged_while_it_stands(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agents.loop_watch")

    async def main() -> LoopWatch:
        watch = LoopWatch(asyncio.get_running_loop(), stall_ms=50, beat_s=0.01, still_s=0.2)
        await _run(watch, 0.2, 0.7)
        return watch

    watch = asyncio.run(main())
    assert watch.still_reports >= 2 and watch.stalls == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "agents.loop_watch"]
    assert messages[0].startswith("the event loop has stood still for 0 s and still does")
    assert "_blocks_the_loop" in messages[0]  # where it stands, while it stands
    assert messages[-1].startswith("the event loop stood still for")
