"""Helpers of the drift integration tests: a worker with the built-in drift agents, counts by source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.settings import Settings
from tests.integration.workers import ROOT, scalar, start_worker

VIGIL = str(Path(sys.executable).parent / "vigil")


def start_drift_worker(
    stack: Settings,
    database_url: str,
    tmp_path: Path,
    unique: str,
    policy: str,
    *,
    module: str = "tests.integration.agentmods.recorder",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A ``vigil worker`` with the built-in drift agents, its own group, database and policy."""
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(policy)
    return start_worker(
        stack,
        database_url,
        topic=f"{unique}.unused",
        app_id=f"{unique}-app",
        agent_name=f"{unique}-recorder",
        log_path=tmp_path / "worker.log",
        module=module,
        extra_env={
            "VIGIL_BUILTIN_AGENTS": "true",
            "VIGIL_DRIFT_POLICY": str(policy_file),
            "VIGIL_LOG_LEVEL": "INFO",
            **(extra_env or {}),
        },
    )


def vigil(
    stack: Settings, database_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    base.update(
        {
            "VIGIL_DATABASE_URL": database_url,
            "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
            **(env or {}),
        }
    )
    return subprocess.run([VIGIL, *args], env=base, capture_output=True, text=True, timeout=60, check=False)


def decisions(database_url: str, source: str, tier: str | None = None, severity: str | None = None) -> int:
    sql = "SELECT count(*) FROM vigil.drift_decisions WHERE source = %s"
    params: list[object] = [source]
    if tier is not None:
        sql += " AND tier = %s"
        params.append(tier)
    if severity is not None:
        sql += " AND severity = %s"
        params.append(severity)
    return scalar(database_url, sql, *params)


def outbox(database_url: str, aggregatetype: str, source: str) -> int:
    return scalar(
        database_url,
        "SELECT count(*) FROM vigil.outbox WHERE aggregatetype = %s AND payload->>'source' = %s",
        aggregatetype,
        source,
    )


def reports(database_url: str, source: str) -> int:
    return scalar(
        database_url,
        "SELECT count(*) FROM vigil.reviews WHERE agent = 'drift-investigate' AND reason LIKE %s",
        f"% from {source} %",
    )


def routed_runs(database_url: str, agent: str) -> int:
    return scalar(database_url, "SELECT count(*) FROM vigil.runs WHERE agent = %s", agent)
