"""The ledger is trusted only for its own database: two deployments sharing one Kafka cluster (same
agent name, same event ids, different Postgres databases) never skip each other's events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agents.db import installation_id, new_installation_id
from streams.settings import Settings
from tests.integration.workers import produce_events, scalar, start_worker, stop, wait_until

pytestmark = pytest.mark.integration


def _processed(database_url: str) -> int:
    return scalar(database_url, "SELECT count(*) FROM vigil.processed_events")


def _ledger_caught_up(log: Path) -> bool:
    return log.exists() and "ledger caught up" in log.read_text()


@pytest.mark.timeout(300)
def test_two_deployments_sharing_kafka_do_not_skip_each_others_events(
    stack: Settings,
    make_database: Callable[[str], str],
    make_topic: Callable[..., str],
    unique: str,
    tmp_path: Path,
) -> None:
    db_a, db_b = make_database("a"), make_database("b")
    assert installation_id(db_a) != installation_id(db_b)
    total = 500
    events = [(f"evt-{n}", {"n": n}) for n in range(total)]
    first, second = make_topic("first"), make_topic("second")
    produce_events(stack, first, events)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    log_a, log_b = tmp_path / "a" / "worker.log", tmp_path / "b" / "worker.log"
    # Deployment A processes the events: its ledger records land in vigil.processed-events.
    worker_a = start_worker(stack, db_a, topic=first, app_id=f"{unique}-a", agent_name=unique, log_path=log_a)
    try:
        wait_until(lambda: _processed(db_a) >= total, 120, "A's events", worker_a, log_a)
    finally:
        stop(worker_a)
    # Deployment B, same agent name: once its ledger reader has read everything A wrote, it gets the
    # same event ids and must process every one of them in its own database.
    worker_b = start_worker(
        stack, db_b, topic=second, app_id=f"{unique}-b", agent_name=unique, log_path=log_b
    )
    try:
        wait_until(lambda: _ledger_caught_up(log_b), 120, "B's ledger to catch up", worker_b, log_b)
        produce_events(stack, second, events)
        wait_until(lambda: _processed(db_b) >= total, 120, "B's events", worker_b, log_b)
    finally:
        stop(worker_b)
    assert _processed(db_a) == _processed(db_b) == total
    assert scalar(db_b, "SELECT count(*) FROM public.effects_core") == total
    assert "records of other databases ignored" in log_b.read_text()


@pytest.mark.timeout(60)
def test_a_restored_database_gets_a_new_identity(make_database: Callable[[str], str]) -> None:
    db = make_database("r")
    before = installation_id(db)
    after = new_installation_id(db)
    assert after != before and installation_id(db) == after
