"""What `vigil doctor` and `vigil status` read about replication slots, from the embedded Postgres:
an inactive slot is reported inactive, with the WAL it holds back."""

from __future__ import annotations

import psycopg
import pytest

from connectors.database import SLOTS_SQL
from ops.doctor import postgres_facts

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
def test_an_inactive_slot_is_read_with_the_wal_it_retains(fresh_database: str, unique: str) -> None:
    url = fresh_database
    slot = f"{unique}_slot".replace("-", "_").lower()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        try:
            # WAL written after the slot was made is WAL it holds back
            conn.execute(
                "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g"
            )
            found = [s for s in postgres_facts(url).slots if s.name == slot]
            assert len(found) == 1 and not found[0].active
            assert found[0].retained_wal_bytes is not None and found[0].retained_wal_bytes > 1_000_000
            rows = {r[0]: r for r in conn.execute(SLOTS_SQL)}
            assert rows[slot][1:4] == ("pgoutput", "logical", False)
            assert rows[slot][4] >= found[0].retained_wal_bytes  # read a moment later: no less
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
