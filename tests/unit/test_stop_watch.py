"""A stop that takes long is logged with every thread's stack and the loop's pending tasks
(agents.stop_watch): real threads and a real loop, no I/O."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from agents.stop_watch import StopWatch, task_stacks, thread_stacks


def _holds_the_stop(release: threading.Event) -> None:
    release.wait(5)  # a consumer's close waiting for the broker, say


def test_thread_stacks_name_each_thread_and_where_it_is() -> None:
    release = threading.Event()
    holder = threading.Thread(target=_holds_the_stop, args=(release,), name="feed-of-orders")
    holder.start()
    try:
        text = thread_stacks(skip=threading.get_ident())
    finally:
        release.set()
        holder.join()
    assert "[feed-of-orders]" in text and "_holds_the_stop" in text
    assert "test_thread_stacks_name_each_thread" not in text  # the caller's own thread is left out


async def _innermost() -> None:
    await asyncio.sleep(5)


async def _outer() -> None:
    await _innermost()


def test_task_stacks_follow_each_pending_task_down_its_awaits() -> None:
    async def main() -> str:
        task = asyncio.create_task(_outer(), name="agent-orders")
        await asyncio.sleep(0.01)
        text = await asyncio.to_thread(task_stacks, asyncio.get_running_loop())
        task.cancel()
        return text

    text = asyncio.run(main())
    [line] = [line for line in text.splitlines() if "[agent-orders]" in line]
    assert line.index("_outer") < line.index("_innermost") < line.index("sleep")


def test_a_long_stop_is_reported_after_the_delay_then_every_period(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agents.stop_watch")
    release = threading.Event()
    holder = threading.Thread(target=_holds_the_stop, args=(release,), name="vigil-ledger")
    holder.start()
    watch = StopWatch(report_after_s=0.2, report_every_s=0.2)
    try:
        watch.arm("on SIGTERM")
        watch.arm("the app stopped")  # armed once: the first reason stays
        deadline = time.monotonic() + 5
        while watch.reports < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watch.disarm()  # a watch left running would log (and allocate) for the rest of the process
        release.set()
        holder.join()
    assert watch.reports >= 2
    first = caplog.records[0].getMessage()
    assert "stopping for 0 s (on SIGTERM)" in first
    assert "[vigil-ledger]" in first and "_holds_the_stop" in first


def test_no_report_when_the_stop_ends_in_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agents.stop_watch")
    watch = StopWatch(report_after_s=5)
    watch.arm("on SIGTERM")
    time.sleep(0.05)
    watch.disarm()
    assert watch.reports == 0 and not caplog.records
    assert watch._thread is not None and not watch._thread.is_alive()
