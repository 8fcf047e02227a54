"""Helpers of the watch tests: workers with a fast monitor, and Vigil's own alerts as published."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from streams.settings import Settings
from streams.watch import alert_fingerprint
from tests.integration.drift_helpers import start_drift_worker, vigil
from tests.integration.workers import scalar

TOKEN = "watch-token-7d41"


def start_watch_worker(
    stack: Settings,
    database_url: str,
    tmp_path: Path,
    unique: str,
    *,
    port: int,
    module: str = "tests.integration.agentmods.recorder",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker with the drift agents (the alerts are routed) and a monitor checking every 0.3 s."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return start_drift_worker(
        stack,
        database_url,
        tmp_path,
        unique,
        "",
        module=module,
        extra_env={
            "VIGIL_WATCH_INTERVAL_S": "0.3",
            "VIGIL_HTTP_PORT": str(port),
            "VIGIL_INGEST_TOKEN": TOKEN,
            **(extra_env or {}),
        },
    )


def published_alerts(stack: Settings, database_url: str, kind: str, subject: str) -> list[str]:
    """Severities of the drift events on ``drift.events`` about ``subject`` (every copy, in order)."""
    fp = alert_fingerprint(kind, subject)
    tailed = vigil(stack, database_url, "inspect", "tail", "drift.events", "--json")
    assert tailed.returncode == 0, tailed.stderr
    severities = []
    for line in tailed.stdout.splitlines():
        value = json.loads(line)["value"]
        if isinstance(value, dict) and value.get("fingerprint") == fp:
            severities.append(str(value["severity"]))
    return severities


def routed(database_url: str, kind: str, subject: str, severity: str) -> int:
    """Decisions of the drift router on Vigil's alerts about ``subject`` with ``severity``."""
    return scalar(
        database_url,
        "SELECT count(*) FROM vigil.drift_decisions WHERE fingerprint = %s AND severity = %s",
        alert_fingerprint(kind, subject),
        severity,
    )


def alert_status(database_url: str, kind: str, subject: str) -> str | None:
    from tests.integration.workers import rows

    found = rows(database_url, "SELECT status FROM vigil.alerts WHERE key = %s", f"{kind}:{subject}")
    return str(found[0]) if found else None
