"""The unit of work's SQL against the real Postgres: ids of any shape are claimed as they are."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from agents import batch_writes
from agents.copy_text import text_array
from agents.outbox_mapping import OutboxRow

pytestmark = pytest.mark.integration

ODD_IDS = [
    "plain",
    "with,comma",
    "{braces}",
    "  blanks  ",
    "NULL",
    'a "quoted" id',
    "back\\slash",
    'ends with \\"',
    "é ünïcode ✓",
    "tab\tand\nnewline",
]


def test_a_text_array_literal_reads_back_as_its_values(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT %s::text[]", (text_array(ODD_IDS),)).fetchone() == (ODD_IDS,)


def test_claim_takes_odd_ids_once_each(fresh_database: str) -> None:
    async def claim_twice() -> tuple[set[str], set[str]]:
        async with await psycopg.AsyncConnection.connect(fresh_database, autocommit=True) as conn:
            first = await batch_writes.claim(conn, "agent", {e: uuid.uuid4() for e in ODD_IDS})
            again = await batch_writes.claim(conn, "agent", {e: uuid.uuid4() for e in [*ODD_IDS, "new"]})
            return first, again

    first, again = asyncio.run(claim_twice())
    assert first == set(ODD_IDS)
    assert again == {"new"}
    with psycopg.connect(fresh_database) as conn:
        stored = [
            r[0] for r in conn.execute("SELECT event_id FROM vigil.processed_events WHERE agent = 'agent'")
        ]
    assert sorted(stored) == sorted([*ODD_IDS, "new"])


def test_outbox_rows_written_before_are_skipped_and_the_transaction_goes_on(fresh_database: str) -> None:
    def row(n: int) -> OutboxRow:
        return OutboxRow(uuid.UUID(int=n), "orders", f"key-{n}", "orders", {"n": n}, trace_id="t")

    async def write(numbers: list[int], then_claim: str) -> None:
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn, conn.transaction():
            await batch_writes.write_outbox(conn, [(row(n), f"evt-{n}") for n in numbers])
            # The conflict was undone alone: the same transaction still takes writes, and commits.
            assert await batch_writes.claim(conn, "agent", {then_claim: uuid.uuid4()}) == {then_claim}

    asyncio.run(write([1, 2], "a"))
    asyncio.run(write([2, 3, 1, 4], "b"))
    with psycopg.connect(fresh_database) as conn:
        stored = conn.execute(
            "SELECT aggregateid, source_event_id FROM vigil.outbox ORDER BY aggregateid"
        ).fetchall()
        claimed = conn.execute("SELECT event_id FROM vigil.processed_events ORDER BY event_id").fetchall()
    assert stored == [(f"key-{n}", f"evt-{n}") for n in (1, 2, 3, 4)]
    assert claimed == [("a",), ("b",)]


def test_runs_with_and_without_an_error_or_steps_are_stored_as_written(fresh_database: str) -> None:
    # A run with neither an error nor steps leaves error and trace to their defaults (COPY's quick
    # path); the others go in a second COPY. One batch of both, odd ids among them.
    now = 1_796_000_000_123_456_789
    runs = [
        batch_writes.RunRecord(
            str(uuid.uuid4()), event_id, "orders", "succeeded", 1, now, now + 1_000, None, []
        )
        for event_id in ODD_IDS
    ]
    runs.insert(
        3,
        batch_writes.RunRecord(
            str(uuid.uuid4()), "rejected-1", "orders", "rejected", 2, now, now, "no\tway", []
        ),
    )
    runs.insert(
        5,
        batch_writes.RunRecord(
            str(uuid.uuid4()),
            "traced-1",
            "orders",
            "succeeded",
            1,
            now,
            now,
            None,
            [{"step": "look", "n": 1}],
        ),
    )

    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn, conn.transaction():
            await batch_writes.write_runs(conn, "agent", runs)

    asyncio.run(write())
    with psycopg.connect(fresh_database) as conn:
        stored = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT run_id::text, event_id, status, attempt, error, trace, "
                "(extract(epoch FROM finished_at - started_at) * 1e6)::int FROM vigil.runs WHERE agent = 'agent'"
            )
        }
    assert len(stored) == len(runs)
    for run in runs:
        expected_micros = (run.finished_ns - run.started_ns) // 1000
        assert stored[run.run_id] == (
            run.event_id,
            run.status,
            run.attempt,
            run.error,
            run.trace,
            expected_micros,
        )
