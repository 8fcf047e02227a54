"""Repeated failures: an agent whose runs fail 3 times in a row raises one critical alert and its
next success resolves it; another agent's failures do not count towards it, and that agent's own
threshold (5) is respected."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.services.procs import free_port
from streams.settings import Settings
from streams.watch import FAILURES
from tests.integration.watch_helpers import (
    alert_status,
    published_alerts,
    routed,
    start_watch_worker,
)
from tests.integration.workers import produce_events, scalar, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_three_failures_in_a_row_raise_one_alert_and_a_success_resolves_it(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    a, b = f"{unique}-a", f"{unique}-b"
    worker = start_watch_worker(
        stack,
        fresh_database,
        tmp_path,
        unique,
        port=free_port(),
        module="tests.integration.agentmods.flaky",
        extra_env={"VIGIL_TEST_TOPIC": unique, "VIGIL_TEST_AGENT": unique},
    )
    log = tmp_path / "worker.log"

    def runs(agent: str, status: str) -> int:
        sql = "SELECT count(*) FROM vigil.runs WHERE agent = %s AND status = %s"
        return scalar(fresh_database, sql, agent, status)

    def send(agent_topic: str, first: int, count: int, *, fail: bool) -> None:
        events = [(f"{agent_topic}-{n}", {"n": n, "fail": fail}) for n in range(first, first + count)]
        produce_events(stack, agent_topic, events)

    try:
        send(f"{unique}.a", 0, 2, fail=True)
        send(f"{unique}.b", 0, 4, fail=True)
        wait_until(
            lambda: runs(a, "failed") == 2 and runs(b, "failed") == 4, 180, "six failed runs", worker, log
        )
        send(f"{unique}.a", 2, 1, fail=True)  # the third failure of a in a row
        wait_until(lambda: alert_status(fresh_database, FAILURES, a) == "open", 60, "a's alert", worker, log)
        assert alert_status(fresh_database, FAILURES, b) is None  # 4 < its own threshold of 5
        wait_until(lambda: routed(fresh_database, FAILURES, a, "critical") == 1, 60, "a's alert routed")

        send(f"{unique}.a", 3, 1, fail=True)  # a fourth failure: still the same alert
        wait_until(lambda: runs(a, "failed") == 4, 60, "a's fourth failure", worker, log)
        send(f"{unique}.a", 4, 1, fail=False)
        wait_until(lambda: alert_status(fresh_database, FAILURES, a) == "resolved", 60, "the resolution")
        wait_until(lambda: routed(fresh_database, FAILURES, a, "resolved") == 1, 60, "the resolution routed")
        wait_until(
            lambda: published_alerts(stack, fresh_database, FAILURES, a) == ["critical", "resolved"],
            30,
            "one critical and one resolved on drift.events",
        )
        assert routed(fresh_database, FAILURES, a, "critical") == 1
        assert alert_status(fresh_database, FAILURES, b) is None
    finally:
        stop(worker)
