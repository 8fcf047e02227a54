"""`vigil doctor` against the embedded stack (Postgres, Apache Kafka, Connect): passes, reporting the
replication slots free; the embedded Postgres caps the WAL a slot keeps. Against a Postgres with
``wal_level=replica`` it fails (exit 1), naming wal_level and the fix (issue #11)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from ops.services import stack as stack_mod
from streams.settings import Settings, load_settings
from tests.integration.workers import ROOT, VIGIL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_doctor_passes_against_the_embedded_stack(stack: Settings) -> None:
    if not (stack.uses_embedded_postgres or stack.home):
        pytest.skip("needs the embedded stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_HOME": str(stack.home), "PYTHONPATH": str(ROOT)})
    done = subprocess.run(
        [VIGIL, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], report
    details = [f["detail"] for f in report["findings"]]
    assert any("wal_level=logical" in d for d in details)
    assert any("replication slots free" in d for d in details)
    with psycopg.connect(stack.require_database_url()) as conn:
        row = conn.execute("SHOW max_slot_wal_keep_size").fetchone()
    assert row is not None and row[0] == "1GB"


def test_doctor_names_wal_level_and_its_fix_against_a_replica_postgres(
    stack: Settings, throwaway_home: Path
) -> None:
    if not stack.home:
        pytest.skip("needs the embedded Postgres binaries (the session stack is external)")
    # A Postgres of this test's own; ALTER SYSTEM (postgresql.auto.conf) is read after Vigil's
    # included vigil.conf, so it overrides its wal_level = logical at the restart.
    pg = stack_mod.embedded_postgres(load_settings(home=throwaway_home))
    status = pg.start()
    assert status.port is not None
    with psycopg.connect(pg.url(status.port, "postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET wal_level = 'replica'")
    pg.stop()
    pg.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_HOME": str(throwaway_home), "PYTHONPATH": str(ROOT)})
    url = subprocess.run(
        [VIGIL, "services", "url", "--show-password"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    env.update(
        {
            "VIGIL_DATABASE_URL": url,
            "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
            **({"VIGIL_CONNECT_URL": stack.connect_url} if stack.connect_url else {}),
        }
    )
    done = subprocess.run(
        [VIGIL, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1 and not report["ok"], report
    wal = [f for f in report["findings"] if "wal_level" in f["detail"]]
    assert len(wal) == 1, report
    assert wal[0]["status"] == "problem" and wal[0]["part"] == "postgres", wal
    assert "wal_level=replica" in wal[0]["detail"], wal
    assert "fix: set wal_level = logical" in wal[0]["detail"] and "restart" in wal[0]["detail"], wal
