"""Real Postgres → real Debezium (embedded, in a `vigil connectors run` process) → real broker.

Each test's connectors are copies of the packaged ones with their own name, slot, publication and
tables, so the ``cdc.public.<table>`` topics are this test's own. One engine process serves the
change, outbox, heartbeat and status tests; the restart test has its own, which it kills -9.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from psycopg import sql

from connectors.config import ConnectorSpec, derive_connector, load_connector_file
from streams.eventids import cdc_event_id
from streams.kafka import make_admin, make_consumer
from streams.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VIGIL = Path(sys.executable).parent / "vigil"
HEARTBEAT_MS = "1000"


def packaged(name: str) -> ConnectorSpec:
    specs = {s.name: s for p in sorted((ROOT / "connectors").glob("*.json")) for s in load_connector_file(p)}
    return specs[name]


def copy_connector(template: str, name: str, tables: list[str]) -> ConnectorSpec:
    spec = derive_connector(packaged(template), name, tables)
    return spec.with_config({"heartbeat.interval.ms": HEARTBEAT_MS})


# -- the engine process ------------------------------------------------------------------


@dataclass
class EngineProcess:
    stack: Settings
    home: Path
    file: Path
    specs: list[ConnectorSpec]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(
            {
                "VIGIL_HOME": str(self.home),
                "VIGIL_DATABASE_URL": self.stack.require_database_url(),
                "VIGIL_KAFKA_BOOTSTRAP": self.stack.require_bootstrap(),
                "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "VIGIL_CONNECTORS": str(self.file),
            }
        )
        return env

    def start(self) -> None:
        self.starts += 1
        log = self.home / f"run-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(VIGIL), "connectors", "run", str(self.file)],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )

    def wait_streaming(self, timeout: float = 120.0) -> None:
        """Until every connector's slot exists and is in use."""
        names = {s.slot_name for s in self.specs}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            with psycopg.connect(self.stack.require_database_url(), autocommit=True) as conn:
                active = {
                    r[0]
                    for r in conn.execute(
                        "SELECT slot_name FROM pg_replication_slots WHERE active"
                    ).fetchall()
                }
            if names <= active:
                return
            time.sleep(0.5)
        raise AssertionError(f"slots {names} not active in {timeout}s\n{self.output()}")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs if p.exists()
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VIGIL), *args], env=self.env(), capture_output=True, text=True, timeout=60, check=False
        )


def cleanup_database(stack: Settings, specs: list[ConnectorSpec], tables: list[str]) -> None:
    with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
        for spec in specs:
            for _ in range(20):  # a killed walsender releases its slot a moment later
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (spec.slot_name,)
                ).fetchone()
                if row is None or not row[0]:
                    break
                time.sleep(0.5)
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (spec.slot_name,),
            )
            conn.execute(
                sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(spec.publication_name))
            )
            conn.execute(
                "DELETE FROM vigil.debezium_offsets WHERE starts_with(offset_key, %s)",
                (json.dumps([spec.name], separators=(",", ":"))[:-1] + ",",),
            )
            conn.execute("DELETE FROM public.vigil_heartbeat WHERE id = %s", (spec.name,))
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def launch(stack: Settings, home: Path, specs: list[ConnectorSpec]) -> EngineProcess:
    file = home / "connectors.json"
    file.write_text(json.dumps([s.as_connect_json() for s in specs], indent=2))
    engine = EngineProcess(stack, home, file, specs)
    engine.start()
    engine.wait_streaming()
    return engine


def new_home() -> Path:
    home = Path(f"/tmp/vigil-cdc-{uuid.uuid4().hex[:8]}")
    home.mkdir(mode=0o755)
    return home


# -- reading topics ---------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    headers: dict[str, str]
    at: float


