"""`vigil heartbeat remove`: a decommissioned job's heartbeat is removed and its open absence alert
resolved once (by the command, not again by the monitor), and it alerts no more."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.services.procs import free_port
from streams.settings import Settings
from streams.watch import ABSENCE
from tests.integration.drift_helpers import vigil
from tests.integration.watch_helpers import alert_status, published_alerts, routed, start_watch_worker
from tests.integration.workers import rows, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_removing_an_overdue_heartbeat_resolves_its_alert_once(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    name = f"{unique}-retired-job"
    worker = start_watch_worker(stack, fresh_database, tmp_path, unique, port=free_port())
    log = tmp_path / "worker.log"
    try:
        declared = vigil(stack, fresh_database, "heartbeat", "expect", name, "--every", "1s", "--grace", "1s")
        assert declared.returncode == 0, declared.stderr
        wait_until(
            lambda: alert_status(fresh_database, ABSENCE, name) == "open", 120, "the alert", worker, log
        )
        wait_until(lambda: routed(fresh_database, ABSENCE, name, "critical") == 1, 60, "the alert routed")

        removed = vigil(stack, fresh_database, "heartbeat", "remove", name)
        assert removed.returncode == 0, removed.stderr
        assert "removed" in removed.stdout and "/resolved" in removed.stdout, removed.stdout
        assert alert_status(fresh_database, ABSENCE, name) == "resolved"
        assert rows(fresh_database, "SELECT name FROM vigil.heartbeats WHERE name = %s", name) == []

        wait_until(
            lambda: routed(fresh_database, ABSENCE, name, "resolved") == 1, 60, "the resolution routed"
        )
        # The monitor went on checking every 0.3 s meanwhile: no second resolution, no new alert.
        assert published_alerts(stack, fresh_database, ABSENCE, name) == ["critical", "resolved"]
        assert alert_status(fresh_database, ABSENCE, name) == "resolved"

        again = vigil(stack, fresh_database, "heartbeat", "remove", name)
        assert again.returncode != 0 and "no heartbeat named" in again.stderr, again.stderr
        listed = vigil(stack, fresh_database, "heartbeat", "list", "--json")
        assert listed.returncode == 0 and name not in listed.stdout, listed.stdout
    finally:
        stop(worker)


def test_removing_a_heartbeat_without_an_alert_publishes_nothing(
    stack: Settings, fresh_database: str, unique: str
) -> None:
    name = f"{unique}-quiet"
    declared = vigil(stack, fresh_database, "heartbeat", "expect", name, "--every", "1h", "--grace", "1h")
    assert declared.returncode == 0, declared.stderr
    removed = vigil(stack, fresh_database, "heartbeat", "remove", name)
    assert removed.returncode == 0, removed.stderr
    assert "resolved" not in removed.stdout
    assert alert_status(fresh_database, ABSENCE, name) is None
