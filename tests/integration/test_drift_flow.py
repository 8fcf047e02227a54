"""Drift end to end: `vigil drift publish` → drift.events → router → tiers → investigate and
remediate agents → review queue and outbox, against a real worker, Postgres and the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from tests.integration.drift_helpers import decisions, outbox, reports, start_drift_worker, vigil
from tests.integration.workers import scalar, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_published_warning_is_investigated_and_critical_remediated(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    policy = f"""
[[metric]]
source = "{unique}"
metric = "orders.errors"
remediation = {{ action = "rollback", aggregatetype = "remediation", params = {{ to = "v41" }} }}
"""
    worker = start_drift_worker(stack, fresh_database, tmp_path, unique, policy)
    log = tmp_path / "worker.log"
    try:
        warn = vigil(stack, fresh_database, "drift", "publish", "--source", unique, "--metric", "orders.latency",
                     "--value", "0.2", "--label", "service=orders")  # fmt: skip
        crit = vigil(stack, fresh_database, "drift", "publish", "--source", unique, "--metric", "orders.errors",
                     "--value", "0.4", "--severity", "critical", "--label", "service=billing")  # fmt: skip
        assert warn.returncode == 0 and crit.returncode == 0, warn.stderr + crit.stderr
        assert warn.stdout.strip().startswith(f"{unique}/") and warn.stdout.strip().endswith(
            "/warning/" + warn.stdout.strip().rsplit("/", 1)[1]
        )

        wait_until(lambda: outbox(fresh_database, "remediation", unique) >= 1 and reports(fresh_database, unique) >= 1,
                   150, "a report and a remediation", worker, log)  # fmt: skip
        assert decisions(fresh_database, unique, tier="warning") == 1
        assert decisions(fresh_database, unique, tier="critical") == 1
        assert reports(fresh_database, unique) == 1
        assert outbox(fresh_database, "drift-reports", unique) == 1
        assert outbox(fresh_database, "remediation", unique) == 1
        params = scalar(
            fresh_database,
            "SELECT count(*) FROM vigil.outbox WHERE aggregatetype = 'remediation' AND type = 'rollback' "
            "AND payload->'params'->>'to' = 'v41'",
        )
        assert params == 1
    finally:
        stop(worker)
