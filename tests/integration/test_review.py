"""`vigil review`: approving writes the proposed outbox rows once; rejecting writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from streams.settings import Settings

pytestmark = pytest.mark.integration

VIGIL = str(Path(sys.executable).parent / "vigil")


def _vigil(stack: Settings, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {"VIGIL_DATABASE_URL": db, "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(), "COLUMNS": "200"}
    )
    return subprocess.run(
        [VIGIL, "review", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _item(conn: psycopg.Connection[tuple[object, ...]], event_id: str) -> str:
    item_id, outbox_id = uuid.uuid4(), uuid.uuid4()
    proposed = [
        {
            "id": str(outbox_id),
            "aggregatetype": "refunds",
            "aggregateid": "7",
            "type": "refund",
            "payload": {"n": 7},
        }
    ]
    conn.execute(
        "INSERT INTO vigil.reviews (id, agent, event_id, run_id, reason, proposed) VALUES (%s, 'a', %s, %s, 'too big', %s::jsonb)",
        (item_id, event_id, uuid.uuid4(), json.dumps(proposed)),
    )
    return str(item_id)


def test_approve_writes_the_proposed_rows_once_and_reject_writes_nothing(
    stack: Settings, fresh_database: str
) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        approved, rejected = _item(conn, "e1"), _item(conn, "e2")
    listed = _vigil(stack, fresh_database, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {i["id"] for i in json.loads(listed.stdout)} == {approved, rejected}

    assert _vigil(stack, fresh_database, "approve", approved, "--by", "ops").returncode == 0
    again = _vigil(stack, fresh_database, "approve", approved)
    assert again.returncode != 0 and "already approved" in again.stderr
    assert _vigil(stack, fresh_database, "reject", rejected).returncode == 0

    with psycopg.connect(fresh_database) as conn:
        outbox = conn.execute(
            "SELECT aggregatetype, aggregateid, source_event_id FROM vigil.outbox"
        ).fetchall()
        statuses = dict(conn.execute("SELECT id::text, status FROM vigil.reviews").fetchall())
    assert outbox == [("refunds", "7", "e1")]
    assert statuses == {approved: "approved", rejected: "rejected"}
    assert json.loads(_vigil(stack, fresh_database, "list", "--json").stdout) == []