def read_topic(
    stack: Settings, topic: str, done: Callable[[list[Received]], bool], timeout: float = 60.0
) -> list[Received]:
    """Every message of ``topic`` from the beginning, until ``done(messages)`` or the timeout.

    Partitions are assigned directly (no group join) and nothing trusts the high watermark.
    """
    deadline = time.monotonic() + timeout
    admin = make_admin(stack)
    while True:
        meta = admin.list_topics(timeout=10).topics.get(topic)
        if meta is not None and meta.partitions:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} never appeared")
        time.sleep(0.3)
    consumer = make_consumer(stack, f"read-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    got: list[Received] = []
    try:
        while not done(got):
            if time.monotonic() > deadline:
                break
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                raw = msg.value()
                got.append(
                    Received(
                        msg.topic() or topic,
                        msg.partition() or 0,
                        msg.offset() or 0,
                        msg.key(),
                        None if raw is None else json.loads(raw),
                        {k: (v or b"").decode() for k, v in (msg.headers() or [])},
                        time.time(),
                    )
                )
    finally:
        consumer.close()
    return got


def lsn(conn: psycopg.Connection[Any], query: str, *args: object) -> int:
    row = conn.execute(f"SELECT pg_wal_lsn_diff(({query}), '0/0')::bigint", args).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


# -- one engine for changes, outbox, heartbeats and status --------------------------------


@dataclass(frozen=True)
class Shared:
    engine: EngineProcess
    orders: str
    quiet: str
    aggregate: str
    cdc: ConnectorSpec
    quiet_spec: ConnectorSpec
    outbox: ConnectorSpec
    no_heartbeat: ConnectorSpec


@pytest.fixture(scope="module")
def shared(stack: Settings) -> Iterator[Shared]:
    tag = "t" + uuid.uuid4().hex[:8]
    orders, quiet, unbeaten = f"{tag}_orders", f"{tag}_quiet", f"{tag}_unbeaten"
    with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{orders} (id int PRIMARY KEY, status text, amount numeric(10,2))")
        conn.execute(f"ALTER TABLE public.{orders} REPLICA IDENTITY FULL")
        conn.execute(f"CREATE TABLE public.{quiet} (id int PRIMARY KEY, note text)")
        conn.execute(f"CREATE TABLE public.{unbeaten} (id int PRIMARY KEY, note text)")
    # the control: a quiet table's connector without heartbeats (nor the heartbeat table)
    control = copy_connector("vigil-demo", f"{tag}-noheartbeat", [f"public.{unbeaten}"])
    control = ConnectorSpec(
        control.name,
        {
            **{k: v for k, v in control.config.items() if k != "heartbeat.action.query"},
            "heartbeat.interval.ms": "0",
            "table.include.list": f"public.{unbeaten}",
        },
    )
    specs = [
        copy_connector("vigil-demo", f"{tag}-cdc", [f"public.{orders}"]),
        copy_connector("vigil-demo", f"{tag}-quiet", [f"public.{quiet}"]),
        copy_connector("vigil-outbox", f"{tag}-outbox", ["vigil.outbox"]),
        control,
    ]
    home = new_home()
    engine = None
    try:
        engine = launch(stack, home, specs)
        yield Shared(engine, orders, quiet, f"{tag}agg", *specs)
        assert engine.stop() == 0, engine.output()  # SIGTERM stops cleanly
    finally:
        if engine is not None and engine.proc is not None and engine.proc.poll() is None:
            engine.proc.kill()
            engine.proc.wait()
        cleanup_database(stack, specs, [f"public.{orders}", f"public.{quiet}", f"public.{unbeaten}"])
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.timeout(180)
def test_insert_update_delete_reach_the_cdc_topic(stack: Settings, shared: Shared) -> None:
    with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
        conn.execute(f"INSERT INTO public.{shared.orders} VALUES (1, 'new', 10.50)")
        conn.execute(f"UPDATE public.{shared.orders} SET status = 'paid' WHERE id = 1")
        conn.execute(f"DELETE FROM public.{shared.orders} WHERE id = 1")

    topic = f"cdc.public.{shared.orders}"
    got = read_topic(stack, topic, lambda msgs: len(msgs) >= 4, timeout=60)
    assert len(got) == 4, got
    create, update, delete, tombstone = got  # one key: one partition, in order
    assert create.value["op"] == "c"
    assert create.value["before"] is None
    assert (create.value["after"]["id"], create.value["after"]["status"]) == (1, "new")
    assert update.value["op"] == "u"
    assert update.value["before"]["status"] == "new"
    assert update.value["after"]["status"] == "paid"
    assert delete.value["op"] == "d"
    assert delete.value["before"]["status"] == "paid"
    assert delete.value["after"] is None
    assert tombstone.value is None
    assert all(json.loads(m.key or b"{}") == {"id": 1} for m in got)
    for m in (create, update, delete):
        source = m.value["source"]
        assert (source["schema"], source["table"]) == ("public", shared.orders)
        assert m.headers["vigil-event-id"] == cdc_event_id(
            shared.cdc.name,
            "public",
            shared.orders,
            (m.key or b"").decode(),
            lsn=source["lsn"],
            snapshot=False,
        )
        assert len(m.headers["vigil-trace-id"]) == 32
    assert tombstone.headers["vigil-event-id"] == delete.headers["vigil-event-id"] + ":tombstone"
    assert len({m.headers["vigil-event-id"] for m in got}) == 4


@pytest.mark.timeout(180)
def test_outbox_insert_is_routed_by_aggregatetype(stack: Settings, shared: Shared) -> None:
    outbox_id = str(uuid.uuid4())
    with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO vigil.outbox (id, aggregatetype, aggregateid, type, payload, trace_id)"
            " VALUES (%s, %s, 'order-42', 'order.paid', %s, 'trace-abc')",
            (outbox_id, shared.aggregate, json.dumps({"order": 42, "total": 9.5})),
        )
    got = read_topic(stack, f"vigil.outbox.{shared.aggregate}", lambda msgs: len(msgs) >= 1, timeout=60)
    assert len(got) == 1
    event = got[0]
    assert event.key == b"order-42"
    assert event.value == {"order": 42, "total": 9.5}
    assert event.headers["id"] == outbox_id
    assert event.headers["vigil-event-id"] == outbox_id
    assert event.headers["vigil-trace-id"] == "trace-abc"
    assert event.headers["type"] == "order.paid"


