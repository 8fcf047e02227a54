"""``vigil replay`` on the real broker and Postgres: a time range copied to a sandbox exactly; an agent
replay as a dry run (nothing changes), deduplicated (no new side effect), rerun (one new side effect
per event); a dead letter re-driven after its handler was fixed, processed exactly once."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from confluent_kafka import TopicPartition
from rich.console import Console
from sqlalchemy import text

from agents.api import agent, unregister
from agents.context import Context
from ops.replay import ReplayRequest, ReplayResult, replay
from streams.catalog import DLQ
from streams.headers import REPLAY_ID
from streams.kafka import make_consumer, make_producer
from streams.settings import Settings
from streams.views import record_headers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _replay(settings: Settings, **options: Any) -> ReplayResult:
    return replay(
        settings, Console(file=io.StringIO(), width=200), ReplayRequest(**options), show_progress=False
    )


def _read_all(settings: Settings, topic: str, partitions: int) -> list[Any]:
    consumer = make_consumer(settings, "vigil-test-read", **{"enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        out, eof = [], set()
        while len(eof) < partitions:
            msg = consumer.poll(5)
            assert msg is not None, "the topic did not reach its end within 5s"
            if msg.error():
                eof.add(msg.partition())
                continue
            out.append(msg)
        return out
    finally:
        consumer.close()


def test_time_range_to_sandbox_copies_exactly_those_events(
    stack: Settings, make_topic: Callable[..., str]
) -> None:
    source = make_topic("source", partitions=2)
    producer = make_producer(stack)
    for i in range(100):
        producer.produce(
            source,
            key=f"k{i % 7}".encode(),
            value=json.dumps({"n": i}).encode(),
            partition=i % 2,
            timestamp=int((BASE + timedelta(seconds=i)).timestamp() * 1000),
            headers=[("n", str(i).encode()), ("origin", b"test")],
        )
    assert producer.flush(30) == 0
    sandbox = f"{source}.sandbox"
    result = _replay(
        stack,
        topic=source,
        from_time=(BASE + timedelta(seconds=30)).isoformat(),
        to_time=(BASE + timedelta(seconds=70)).isoformat(),
        to_topic=sandbox,
    )
    # i in [30, 70): partition 0 holds the even ones at offset i // 2 (15..34), partition 1 the odd ones.
    assert [(r.partition, r.start, r.end) for r in result.plan.ranges] == [(0, 15, 35), (1, 15, 35)]
    assert result.copied == 40
    copied = _read_all(stack, sandbox, 2)
    assert len(copied) == 40
    replay_ids = set()
    for msg in copied:
        headers = record_headers(msg)
        n = int(dict(headers)["n"])
        assert 30 <= n < 70
        assert msg.partition() == n % 2
        assert msg.offset() == n // 2 - 15  # same order as the source, from the sandbox's start
        assert msg.key() == f"k{n % 7}".encode()
        assert msg.timestamp()[1] == int((BASE + timedelta(seconds=n)).timestamp() * 1000)
        assert headers[:2] == [("n", str(n).encode()), ("origin", b"test")]
        assert headers[2][0] == REPLAY_ID
        replay_ids.add(headers[2][1])
    assert replay_ids == {result.replay_id.encode()}
    assert sorted(int(dict(record_headers(m))["n"]) for m in copied) == list(range(30, 70))


# -- through an agent ---------------------------------------------------------------------

TABLES = ["vigil.processed_events", "vigil.outbox", "vigil.runs", "vigil.reviews", "public.replay_effects"]


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}").fetchall())) for t in TABLES}  # type: ignore[misc]


@pytest.fixture
def agent_db(stack: Settings, fresh_database: str) -> Iterator[Settings]:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.replay_effects (event_id text NOT NULL, n integer NOT NULL)")
    yield stack.model_copy(update={"database_url": fresh_database, "builtin_agents": False})


def _register(name: str, topic: str, state: dict[str, bool]) -> None:
    async def handler(event: Any, ctx: Context) -> None:
        n = int(event.value["n"])
        if state.get("broken"):
            raise RuntimeError(f"not fixed yet: {n}")
        await ctx.session.execute(
            text("INSERT INTO public.replay_effects (event_id, n) VALUES (:e, :n)"),
            {"e": ctx.event_id, "n": n},
        )
        ctx.step("record", n=n)
        ctx.emit("replaytest", key=str(n), payload={"n": n})

    agent(topic, name=name, retries=1)(handler)


def _produce(settings: Settings, topic: str, count: int) -> None:
    producer = make_producer(settings)
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=json.dumps({"n": i}).encode())
    assert producer.flush(30) == 0


def test_agent_replay_dry_run_dedup_and_rerun(
    agent_db: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("events")
    _register(unique, topic, {})
    try:
        _produce(agent_db, topic, 10)
        url = agent_db.require_database_url()
        empty = _snapshot(url)

        dry = _replay(agent_db, topic=topic, agent=unique, dry_run=True)
        assert dry.agent is not None and dry.agent.succeeded == 10
        rows = [row for event in dry.as_json()["events"] for row in event["outbox"]]
        assert sorted(row["payload"]["n"] for row in rows) == list(range(10))
        assert all(e["writes"] and "replay_effects" in e["writes"][0] for e in dry.as_json()["events"])
        assert _snapshot(url) == empty  # nothing written, claimed, recorded

        live = _replay(agent_db, topic=topic, agent=unique)  # the live path: first processing
        assert live.agent is not None and live.agent.succeeded == 10
        processed = _snapshot(url)
        assert len(processed["public.replay_effects"]) == 10 and len(processed["vigil.outbox"]) == 10

        again = _replay(agent_db, topic=topic, agent=unique)
        assert again.agent is not None and (again.agent.succeeded, again.agent.skipped) == (0, 10)
        assert _snapshot(url) == processed  # no new side effect

        dry_rerun = _replay(agent_db, topic=topic, agent=unique, dry_run=True, rerun=True)
        assert dry_rerun.agent is not None and dry_rerun.agent.succeeded == 10
        assert _snapshot(url) == processed

        rerun = _replay(agent_db, topic=topic, agent=unique, rerun=True)
        assert rerun.agent is not None and rerun.agent.succeeded == 10
        after = _snapshot(url)
        assert len(after["vigil.outbox"]) == 20 and len(after["public.replay_effects"]) == 20
        with psycopg.connect(url) as conn:
            per_n = conn.execute("SELECT n, count(*) FROM public.replay_effects GROUP BY n").fetchall()
            assert dict(per_n) == dict.fromkeys(range(10), 2)  # exactly one new side effect per event
            ids = [r[0] for r in conn.execute("SELECT event_id FROM vigil.processed_events").fetchall()]
        assert sum(f"#replay-{rerun.replay_id}" in e for e in ids) == 10
    finally:
        unregister(unique)


def test_dead_letter_redriven_after_fix_is_processed_exactly_once(
    agent_db: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("events")
    state = {"broken": True}
    _register(unique, topic, state)
    started = datetime.now(UTC) - timedelta(seconds=5)
    try:
        _produce(agent_db, topic, 3)
        url = agent_db.require_database_url()
        first = _replay(agent_db, topic=topic, agent=unique)  # as the live worker: fails, dead-letters
        assert first.agent is not None and first.agent.dead_lettered == 3
        with psycopg.connect(url) as conn:
            failed_ids = {
                r[0] for r in conn.execute("SELECT event_id FROM vigil.processed_events").fetchall()
            }
        assert len(failed_ids) == 3

        state["broken"] = False  # the handler is fixed
        redrive = _replay(agent_db, topic=DLQ, agent=unique, from_time=started.isoformat())
        assert redrive.agent is not None
        assert (redrive.agent.succeeded, redrive.agent.released) == (3, 3)
        with psycopg.connect(url) as conn:
            effects = conn.execute("SELECT event_id, n FROM public.replay_effects").fetchall()
            runs = conn.execute(
                "SELECT r.status FROM vigil.processed_events p JOIN vigil.runs r USING (run_id)"
            ).fetchall()
        assert sorted(n for _, n in effects) == [0, 1, 2]
        assert {e for e, _ in effects} == failed_ids  # under the ids they failed with
        assert [s for (s,) in runs] == ["succeeded"] * 3

        twice = _replay(agent_db, topic=DLQ, agent=unique, from_time=started.isoformat())
        assert twice.agent is not None and (twice.agent.succeeded, twice.agent.skipped) == (0, 3)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM public.replay_effects").fetchone() == (3,)
    finally:
        unregister(unique)
