"""The circuit breaker: a remediation whose output makes the metric drift again loops through the
router and the remediate agent until the breaker opens after the limit; then the agent stops
acting and `vigil status` reports the open breaker as a critical problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.integration.drift_helpers import start_drift_worker, vigil
from tests.integration.workers import scalar, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_a_remediation_loop_opens_the_breaker_and_status_shows_it(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    aggregate = f"remediation-{unique}"
    policy = f"""
[[metric]]
source = "{unique}"
metric = "latency"
cooldown_seconds = 0
breaker_limit = 3
breaker_window_seconds = 3600
remediation = {{ action = "rollback", aggregatetype = "{aggregate}" }}
"""
    worker = start_drift_worker(
        stack, fresh_database, tmp_path, unique, policy,
        module="tests.integration.agentmods.drift_loop",
        extra_env={"VIGIL_TEST_LOOP_AGGREGATE": aggregate},
    )  # fmt: skip
    log = tmp_path / "worker.log"
    try:
        published = vigil(stack, fresh_database, "drift", "publish", "--source", unique, "--metric", "latency",
                          "--value", "900", "--severity", "critical")  # fmt: skip
        assert published.returncode == 0, published.stderr

        def breaker_open() -> bool:
            return scalar(fresh_database, "SELECT count(*) FROM vigil.drift_breakers WHERE open") == 1

        wait_until(breaker_open, 180, "the circuit breaker to open", worker, log)
        actions = "SELECT count(*) FROM vigil.outbox WHERE aggregatetype = %s"
        assert scalar(fresh_database, actions, aggregate) == 3  # the limit, then no more
        alerts = "SELECT count(*) FROM vigil.outbox WHERE aggregatetype = 'drift-alerts' AND type = 'circuit-breaker-open'"
        assert scalar(fresh_database, alerts) == 1

        status = vigil(stack, fresh_database, "status", "--json")
        report = json.loads(status.stdout)
        assert status.returncode == 1
        assert any("circuit breaker open for agent drift-remediate" in p for p in report["problems"]), report
        assert report["open_breakers"][0]["reason"].startswith("4 triggers")
    finally:
        stop(worker)
