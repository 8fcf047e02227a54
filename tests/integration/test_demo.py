"""`vigil up --demo` end to end: Debezium in Kafka Connect → Kafka → agent → outbox → outbox router → sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

VIGIL = str(Path(sys.executable).parent / "vigil")


@pytest.mark.timeout(420)
def test_vigil_up_demo_shows_agents_acting_on_row_changes(throwaway_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_HOME"] = str(throwaway_home)
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [VIGIL, "up", "--demo", "--short"], env=env, capture_output=True, text=True, timeout=400, check=False
    )
    logs = "".join(
        f"\n--- {log.name}\n{log.read_text()[-3000:]}"
        for log in sorted((throwaway_home / "logs").glob("*.log"))
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:] + logs
    assert "demo complete" in done.stdout
    lines = [
        json.loads(line)
        for line in (throwaway_home / "demo" / "notifications.jsonl").read_text().splitlines()
    ]
    assert len(lines) == 2
    assert len({line["id"] for line in lines}) == 2
    assert all(
        line["topic"] == "vigil.outbox.notifications" and "failed" in line["payload"]["text"]
        for line in lines
    )

    status = subprocess.run(
        [VIGIL, "status", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    report = json.loads(status.stdout)
    agents = {a["agent"]: a for a in report["agents"]}
    assert agents["order-watch"]["succeeded"] >= 9 and agents["order-watch"]["failed"] == 0
    connectors = {c["name"]: c for c in report["connectors"]}
    # The connectors run in the embedded Kafka Connect, which outlives `vigil up`.
    for name in ("vigil-demo", "vigil-outbox"):
        assert connectors[name]["mode"] == "connect" and connectors[name]["state"] == "RUNNING", connectors
        assert connectors[name]["slot_lag_bytes"] is not None
    assert not [p for p in report["problems"] if "connector" in p], report["problems"]
    assert report["outbox_backlog"] is None, "the demo's outbox is relayed by Debezium's outbox router"
