"""Pruning processed_events in the real Postgres: retention, the uncommitted-offset bound, batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine

from agents.db import as_engine
from agents.prune import prune_processed_events

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(fresh_database: str) -> Iterator[Engine]:
    db = as_engine(fresh_database)
    yield db
    db.dispose()


def _seed(database_url: str, age_days: float, count: int, agent: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO vigil.processed_events (agent, event_id, run_id, processed_at) "
            "SELECT %s, 'e' || n, gen_random_uuid(), now() - make_interval(secs => %s) "
            "FROM generate_series(1, %s) AS n",
            (agent, age_days * 86400, count),
        )


def _ages(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT agent, count(*) FROM vigil.processed_events GROUP BY agent").fetchall()
    return {agent: int(n) for agent, n in rows}


@pytest.fixture
def seeded(fresh_database: str) -> str:
    _seed(fresh_database, 10, 25, "ten-days")
    _seed(fresh_database, 8, 10, "eight-days")
    _seed(fresh_database, 1, 15, "one-day")
    return fresh_database


@pytest.mark.timeout(60)
def test_rows_past_the_retention_are_deleted_in_batches(seeded: str, engine: Engine) -> None:
    assert prune_processed_events(engine, batch_size=7) == 35
    assert _ages(seeded) == {"one-day": 15}
    assert prune_processed_events(engine) == 0


@pytest.mark.timeout(60)
def test_an_older_uncommitted_offset_holds_pruning_back(seeded: str, engine: Engine) -> None:
    with psycopg.connect(seeded) as conn:
        row = conn.execute("SELECT now() - interval '9 days'").fetchone()
    assert row is not None
    oldest_unacked = row[0]
    assert prune_processed_events(engine, not_newer_than=oldest_unacked) == 25
    assert _ages(seeded) == {"eight-days": 10, "one-day": 15}


@pytest.mark.timeout(60)
def test_max_batches_bounds_one_call_and_a_shorter_retention_reaches_further(
    seeded: str, engine: Engine
) -> None:
    assert prune_processed_events(engine, batch_size=10, max_batches=2) == 20
    assert sum(_ages(seeded).values()) == 30
    assert prune_processed_events(engine, retention=timedelta(hours=12), batch_size=10) == 30
    assert _ages(seeded) == {}
