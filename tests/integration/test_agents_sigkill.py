"""kill -9 of a worker at random moments, many times, while a sink relays its outbox to an HTTP
server: every event takes effect once and reaches the server once. Its own file, so that the
test runner can put it on another process than the other exactly-once tests."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.catalog import outbox_topic
from streams.settings import Settings
from tests.integration.http_receiver import Receiver
from tests.integration.workers import (
    agent_group,
    assert_exactly_once,
    produce_events,
    rows,
    scalar,
    start_sink,
    start_worker,
    stop,
    wait_for_count,
    wait_group_caught_up,
    wait_until,
)

pytestmark = pytest.mark.integration

#: kill -9s per delivery: nine with the default (batch) delivery; four with Faust's, kept for
#: agents with concurrency > 1. Each kill costs a worker start and a session timeout (~16 s), and
#: the sink delivers ~150 rows/s: the two runs took 367 and 234 s of a 23-minute suite with 12 and
#: 6 kills of 20,000 events.
KILLS = {"batch": 9, "faust": 4}
#: Events per delivery: the kills land within the first ~7,000 (batch, 1 ms a handler) and ~1,000
#: (Faust's delivery, one event at a time: its remaining events took most of its 150 s in a suite).
TOTAL = {"batch": 12_000, "faust": 6000}


@pytest.mark.timeout(900)
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    stack: Settings,
    fresh_database: str,
    make_topic: Callable[..., str],
    unique: str,
    tmp_path: Path,
    receiver: Receiver,
    delivery: str,
) -> None:
    topic = make_topic("crashy", partitions=3)
    total = TOTAL[delivery]
    produce_events(stack, topic, [(f"evt-{n}", {"n": n, "touch_db": n % 2 == 0}) for n in range(total)])
    log = tmp_path / "worker.log"
    rng = random.Random(20261121)
    count = lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
    progress = []
    # Slow each event a little so that every kill lands while work is in flight.
    aggregate = f"effects-{unique}"
    slow = {"VIGIL_TEST_SLOW_MS": "1", "VIGIL_TEST_AGGREGATE": aggregate, "VIGIL_DELIVERY": delivery}
    # The sink runs throughout: outbox rows relayed twice by a killed worker must be delivered once.
    sink = start_sink(
        stack, fresh_database, receiver.url, outbox_topic(aggregate), f"{unique}-sink", tmp_path
    )
    for _ in range(KILLS[delivery]):
        before = count()
        worker = start_worker(
            stack, fresh_database, topic=topic, app_id=unique, agent_name=unique, log_path=log, extra_env=slow
        )
        # Kill at a random moment once this worker is processing (not while it still starts up).
        wait_until(lambda: count() > before, 120, "progress", worker, log)  # noqa: B023
        time.sleep(rng.uniform(0.0, 1.5))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        progress.append(count())
    assert progress[-1] < total, "the kills should land before the work is done"
    worker = start_worker(
        stack,
        fresh_database,
        topic=topic,
        app_id=unique,
        agent_name=unique,
        log_path=log,
        extra_env={"VIGIL_TEST_AGGREGATE": aggregate, "VIGIL_DELIVERY": delivery},
    )
    delivered = lambda: scalar(  # noqa: E731
        fresh_database, "SELECT count(*) FROM vigil.deliveries WHERE status = 'delivered'"
    )
    try:
        wait_for_count(count, total, f"{total} processed events", worker, log, timeout=360)
        wait_until(lambda: delivered() >= total, 180, f"{total} deliveries", sink, tmp_path / "sink.log")
        wait_group_caught_up(stack, agent_group(unique, unique, delivery), topic)
        wait_group_caught_up(stack, f"{unique}-sink", outbox_topic(aggregate))
    finally:
        stop(worker)
        stop(sink)
    assert_exactly_once(fresh_database, unique, total)
    keys = receiver.keys()
    assert set(keys) == {str(row) for row in rows(fresh_database, "SELECT id FROM vigil.outbox")}
    assert len(keys) == total and max(keys.values()) == 1, "each outbox event reached the HTTP server once"
    assert progress == sorted(progress) and progress[0] < progress[-1], progress
