"""Real Postgres → real Debezium in the embedded Kafka Connect worker → real Kafka.

Connectors are applied with ``vigil connectors apply`` over Connect's REST API, exactly as in
production. Each test's connectors are copies of the packaged ones with their own name, slot,
publication and tables, so the ``cdc.public.<table>`` topics are this test's own. The kill test
kills the session's Connect worker with SIGKILL and brings it back with ``vigil services up``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from psycopg import sql

from connectors.config import ConnectorSpec, derive_connector, load_connector_file
from streams.eventids import cdc_event_id, is_snapshot
from streams.kafka import make_admin, make_consumer
from streams.settings import Settings
from tests.integration.workers import agent_group, produce_events, start_worker, stop, wait_group_caught_up

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


# -- connectors on the session's Connect --------------------------------------------------


@dataclass
class Applied:
    """Connectors applied to the session's embedded Connect from one file, through the CLI."""

    stack: Settings
    home: Path
    file: Path
    specs: list[ConnectorSpec]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        # The session's home: its embedded Connect is the one applied to; Postgres and Kafka are
        # named, so nothing else is started.
        env.update(
            {
                "VIGIL_HOME": str(self.stack.home),
                "VIGIL_DATABASE_URL": self.stack.require_database_url(),
                "VIGIL_KAFKA_BOOTSTRAP": self.stack.require_bootstrap(),
                "VIGIL_CONNECTORS": str(self.file),
            }
        )
        return env

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VIGIL), *args], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def apply(self, *extra: str) -> None:
        done = self.cli("connectors", "apply", str(self.file), *extra)
        assert done.returncode == 0, done.stdout + done.stderr

    def statuses(self) -> dict[str, dict[str, Any]]:
        done = self.cli("connectors", "status", "--json")
        return {h["name"]: h for h in json.loads(done.stdout)}

    def wait_streaming(self, timeout: float = 120.0) -> None:
        """Until every connector's slot exists and is in use."""
        names = {s.slot_name for s in self.specs}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
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

    def output(self) -> str:
        log = self.stack.home / "connect" / "connect.log"
        tail = log.read_text(errors="replace")[-6000:] if log.exists() else "(no connect.log)"
        return f"statuses: {json.dumps(self.statuses(), indent=1)[:3000]}\n--- connect.log\n{tail}"

    def remove(self) -> None:
        self.cli("connectors", "remove", str(self.file))


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
            conn.execute("DELETE FROM public.vigil_heartbeat WHERE id = %s", (spec.name,))
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def launch(stack: Settings, home: Path, specs: list[ConnectorSpec]) -> Applied:
    file = home / "connectors.json"
    file.write_text(json.dumps([s.as_connect_json() for s in specs], indent=2))
    applied = Applied(stack, home, file, specs)
    applied.apply()
    applied.wait_streaming()
    return applied


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


# -- one set of connectors for changes, outbox, heartbeats and status -----------------------


@dataclass(frozen=True)
class Shared:
    applied: Applied
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
    applied = Applied(stack, home, home / "connectors.json", specs)
    try:
        applied = launch(stack, home, specs)
        yield Shared(applied, orders, quiet, f"{tag}agg", *specs)
    finally:
        applied.remove()
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
        assert source["name"] == "cdc"  # the topic prefix: the id's connector part under Connect
        # Connect writes no vigil-event-id: agents derive it from the source position.
        assert "vigil-event-id" not in m.headers
    assert len({event_id(m) for m in (create, update, delete)}) == 3


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


