"""A metric that drifts slowly: `vigil drift detect` publishes warnings, the router escalates them
to critical, the detector's hysteresis resolves it, and the router's state survives a SIGKILL of
the worker in the middle of the sequence."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.integration.drift_helpers import VIGIL, decisions, reports, start_drift_worker
from tests.integration.workers import ROOT, rows, stop, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(280)]

T0 = 1_780_000_000.0


def detect(
    stack: Settings, database_url: str, policy: Path, unique: str, values: list[tuple[float, float]]
) -> str:
    lines = "".join(json.dumps({"value": v, "at": T0 + t}) + "\n" for t, v in values)
    env = {
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
        "VIGIL_DRIFT_POLICY": str(policy),
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [VIGIL, "drift", "detect", "--source", unique, "--metric", "cpu", "--stdin", "--label", "service=api"],
        input=lines, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_slow_drift_warns_escalates_and_resolves_across_a_worker_kill(
    stack: Settings, fresh_database: str, tmp_path: Path, unique: str
) -> None:
    policy = f"""
[[metric]]
source = "{unique}"
metric = "cpu"
statistic = "threshold"
warning = 10
critical = 1000
window = 1
baseline_size = 0
resolve_after = 2
cooldown_seconds = 0
escalate_after = 3
escalate_window_seconds = 3600
"""
    worker = start_drift_worker(stack, fresh_database, tmp_path, unique, policy)
    log = tmp_path / "worker.log"
    try:
        first = detect(stack, fresh_database, tmp_path / "policy.toml", unique,
                       [(t, 4.0 + t) for t in range(8)])  # fmt: skip  # 4 … 11: warnings at 10, 11
        assert [line.split()[0] for line in first.splitlines()] == ["warning", "warning"], first
        wait_until(
            lambda: decisions(fresh_database, unique, tier="warning") == 2, 150, "2 warnings", worker, log
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)

        worker = start_drift_worker(stack, fresh_database, tmp_path, unique, policy)
        # A new detector run: 13 is a warning again, then two calm windows resolve it.
        second = detect(
            stack, fresh_database, tmp_path / "policy.toml", unique, [(8, 13.0), (9, 4.0), (10, 3.0)]
        )
        assert [line.split()[0] for line in second.splitlines()] == ["warning", "resolved"], second
        wait_until(
            lambda: decisions(fresh_database, unique, severity="resolved") == 1,
            150,
            "resolution",
            worker,
            log,
        )

        assert decisions(fresh_database, unique, tier="warning") == 2
        # the third warning within the window escalated, remembered across the kill
        reasons = rows(fresh_database, "SELECT reason FROM vigil.drift_decisions WHERE source = %s AND tier = 'critical' ORDER BY observed_at", unique)  # fmt: skip
        assert reasons == ["escalated after 3 warnings", "resolved"], reasons
        assert rows(fresh_database, "SELECT status FROM vigil.drift_incidents WHERE source = %s", unique) == [
            "closed"
        ]
        wait_until(lambda: reports(fresh_database, unique) == 2, 60, "2 reports", worker, log)
    finally:
        stop(worker)