@pytest.mark.timeout(180)
def test_quiet_slot_advances_while_another_table_is_busy(stack: Settings, shared: Shared) -> None:
    url = stack.require_database_url()
    slot_lsn = "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s"
    with psycopg.connect(url, autocommit=True) as conn:
        quiet_before = lsn(conn, slot_lsn, shared.quiet_spec.slot_name)
        busy_from = lsn(conn, "SELECT pg_current_wal_lsn()")
        row = 1000
        busy_until = time.monotonic() + 6  # several heartbeat intervals and offset flushes
        while time.monotonic() < busy_until:
            with conn.transaction():
                for _ in range(20):
                    row += 1
                    conn.execute(f"INSERT INTO public.{shared.orders} VALUES (%s, 'busy', 1)", (row,))
            time.sleep(0.05)
        quiet_after = lsn(conn, slot_lsn, shared.quiet_spec.slot_name)
        control_after = lsn(conn, slot_lsn, shared.no_heartbeat.slot_name)
    assert quiet_after > busy_from, f"quiet slot stayed at {quiet_before} while WAL moved past {busy_from}"
    # without heartbeats the same kind of slot pins the WAL written by the busy table
    assert control_after <= busy_from
    # the quiet table itself produced nothing, and heartbeat-table rows are filtered out
    topics = make_admin(stack).list_topics(timeout=10).topics
    assert f"cdc.public.{shared.quiet}" not in topics
    assert "cdc.public.vigil_heartbeat" not in topics