@pytest.mark.timeout(300)
def test_a_workers_outbox_rows_are_published_once_by_the_outbox_connector(
    stack: Settings, shared: Shared, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    """Issue #8: with the outbox router running in Connect (and the worker's relay off), every outbox
    row an agent commits reaches its topic once, though each event was delivered twice."""
    topic = make_topic("via-connect", partitions=2)
    aggregate = f"{shared.aggregate}w"
    total = 200
    produce_events(stack, topic, [(f"evt-{n}", {"n": n}) for n in range(total)], copies=2)
    log = tmp_path / "worker.log"
    worker = start_worker(
        stack,
        stack.require_database_url(),
        topic=topic,
        app_id=unique,
        agent_name=unique,
        log_path=log,
        extra_env={"VIGIL_TEST_AGGREGATE": aggregate, "VIGIL_OUTBOX_RELAY": "false"},
    )
    try:
        wait_group_caught_up(stack, agent_group(unique, unique), topic, timeout=180)
    finally:
        stop(worker)
    # A marker committed after the agent's rows: Debezium publishes in commit order, so once the
    # marker is on the topic every earlier row is too, and any second copy would be there as well.
    marker = str(uuid.uuid4())
    with psycopg.connect(stack.require_database_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO vigil.outbox (id, aggregatetype, aggregateid, type, payload) "
            "VALUES (%s, %s, 'marker', 'marker', '{}')",
            (marker, aggregate),
        )
    got = read_topic(
        stack,
        f"vigil.outbox.{aggregate}",
        lambda msgs: any(m.headers.get("id") == marker for m in msgs),
        timeout=120,
    )
    ids = [m.headers["id"] for m in got if m.headers.get("id") != marker]
    assert len(ids) == total and len(set(ids)) == total, (len(ids), len(set(ids)))
    with psycopg.connect(stack.require_database_url()) as conn:
        row = conn.execute(
            "SELECT count(*), count(sent_at) FROM vigil.outbox WHERE aggregatetype = %s AND type <> 'marker'",
            (aggregate,),
        ).fetchone()
    assert row == (total, 0), "the rows were published by Connect, not by a worker relay"


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
        result = shared.applied.cli("connectors", "status", "--json")
        healths = {h["name"]: h for h in json.loads(result.stdout)}
        if result.returncode == 0 or time.monotonic() > deadline:
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
        assert health["mode"] == "connect"
        assert health["running"] is True
        assert health["state"] == "RUNNING"
        assert isinstance(health["slot_lag_bytes"], int) and health["slot_lag_bytes"] >= 0
        assert health["slot_active"] is True


# -- kill -9 in the middle of 10,000 inserts --------------------------------------------------


INITIAL_ROWS = 100
STREAMED_ROWS = 10_000


def _connect_pid(stack: Settings) -> int:
    return int(json.loads((stack.home / "connect" / "connect.json").read_text())["pid"])


@pytest.mark.timeout(420)
def test_kill_9_of_connect_mid_stream_loses_nothing_and_does_not_resnapshot(stack: Settings) -> None:
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
    applied = Applied(stack, home, home / "connectors.json", [spec])
    inserted = 0
    try:
        applied = launch(stack, home, [spec])
        read_topic(stack, topic, lambda msgs: len(msgs) >= INITIAL_ROWS, timeout=90)
        # One streamed row through, and its offset committed (Debezium confirms the slot's LSN
        # only on an offset commit): from here on a restart must not snapshot again.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO public.{table} (id) VALUES (0)")
            row_lsn = lsn(conn, "SELECT pg_current_wal_lsn()")
        read_topic(stack, topic, lambda msgs: any(_row_id(m) == 0 for m in msgs), timeout=60)
        _wait_confirmed(url, spec.slot_name, row_lsn)

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
        pid = _connect_pid(stack)
        os.kill(pid, signal.SIGKILL)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_HOME"] = str(stack.home)
        up = subprocess.run(
            [str(VIGIL), "services", "up"], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert _connect_pid(stack) != pid
        writer.join(120)
        assert inserted == STREAMED_ROWS
        expected = set(range(INITIAL_ROWS + STREAMED_ROWS + 1))
        got = read_topic(stack, topic, lambda msgs: expected <= {_row_id(m) for m in msgs}, timeout=240)
        seen = {_row_id(m) for m in got}
        assert expected <= seen, (
            f"missing {len(expected - seen)} rows (killed at {killed_at})\n{applied.output()}"
        )
        by_row: dict[int, set[str]] = {}
        for m in got:
            if m.value is not None:
                by_row.setdefault(_row_id(m), set()).add(event_id(m))
        assert all(len(ids) == 1 for ids in by_row.values()), "a duplicate carries a different event id"
        snapshot_reads = [m for m in got if m.value is not None and m.value["op"] == "r"]
        assert len(snapshot_reads) == INITIAL_ROWS, "the restart snapshotted again"
        assert {_row_id(m) for m in snapshot_reads} == set(range(1, INITIAL_ROWS + 1))
        status = applied.statuses()[spec.name]
        assert status["running"] and status["state"] == "RUNNING", status
    finally:
        applied.remove()
        cleanup_database(stack, [spec], [f"public.{table}"])
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.timeout(300)
def test_a_failed_task_is_restarted_by_apply(stack: Settings) -> None:
    """A task that failed (its slot was held by another client) runs again after `apply --restart`."""
    tag = "t" + uuid.uuid4().hex[:8]
    table = f"{tag}_fail"
    spec = copy_connector("vigil-demo", f"{tag}-fail", [f"public.{table}"]).with_config(
        # Fail fast instead of retrying the held slot for a minute.
        {"slot.max.retries": "1", "slot.retry.delay.ms": "500", "errors.max.retries": "0"}
    )
    url = stack.require_database_url()
    home = new_home()
    applied = Applied(stack, home, home / "connectors.json", [spec])
    applied.file.write_text(json.dumps([spec.as_connect_json()]))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY)")
        # The publication first, then the slot: pgoutput reads the publication as of each change it
        # decodes, and a change older than the publication (any other test's write in between)
        # made the holder fail with "publication does not exist", leave the slot for 5 s and let
        # the connector take it (both other orders failed that way now and then).
        conn.execute(f'CREATE PUBLICATION "{spec.publication_name}" FOR TABLE public.{table}')
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (spec.slot_name,))
    # Another client holds the slot: the connector's task cannot stream from it.
    holder = subprocess.Popen(
        [
            "pg_recvlogical",
            "-d",
            url,
            "--slot",
            spec.slot_name,
            "--start",
            "-o",
            "proto_version=1",
            "-o",
            f"publication_names={spec.publication_name}",
            "-f",
            "/dev/null",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_slot_active(url, spec.slot_name, True)
        applied.apply()
        failed = _wait_status(applied, spec.name, lambda h: "failed tasks" in h["detail"])
        assert not failed["running"], failed
        holder.terminate()
        holder.wait(10)
        _wait_slot_active(url, spec.slot_name, False)
        applied.apply("--restart")
        running = _wait_status(applied, spec.name, lambda h: h["running"] and h["slot_active"])
        assert running["state"] == "RUNNING"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"INSERT INTO public.{table} VALUES (7)")
        got = read_topic(stack, f"cdc.public.{table}", lambda msgs: len(msgs) >= 1, timeout=60)
        assert [_row_id(m) for m in got] == [7]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        applied.remove()
        cleanup_database(stack, [spec], [f"public.{table}"])
        shutil.rmtree(home, ignore_errors=True)


def _wait_status(
    applied: Applied, name: str, done: Callable[[dict[str, Any]], bool], timeout: float = 120.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = applied.statuses()[name]
        if done(health):
            return health
        time.sleep(1.0)
    raise AssertionError(f"{name} never reached the expected state: {health}\n{applied.output()}")


def _wait_slot_active(url: str, slot: str, active: bool, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
        if row is not None and bool(row[0]) == active:
            return
        time.sleep(0.2)
    raise AssertionError(f"slot {slot} never became {'active' if active else 'inactive'}")


def _wait_confirmed(url: str, slot: str, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as conn:
            if (
                lsn(conn, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = %s", slot)
                >= at_least
            ):
                return
        time.sleep(0.2)
    raise AssertionError(f"slot {slot} never confirmed LSN {at_least}")


def event_id(message: Received) -> str:
    """The id an agent derives for a Connect-written change event (no vigil-event-id header)."""
    source = message.value["source"]
    return cdc_event_id(
        str(source["name"]),
        str(source["schema"]),
        str(source["table"]),
        (message.key or b"").decode(),
        lsn=int(source["lsn"]) if source.get("lsn") is not None else None,
        snapshot=is_snapshot(source.get("snapshot")),
    )


def _row_id(message: Received) -> int:
    return int(json.loads(message.key or b"{}")["id"])
