"""``vigil worker`` stopped by SIGTERM: it exits cleanly, soon, with its group's offsets committed."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.integration.workers import (
    agent_group,
    exit_code,
    group_caught_up,
    produce_events,
    scalar,
    start_worker,
    stop,
    wait_for_count,
)

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_sigterm_stops_the_worker_cleanly_with_its_offsets_committed(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("orders", partitions=3)
    produce_events(stack, topic, [(f"evt-{n}", {"n": n}) for n in range(60)])
    log = tmp_path / "worker.log"
    worker = start_worker(stack, fresh_database, topic=topic, app_id=unique, agent_name=unique, log_path=log)
    try:
        count = lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
        wait_for_count(count, 60, "60 processed events", worker, log)
        worker.send_signal(signal.SIGTERM)
        # (Vigil's loop settles for a tenth of a second after a stop, not mode's whole second.)
        assert exit_code(worker, log, 30) == 0, log.read_text()[-3000:]
    finally:
        stop(worker)
    # The stop committed what was processed: a next worker would read none of it again.
    assert group_caught_up(stack, agent_group(unique, unique), topic)
    text = log.read_text()
    assert "Task was destroyed but it is pending" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
