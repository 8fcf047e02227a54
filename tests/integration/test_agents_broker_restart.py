"""The broker restarts under a running worker: no event is lost or run twice, and the agent's group
commits the end of its topic afterwards, with no new event to carry the commit.

A stack of its own in a throwaway ``VIGIL_HOME`` (the session's broker stays up for the others).
Offsets are committed at most every 3 s here, so batches finished just before the broker stopped
still have their offsets to commit. What the worker's log showed when this test was written: those
commits failed (``Waiting for coordinator``, then ``Unknown member``: the group lost its members
while the broker was away), the feeds released their partitions and were assigned them again, read
the uncommitted events again, skipped them as processed, and committed the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ops import migrations
from ops.services import stack as stack_mod
from streams.catalog import TopicSpec
from streams.settings import load_settings
from streams.topics import ensure_topics
from tests.integration.workers import (
    agent_group,
    assert_exactly_once,
    produce_events,
    scalar,
    start_worker,
    stop,
    wait_group_caught_up,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL = 3000


@pytest.mark.timeout(480)
def test_a_broker_restart_mid_run_loses_no_event_runs_none_twice_and_commits_the_end(
    throwaway_home: Path, tmp_path: Path
) -> None:
    settings = stack_mod.up(load_settings(home=throwaway_home))
    database_url = settings.require_database_url()
    migrations.upgrade(database_url)
    topic = "restart.events"
    ensure_topics(settings, [TopicSpec(topic, "broker restart test", 2, {})])
    produce_events(settings, topic, [(f"evt-{n}", {"n": n}) for n in range(TOTAL)])
    count = lambda: scalar(database_url, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
    log = tmp_path / "worker.log"
    worker = start_worker(
        settings,
        database_url,
        topic=topic,
        app_id="restart",
        agent_name="restart",
        log_path=log,
        extra_env={"VIGIL_TEST_SLOW_MS": "2", "VIGIL_COMMIT_INTERVAL_MS": "3000"},
    )
    kafka = stack_mod.embedded_kafka(settings)
    try:
        wait_until(lambda: count() > 300, 120, "the first events", worker, log)
        kafka.stop()
        stopped_at = count()
        time.sleep(5)
        assert worker.poll() is None, "the worker must wait for the broker, not exit"
        kafka.start()
        wait_until(lambda: count() >= TOTAL, 240, f"{TOTAL} processed events", worker, log)
        wait_group_caught_up(settings, agent_group("restart", "restart"), topic, timeout=90)
    finally:
        stop(worker)
    assert stopped_at < TOTAL, "the broker stopped after the last event: nothing was tested"
    assert_exactly_once(database_url, "restart", TOTAL)