@pytest.mark.timeout(120)
def test_status_shows_running_connectors_and_slot_lag(shared: Shared) -> None:
    deadline = time.monotonic() + 30
    while True:
        result = shared.engine.cli("connectors", "status", "--json")
        healths = {h["name"]: h for h in json.loads(result.stdout)}
        if healths[shared.cdc.name]["last_event_at"] is not None or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(healths) == {
        shared.cdc.name,
        shared.quiet_spec.name,
        shared.outbox.name,
        shared.no_heartbeat.name,
    }
    for health in healths.values():
        assert health["mode"] == "embedded"
        assert health["running"] is True
        assert health["state"] == "running"
        assert isinstance(health["slot_lag_bytes"], int) and health["slot_lag_bytes"] >= 0
        assert health["slot_active"] is True
    assert healths[shared.cdc.name]["last_event_at"] is not None


# -- kill -9 in the middle of 10,000 inserts --------------------------------------------------


INITIAL_ROWS = 100
STREAMED_ROWS = 10_000


@pytest.mark.timeout(300)
def test_kill_9_mid_stream_loses_nothing_and_does_not_resnapshot(stack: Settings) -> None:
    tag = "t" + uuid.uuid4().hex[:8]
    table = f"{tag}_rows"
    spec = copy_connector("vigil-demo", f"{tag}-restart", [f"public.{table}"])
    url = stack.require_database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE public.{table} (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"
        )
        conn.execute(f"INSERT INTO public.{table} (id) SELECT generate_series(1, {INITIAL_ROWS})")
    topic = f"cdc.public.{table}"
    home = new_home()
    engine = None
    inserted = 0
    try:
        engine = launch(stack, home, [spec])
        read_topic(stack, topic, lambda msgs: len(msgs) >= INITIAL_ROWS, timeout=90)
        # one streamed row through, then past an offset flush: the snapshot is recorded as done
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO public.{table} (id) VALUES (0)")
        read_topic(stack, topic, lambda msgs: any(_row_id(m) == 0 for m in msgs), timeout=60)
        time.sleep(2.5)

        def insert_rows() -> None:
            nonlocal inserted
            with psycopg.connect(url, autocommit=True) as conn:
                for start in range(INITIAL_ROWS + 1, INITIAL_ROWS + STREAMED_ROWS + 1, 50):
                    end = min(start + 49, INITIAL_ROWS + STREAMED_ROWS)
                    conn.execute(f"INSERT INTO public.{table} (id) SELECT generate_series({start}, {end})")
                    inserted = end - INITIAL_ROWS
                    time.sleep(0.01)

        writer = threading.Thread(target=insert_rows)
        writer.start()
        while inserted < STREAMED_ROWS // 2:
            time.sleep(0.01)
        killed_at = inserted
        engine.kill()
        engine.start()
        writer.join(120)
        assert inserted == STREAMED_ROWS
        expected = set(range(INITIAL_ROWS + STREAMED_ROWS + 1))
        got = read_topic(stack, topic, lambda msgs: expected <= {_row_id(m) for m in msgs}, timeout=150)
        seen = {_row_id(m) for m in got}
        assert expected <= seen, (
            f"missing {len(expected - seen)} rows (killed at {killed_at})\n{engine.output()}"
        )
        by_row: dict[int, set[str]] = {}
        for m in got:
            if m.value is not None:
                by_row.setdefault(_row_id(m), set()).add(m.headers["vigil-event-id"])
        assert all(len(ids) == 1 for ids in by_row.values()), "a duplicate carries a different event id"
        snapshot_reads = [m for m in got if m.value is not None and m.value["op"] == "r"]
        assert len(snapshot_reads) == INITIAL_ROWS, "the restart snapshotted again"
        assert {_row_id(m) for m in snapshot_reads} == set(range(1, INITIAL_ROWS + 1))
        assert engine.stop() == 0, engine.output()
    finally:
        if engine is not None and engine.proc is not None and engine.proc.poll() is None:
            engine.proc.kill()
            engine.proc.wait()
        cleanup_database(stack, [spec], [f"public.{table}"])
        shutil.rmtree(home, ignore_errors=True)


def _row_id(message: Received) -> int:
    return int(json.loads(message.key or b"{}")["id"])
