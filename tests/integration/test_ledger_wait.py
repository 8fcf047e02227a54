"""A worker reads the ledger before its agents start: a replay at start is skipped from memory.

Like Kafka Streams restoring a state store before it processes, a worker's agents wait (up to
``VIGIL_LEDGER_WAIT_S``) until ``vigil.processed-events`` is read, so events processed before are
skipped without a Postgres round trip, and their handlers never run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.services.procs import free_port
from streams.settings import Settings
from tests.integration.workers import handler_calls, produce_events, scalar, start_worker, stop, wait_until

pytestmark = pytest.mark.integration


def _metric(port: int, name: str, agent: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("agent") == agent:
                return sample.value
    return -1.0


@pytest.mark.timeout(300)
def test_a_replay_at_start_is_skipped_by_the_ledger_without_running_a_handler(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    total = 2000
    topic = make_topic("orders", partitions=3)
    produce_events(stack, topic, [(f"evt-{n}", {"n": n}) for n in range(total)])
    calls = tmp_path / "calls.txt"
    env = {"VIGIL_TEST_CALLS_FILE": str(calls)}
    first_log = tmp_path / "first.log"
    first = start_worker(
        stack,
        fresh_database,
        topic=topic,
        app_id=unique,
        agent_name=unique,
        log_path=first_log,
        extra_env=env,
    )
    try:
        processed = lambda: scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events")  # noqa: E731
        wait_until(lambda: processed() >= total, 180, "the first worker's events", first, first_log)
    finally:
        stop(first)
    assert len(handler_calls(calls)) == total
    # A second deployment of the same agent on the same database, in a new consumer group: it reads
    # the topic from the beginning (a replay) right after it starts.
    port = free_port()
    second_log = tmp_path / "second.log"
    second = start_worker(
        stack,
        fresh_database,
        topic=topic,
        app_id=f"{unique}-again",
        agent_name=unique,
        log_path=second_log,
        extra_env={**env, "VIGIL_HTTP_PORT": str(port)},
    )
    try:
        consumed = lambda: _metric(port, "vigil_events_consumed_total", unique)  # noqa: E731
        wait_until(lambda: consumed() >= total, 180, "the replay to be consumed", second, second_log)
        skipped = _metric(port, "vigil_events_skipped_by_ledger_total", unique)
        duplicates = _metric(port, "vigil_events_duplicates_skipped_total", unique)
    finally:
        stop(second)
    assert skipped == duplicates == total, (
        "every replayed event skipped from memory, none claimed in Postgres"
    )
    assert sorted(len(attempts) for attempts in handler_calls(calls).values()) == [1] * total
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.processed_events") == total
    assert "ledger caught up" in second_log.read_text()
