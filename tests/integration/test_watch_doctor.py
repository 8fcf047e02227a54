"""`vigil doctor` against the embedded stack (Postgres, Apache Kafka, Connect): passes, reporting the
replication slots free; the embedded Postgres caps the WAL a slot keeps."""

from __future__ import annotations

import json
import os
import subprocess

import psycopg
import pytest

from streams.settings import Settings
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
