"""Static group membership (``VIGIL_GROUP_INSTANCE_ID``): a worker restarted after kill -9 with the
same id takes its partitions back at once, not after the session timeout; a second worker started
with an id already in use fences the first, which stops with an error naming the setting."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.integration.workers import (
    assert_exactly_once,
    produce_events,
    scalar,
    start_worker,
    stop,
    wait_for_count,
    wait_until,
)

pytestmark = pytest.mark.integration

#: Long enough that a restart which waited for the killed worker's session could not pass in time.
SESSION_TIMEOUT_MS = 60_000


def _worker(
    stack: Settings, database: str, topic: str, unique: str, log: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """A worker of app and agent ``unique`` on ``topic`` (every worker here is the same but for its log)."""
    return start_worker(
        stack, database, topic=topic, app_id=unique, agent_name=unique, log_path=log, extra_env=env
    )


def _events(first: int, n: int) -> list[tuple[str, dict[str, object]]]:
    return [(f"evt-{i}", {"n": i}) for i in range(first, first + n)]


@pytest.mark.timeout(180)
def test_a_worker_restarted_with_its_instance_id_goes_on_without_waiting_for_the_session_timeout(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("orders", partitions=3)
    env = {"VIGIL_GROUP_INSTANCE_ID": "worker-a", "VIGIL_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}
    count = lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
    log = tmp_path / "worker.log"
    produce_events(stack, topic, _events(0, 30))
    first = _worker(stack, fresh_database, topic, unique, log, env)
    try:
        wait_for_count(count, 30, "30 processed events", first, log)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop(first)
    produce_events(stack, topic, _events(30, 30))
    second = _worker(stack, fresh_database, topic, unique, log, env)
    try:
        # Dynamic membership would hold every partition until the killed worker's session expired
        # (60 s after its last heartbeat); the same instance ids take them back when they join.
        wait_for_count(count, 60, "the 30 events produced after the kill", second, log, timeout=40)
    finally:
        stop(second)
    assert_exactly_once(fresh_database, unique, 60)


@pytest.mark.timeout(180)
def test_a_second_worker_with_the_same_instance_id_fences_the_first_which_stops_naming_the_setting(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    topic = make_topic("orders", partitions=3)
    env = {"VIGIL_GROUP_INSTANCE_ID": "worker-a"}
    count = lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
    produce_events(stack, topic, _events(0, 30))
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _worker(stack, fresh_database, topic, unique, first_log, env)
    second = None
    try:
        wait_for_count(count, 30, "30 processed events", first, first_log)
        second = _worker(stack, fresh_database, topic, unique, second_log, env)
        wait_until(lambda: first.poll() is not None, 90, "the fenced worker to stop", first, first_log)
        assert first.returncode != 0
        assert "same VIGIL_GROUP_INSTANCE_ID" in first_log.read_text(), first_log.read_text()[-3000:]
        # The newer worker holds the partitions and goes on.
        produce_events(stack, topic, _events(30, 30))
        wait_for_count(count, 60, "the events produced after the fencing", second, second_log)
    finally:
        stop(first)
        if second is not None:
            stop(second)
    assert_exactly_once(fresh_database, unique, 60)
