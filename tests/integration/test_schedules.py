"""Schedules and wakeups through real ``vigil worker`` processes, Postgres and the broker: ticks reach
only the named agent, one run per slot with two schedulers, overlap and wakeup guarantees."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from streams.settings import Settings
from tests.integration.workers import VIGIL, scalar, start_worker, stop, wait_until

pytestmark = pytest.mark.integration

TICKER = "tests.integration.agentmods.ticker"


def vigil(stack: Settings, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {"VIGIL_DATABASE_URL": db, "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(), "COLUMNS": "250"}
    )
    done = subprocess.run([VIGIL, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def ticker_tables(db: str) -> None:
    from tests.integration.agentmods.ticker import TABLES

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(TABLES)


def start_ticker(
    stack: Settings, db: str, unique: str, tmp_path: Path, n: int = 0, **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    ticker_tables(db)
    log = tmp_path / f"worker{n}.log"
    proc = start_worker(
        stack,
        db,
        topic="vigil.ticks",
        app_id=f"{unique}-app",
        agent_name=unique,
        log_path=log,
        module=TICKER,
        extra_env={"VIGIL_SCHEDULER_POLL_S": "0.2", **env},
    )
    return proc, log


def runs(db: str, schedule: str) -> list[dict[str, Any]]:
    with psycopg.connect(db, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM public.tick_runs WHERE schedule = %s ORDER BY slot_time", (schedule,)
        ).fetchall()


@pytest.mark.timeout(240)
def test_a_schedule_ticks_only_its_agent_once_per_slot(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    proc, log = start_ticker(stack, fresh_database, unique, tmp_path)
    try:
        vigil(
            stack,
            fresh_database,
            "schedule",
            "add",
            "every-second",
            "--every",
            "1s",
            "--agent",
            unique,
            "--payload",
            '{"hello": "world"}',
        )
        wait_until(lambda: len(runs(fresh_database, "every-second")) >= 3, 120, "three ticks run", proc, log)
        listed = json.loads(vigil(stack, fresh_database, "schedule", "list", "--json").stdout)
        assert [s["id"] for s in listed] == ["every-second"]
        assert listed[0]["next_fire_at"] is not None and listed[0]["agent"] == unique
        vigil(stack, fresh_database, "schedule", "pause", "every-second")
        vigil(stack, fresh_database, "schedule", "remove", "every-second")
    finally:
        stop(proc)
    done = runs(fresh_database, "every-second")
    assert {r["agent"] for r in done} == {unique}, "a tick reached an agent it does not name"
    slots = [r["slot_time"] for r in done]
    assert len(slots) == len(set(slots))
    assert all(r["payload"] == {"hello": "world"} and r["kind"] == "schedule" for r in done)
    assert scalar(fresh_database, "SELECT count(*) FROM vigil.schedules") == 0
