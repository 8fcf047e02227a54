"""A handler that blocks the event loop is named in the worker's log while it blocks, not only after."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.loop_watch import STILL_S
from streams.settings import Settings
from tests.integration.workers import produce_events, scalar, start_worker, stop, wait_for_count

pytestmark = pytest.mark.integration

#: Seconds the handler blocks: long enough for the report made while the loop stands still.
BLOCK_S = STILL_S + 4


@pytest.mark.timeout(180)
def test_a_handler_blocking_the_loop_is_logged_with_its_line_while_it_blocks(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("orders", partitions=1)
    log = tmp_path / "worker.log"
    worker = start_worker(stack, fresh_database, topic=topic, app_id=unique, agent_name=unique, log_path=log)
    try:
        # Started: an event processed, and the worker's tasks running (the HTTP task logs its port
        # after the runtime's task, which starts the loop watch).
        produce_events(stack, topic, [("evt-0", {"n": 0})])
        # The agent's own business rows (committed with each event's unit of work).
        count = lambda: scalar(fresh_database, "SELECT count(*) FROM public.effects_core")  # noqa: E731
        wait_for_count(count, 1, "the first event processed", worker, log)
        deadline = time.monotonic() + 60
        while "HTTP ingest on port" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        produce_events(stack, topic, [("evt-1", {"n": 1, "block_s": BLOCK_S})])
        deadline = time.monotonic() + 90
        while "and still does" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        # Reported while it still blocked: the event's row is not there yet.
        assert count() == 1
        text = log.read_text(errors="replace")
        report = text[text.index("the event loop has stood still for") :][:20000]
        assert "recorder.py" in report and 'time.sleep(float(value["block_s"]))' in report, report
        # Once the handler returns, the event is processed, once, and the stall is logged as usual.
        wait_for_count(count, 2, "the blocked event's business row", worker, log)
        assert scalar(fresh_database, "SELECT count(*) FROM public.effects_core WHERE n = 1") == 1
        assert "the event loop stood still for" in log.read_text(errors="replace")
    finally:
        stop(worker)
