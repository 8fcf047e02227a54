"""Pruning in the real Postgres: processed_events (retention, the uncommitted-offset bound, batches,
tombstones in the ledger topic), and the sent outbox rows, runs, finished deliveries and decided
reviews by their own retentions; decided schedule slots, fired wakeups and finished watches by the
runs retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine

from agents.db import as_engine
from agents.ledger import LedgerReader, ProcessedTable
from agents.prune import prune_all, prune_processed_events
from agents.prune_policy import Retentions
from streams.kafka import make_consumer, make_producer
from streams.ledger_records import installation_tail
from streams.settings import Settings

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


def _seed_other_tables(database_url: str) -> None:
    """Per table, rows 40 and 2 days old in each state; ``note`` columns say which is which."""
    with psycopg.connect(database_url) as conn:
        for age in (40, 2):
            ago = f"now() - interval '{age} days'"
            conn.execute(
                "INSERT INTO vigil.outbox (id, aggregatetype, aggregateid, type, payload, created_at, sent_at) "
                f"VALUES (gen_random_uuid(), 'sent-{age}', 'k', 'T', '{{}}', {ago}, {ago}), "
                f"(gen_random_uuid(), 'unsent-{age}', 'k', 'T', '{{}}', {ago}, NULL)"
            )
            for status in ("succeeded", "failed", "running"):
                conn.execute(
                    "INSERT INTO vigil.runs (run_id, agent, event_id, trigger, status, started_at) "
                    f"VALUES (gen_random_uuid(), %s, 'e', 't', %s, {ago})",
                    (f"{status}-{age}", status),
                )
            for status in ("delivered", "failed", "pending"):
                conn.execute(
                    "INSERT INTO vigil.deliveries (sink, outbox_id, status, created_at) "
                    f"VALUES (%s, gen_random_uuid(), %s, {ago})",
                    (f"{status}-{age}", status),
                )
            for status in ("approved", "rejected", "pending"):
                decided = ago if status != "pending" else "NULL"
                conn.execute(
                    "INSERT INTO vigil.reviews (id, agent, event_id, run_id, reason, status, created_at, decided_at) "
                    f"VALUES (gen_random_uuid(), %s, 'e', gen_random_uuid(), 'r', %s, {ago}, {decided})",
                    (f"{status}-{age}", status),
                )
            _seed_schedules(conn, age, ago)


def _seed_schedules(conn: psycopg.Connection[tuple[object, ...]], age: int, ago: str) -> None:
    """A cron schedule with a fired, a skipped and a buffered slot; a fired and a pending wakeup (a
    slot each); a fired one-shot --at schedule; a watch in each state."""
    soon = "now() + interval '1 hour'"
    conn.execute(
        "INSERT INTO vigil.schedules (id, kind, expression, next_fire_at, last_fire_at) VALUES "
        f"('cron-{age}', 'cron', '* * * * *', {soon}, {ago}), "
        f"('at-{age}', 'at', 'x', NULL, {ago}), "
        f"('wakeup-fired-{age}', 'wakeup', 'x', NULL, {ago}), "
        f"('wakeup-pending-{age}', 'wakeup', 'x', {ago}, NULL)"
    )
    conn.execute(
        "INSERT INTO vigil.schedule_slots (schedule, slot_time, status, decided_at) VALUES "
        f"('cron-{age}', {ago}, 'fired', {ago}), "
        f"('cron-{age}', {ago} + interval '1 minute', 'skipped_overlap', {ago}), "
        f"('cron-{age}', {ago} + interval '2 minutes', 'buffered', {ago}), "
        f"('wakeup-fired-{age}', {ago}, 'fired', {ago})"
    )
    for state, finished in (
        ("handed_off", "handed_off_at"),
        ("expired", "expired_at"),
        ("armed", None),
        ("matched", None),
    ):
        columns = f", {finished}" if finished else ""
        values = f", {ago}" if finished else ""
        conn.execute(
            f"INSERT INTO vigil.watches (name, topic, predicate, deadline, agent, state, created_at{columns}) "
            f"VALUES (%s, 't', 'true', {ago}, 'a', %s, {ago}{values})",
            (f"{state}-{age}", state),
        )


def _left(database_url: str) -> dict[str, set[str]]:
    queries = {
        "outbox": "SELECT aggregatetype FROM vigil.outbox",
        "runs": "SELECT agent FROM vigil.runs",
        "deliveries": "SELECT sink FROM vigil.deliveries",
        "reviews": "SELECT agent FROM vigil.reviews",
        "schedule_slots": "SELECT schedule || '/' || status FROM vigil.schedule_slots",
        "schedules": "SELECT id FROM vigil.schedules",
        "watches": "SELECT name FROM vigil.watches",
    }
    with psycopg.connect(database_url) as conn:
        return {table: {row[0] for row in conn.execute(sql).fetchall()} for table, sql in queries.items()}


@pytest.mark.timeout(60)
def test_old_sent_outbox_rows_runs_finished_deliveries_and_decided_reviews_are_pruned(
    fresh_database: str, engine: Engine
) -> None:
    _seed_other_tables(fresh_database)
    retentions = Retentions.from_days(processed=7, outbox=7, runs=30, deliveries=30, reviews=30)
    deleted = prune_all(engine, retentions, producer=None, worker_relays_outbox=True, batch_size=1)
    assert deleted == {
        "processed_events": 0, "outbox": 1, "runs": 3, "deliveries": 2, "reviews": 2,
        "schedule_slots": 3, "schedules": 1, "watches": 2,
    }  # fmt: skip
    assert _left(fresh_database) == {
        "outbox": {"sent-2", "unsent-2", "unsent-40"},  # an unsent row is never pruned
        "runs": {"succeeded-2", "failed-2", "running-2"},
        "deliveries": {"delivered-2", "failed-2", "pending-2", "pending-40"},
        "reviews": {"approved-2", "rejected-2", "pending-2", "pending-40"},
        # a buffered slot still waits to fire; the fired wakeup's slot went (by age) before the wakeup
        "schedule_slots": {"cron-40/buffered", "cron-2/fired", "cron-2/skipped_overlap", "cron-2/buffered",
                           "wakeup-fired-2/fired"},
        # cron and --at schedules are the user's; a pending wakeup has yet to fire
        "schedules": {"cron-40", "at-40", "wakeup-pending-40", "cron-2", "at-2", "wakeup-fired-2",
                      "wakeup-pending-2"},
        "watches": {"armed-40", "matched-40", "handed_off-2", "expired-2", "armed-2", "matched-2"},
    }  # fmt: skip
    assert prune_all(engine, retentions, producer=None, worker_relays_outbox=True) == dict.fromkeys(
        deleted, 0
    )


@pytest.mark.timeout(60)
def test_when_debezium_relays_outbox_rows_go_by_age_and_retentions_are_per_table(
    fresh_database: str, engine: Engine
) -> None:
    _seed_other_tables(fresh_database)
    retentions = Retentions.from_days(processed=7, outbox=1, runs=1, deliveries=60, reviews=1)
    deleted = prune_all(engine, retentions, producer=None, worker_relays_outbox=False)
    assert deleted == {
        "processed_events": 0, "outbox": 4, "runs": 6, "deliveries": 0, "reviews": 4,
        "schedule_slots": 6, "schedules": 2, "watches": 4,
    }  # fmt: skip
    left = _left(fresh_database)
    assert left["watches"] == {"armed-40", "matched-40", "armed-2", "matched-2"}
    assert left["schedule_slots"] == {"cron-40/buffered", "cron-2/buffered"}
    assert left["outbox"] == set() and left["runs"] == set()
    assert left["reviews"] == {"pending-2", "pending-40"}
    assert len(left["deliveries"]) == 6


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.timeout(120)
def test_pruned_processed_events_get_tombstones_and_the_ledger_forgets_them(
    stack: Settings, seeded: str, engine: Engine, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("processed", partitions=2)
    producer = make_producer(stack)
    with psycopg.connect(seeded) as conn:
        keys = [
            f"{agent}/{event_id}"
            for agent, event_id in conn.execute(
                "SELECT agent, event_id FROM vigil.processed_events"
            ).fetchall()
        ]
    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"record" + installation_tail("db"))
    assert producer.flush(15) == 0
    table = ProcessedTable()
    reader = LedgerReader(
        make_consumer(stack, f"{unique}-ledger", **{"enable.auto.commit": False}),
        table,
        topic,
        installation="db",
    )
    reader.start()
    try:
        assert _wait_until(lambda: len(table) == 50), len(table)
        assert prune_processed_events(engine, batch_size=7, producer=producer, ledger_topic=topic) == 35
        pruned = {k for k in keys if not k.startswith("one-day/")}
        assert _wait_until(lambda: len(table) == 15), len(table)
        assert not any(table.known(*k.split("/", 1)) for k in pruned)
        assert all(table.known(*k.split("/", 1)) for k in set(keys) - pruned)
    finally:
        reader.stop()
        reader.join(15)

    consumer = make_consumer(stack, f"{unique}-check-{uuid.uuid4().hex[:6]}", **{"enable.auto.commit": False})
    consumer.subscribe([topic])
    tombstones: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(tombstones) < 35 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.value() is None:
                tombstones.append((message.key() or b"").decode())
    finally:
        consumer.close()
    assert sorted(tombstones) == sorted(pruned)
