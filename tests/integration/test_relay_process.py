"""The outbox relay as its own process under ``vigil up`` (``vigil relay``), against real processes.

``vigil up`` attaches to the session's stack (its database is a fresh one of this test) with
``VIGIL_CONNECTORS`` naming no outbox connector, so no Kafka Connect connector is applied and the
relay is Vigil's: the worker runs with ``VIGIL_OUTBOX_RELAY=false`` and the relay in a supervised
child of its own. Outbox rows (an agent's, or inserted directly as a backlog) reach their topic; the
ids on the topic are counted against the rows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import TopicPartition

from ops.services.procs import free_port
from ops.status import RELAYS_SQL, relay_entry, relay_process
from streams.catalog import outbox_topic
from streams.kafka import make_consumer
from streams.settings import Settings
from tests.integration.workers import (
    ROOT,
    VIGIL,
    assert_exactly_once,
    create_business_tables,
    produce_events,
    scalar,
    start_up,
    stop_up,
    wait_until,
)

pytestmark = pytest.mark.integration

RECORDER = "tests.integration.agentmods.recorder"


def _up_env(stack: Settings, database_url: str, home: Path, unique: str, topic: str) -> dict[str, str]:
    no_connectors = home / "no-connectors"
    no_connectors.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_HOME": str(home),
            "VIGIL_DATABASE_URL": database_url,
            "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
            "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "VIGIL_CONNECTORS": str(no_connectors),  # no connector: the outbox is Vigil's to relay
            "VIGIL_APP_ID": f"{unique}-app",
            "VIGIL_HTTP_PORT": str(free_port()),
            "VIGIL_BUILTIN_AGENTS": "false",
            "VIGIL_TEST_TOPIC": topic,
            "VIGIL_TEST_AGENT": f"{unique}-recorder",
            "VIGIL_TEST_AGGREGATE": f"{unique}-effects",
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
        }
    )
    if stack.connect_url is not None:
        env["VIGIL_CONNECT_URL"] = stack.connect_url
    return env


def _logs(home: Path) -> str:
    parts = [(home / "up.out").read_text()[-3000:]]
    for name in ("worker", "relay"):
        path = home / "logs" / f"{name}.log"
        parts.append(f"--- {name}.log\n{path.read_text()[-3000:] if path.exists() else ''}")
    return "\n".join(parts)


def _pid(text: str, child: str) -> int | None:
    found = re.findall(rf"^{child} started \(pid (\d+)\)", text, re.MULTILINE)
    return int(found[-1]) if found else None


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _topic_ids(stack: Settings, topic: str, timeout: float = 120.0) -> Counter[str]:
    """Every message's ``id`` header on ``topic``, from the beginning to the end offsets as of now."""
    consumer = make_consumer(stack, f"count-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        ends = {}
        for partition in metadata.topics[topic].partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        positions = dict.fromkeys(ends, 0)
        ids: Counter[str] = Counter()
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read {sum(ids.values())} of {sum(ends.values())} messages"
            for message in consumer.consume(1000, 1.0):
                if message.error() is not None:
                    continue
                positions[message.partition()] = (message.offset() or 0) + 1
                headers = dict(message.headers() or [])
                value = headers.get("id") or b""
                ids[value.decode() if isinstance(value, bytes) else value] += 1
        return ids
    finally:
        consumer.close()


def _relay_entries(database_url: str) -> list[dict[str, object]]:
    with psycopg.connect(database_url) as conn:
        return [relay_entry(*row) for row in conn.execute(RELAYS_SQL).fetchall()]


def _healthz(port: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503 still says which part is not ready
        body = exc.read()
    return dict(json.loads(body))


@pytest.mark.timeout(300)
def test_vigil_up_relays_from_its_own_process_exactly_once_and_stops_on_sigint(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    n = 1500
    topic = make_topic("orders", partitions=3)
    create_business_tables(fresh_database)
    produce_events(stack, topic, [(f"{unique}-{i}", {"n": i}) for i in range(n)])
    env = _up_env(stack, fresh_database, tmp_path, unique, topic)
    agent = env["VIGIL_TEST_AGENT"]
    out = tmp_path / "up.out"
    up = start_up(env, out, "-A", RECORDER, "--no-live")
    try:
        wait_until(lambda: _pid(out.read_text(), "relay") is not None, 120, "the relay child", up, out)
        text = out.read_text()
        worker_pid, relay_pid = _pid(text, "worker"), _pid(text, "relay")
        assert worker_pid is not None and relay_pid is not None and worker_pid != relay_pid
        assert _cmdline(relay_pid)[-1] == "relay", _cmdline(relay_pid)
        assert _cmdline(worker_pid)[-2:] == ["-A", RECORDER]
        assert _parent(relay_pid) == _parent(worker_pid) == up.pid  # both children of vigil up

        def all_relayed() -> bool:
            processed = scalar(
                fresh_database, "SELECT count(*) FROM vigil.processed_events WHERE agent = %s", agent
            )
            sent = scalar(fresh_database, "SELECT count(*) FROM vigil.outbox WHERE sent_at IS NOT NULL")
            return processed == n and sent == n

        try:
            wait_until(all_relayed, 180, f"{n} events processed and their outbox rows sent", up, out)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(tmp_path)}") from None
        # The heartbeat (what `vigil status` lists) names the relay process, not the worker.
        wait_until(lambda: bool(_relay_entries(fresh_database)), 30, "the relay heartbeat")
        [entry] = _relay_entries(fresh_database)
        assert entry["name"] == f"relay:{env['VIGIL_APP_ID']}" and entry["state"] == "ok"
        assert entry["runs_in"] == "vigil relay" and str(entry["worker"]).endswith(f":{relay_pid}")
        assert relay_process(entry).startswith("vigil relay ")
        # The worker relays nothing itself, and its /healthz does not miss the relay.
        health = _healthz(env["VIGIL_HTTP_PORT"])
        parts = health["parts"]
        assert isinstance(parts, dict) and "relay" not in parts, health

        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, _logs(tmp_path)
    finally:
        stop_up(up)
    text = out.read_text()
    assert "| worker running, relay running |" in text, text  # the plain live view (not a terminal)
    assert f"relay (pid {relay_pid}) stopped with exit code 0" in text, text
    assert f"worker (pid {worker_pid}) stopped with exit code 0" in text, text
    assert not Path(f"/proc/{relay_pid}").exists() and not Path(f"/proc/{worker_pid}").exists()
    assert "outbox rows published" in (tmp_path / "logs" / "relay.log").read_text()
    [entry] = _relay_entries(fresh_database)
    assert entry["state"] == "paused"  # a clean stop is not an outage

    assert_exactly_once(fresh_database, agent, n)
    outbox_ids = {str(i) for i in _column(fresh_database, "SELECT id FROM vigil.outbox")}
    on_topic = _topic_ids(stack, outbox_topic(env["VIGIL_TEST_AGGREGATE"]))
    assert len(outbox_ids) == n
    assert set(on_topic) == outbox_ids
    assert sum(on_topic.values()) == n, "a row was published twice without any crash"


def _column(database_url: str, sql: str) -> list[object]:
    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute(sql).fetchall()]


def _insert_backlog(database_url: str, aggregatetype: str, count: int, keys: int = 50) -> None:
    sql = "COPY vigil.outbox (id, aggregatetype, aggregateid, type, payload) FROM STDIN"
    with psycopg.connect(database_url) as conn, conn.cursor() as cur, cur.copy(sql) as copy:
        for i in range(count):
            copy.write_row(
                (uuid.uuid4(), aggregatetype, f"key-{i % keys}", "Thing.Happened", json.dumps({"n": i}))
            )


@pytest.mark.timeout(300)
def test_kill_9_of_the_relay_mid_backlog_loses_nothing_once_the_supervisor_restarts_it(
    stack: Settings, fresh_database: str, make_topic: Callable[..., str], unique: str, tmp_path: Path
) -> None:
    """The relay publishes, waits for the acks, then marks the rows sent in the same transaction: a
    kill -9 between the two leaves the round's rows unsent, and the restarted relay publishes them
    again (same ``id``: sinks and consumers drop the copy). So: every row on the topic at least
    once, every row marked sent, and copies only of rows of the rounds the kill interrupted."""
    n = 60_000
    topic = make_topic("orders", partitions=1)
    create_business_tables(fresh_database)
    env = _up_env(stack, fresh_database, tmp_path, unique, topic)
    aggregatetype = f"{unique}-backlog"
    out = tmp_path / "up.out"
    up = start_up(env, out, "-A", RECORDER, "--no-live")
    try:
        wait_until(lambda: _pid(out.read_text(), "relay") is not None, 120, "the relay child", up, out)
        relay_pid = _pid(out.read_text(), "relay")
        assert relay_pid is not None
        wait_until(lambda: bool(_relay_entries(fresh_database)), 60, "the relay's first beat", up, out)
        _insert_backlog(fresh_database, aggregatetype, n)

        def sent() -> int:
            return scalar(fresh_database, "SELECT count(*) FROM vigil.outbox WHERE sent_at IS NOT NULL")

        wait_until(lambda: sent() > 0, 60, "the relay to start on the backlog", up, out)
        os.kill(relay_pid, signal.SIGKILL)
        sent_at_kill = sent()
        assert sent_at_kill < n, "the relay finished the backlog before the kill: raise n"
        wait_until(
            lambda: "relay exited with -9; restarting" in out.read_text(), 30, "the supervisor", up, out
        )
        wait_until(lambda: "relay restarted" in out.read_text(), 60, "the relay's restart", up, out)
        try:
            wait_until(lambda: sent() == n, 180, f"all {n} rows sent after the restart", up, out)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(tmp_path)}") from None
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0, _logs(tmp_path)
    finally:
        stop_up(up)
    text = out.read_text()
    assert re.search(r"relay \(pid \d+\) stopped with exit code 0", text), text

    outbox_ids = {str(i) for i in _column(fresh_database, "SELECT id FROM vigil.outbox")}
    on_topic = _topic_ids(stack, outbox_topic(aggregatetype))
    copies = sum(on_topic.values()) - len(on_topic)
    assert len(outbox_ids) == n
    assert set(on_topic) == outbox_ids, f"{len(outbox_ids - set(on_topic))} rows never published"
    # At most the rounds in flight at the kill: one per lane (4), 1,000 rows each.
    assert copies <= 4 * 1000, f"{copies} copies"
    print(f"kill -9 at {sent_at_kill}/{n} rows sent; {copies} rows published twice (same id), none lost")


@pytest.mark.timeout(180)
def test_vigil_relay_by_hand_stops_on_sigterm_after_finishing_its_round(
    stack: Settings, fresh_database: str, unique: str, tmp_path: Path
) -> None:
    """A clean stop publishes and marks whole rounds: the ids on the topic are exactly the rows
    marked sent, each once; the rest stay unsent for the next relay."""
    n = 30_000
    env = _up_env(stack, fresh_database, tmp_path, unique, "unused")
    aggregatetype = f"{unique}-byhand"
    _insert_backlog(fresh_database, aggregatetype, n)
    log = tmp_path / "relay.log"
    with log.open("ab") as out:
        relay = subprocess.Popen([VIGIL, "relay"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:

        def sent() -> int:
            return scalar(fresh_database, "SELECT count(*) FROM vigil.outbox WHERE sent_at IS NOT NULL")

        wait_until(lambda: sent() > 0, 90, "the relay to publish", relay, log)
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait()
    assert "outbox rows published" in log.read_text()
    sent_ids = {
        str(i) for i in _column(fresh_database, "SELECT id FROM vigil.outbox WHERE sent_at IS NOT NULL")
    }
    on_topic = _topic_ids(stack, outbox_topic(aggregatetype))
    assert 0 < len(sent_ids) <= n
    assert set(on_topic) == sent_ids and sum(on_topic.values()) == len(sent_ids)
    [entry] = _relay_entries(fresh_database)
    assert entry["state"] == "paused" and entry["runs_in"] == "vigil relay"
    print(f"SIGTERM after {len(sent_ids)}/{n} rows: exactly those on the topic, once each")


@pytest.mark.timeout(60)
def test_vigil_relay_refuses_next_to_debeziums_outbox_router_naming_the_setting(tmp_path: Path) -> None:
    env = {
        "VIGIL_HOME": str(tmp_path),
        "VIGIL_CONNECTORS": str(ROOT / "connectors"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "COLUMNS": "300",
    }
    result = subprocess.run(
        [sys.executable, "-m", "ops", "relay"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert "outbox router relays vigil.outbox" in result.stderr and "VIGIL_CONNECTORS" in result.stderr
    assert not (tmp_path / "postgres").exists(), "it started a service before refusing"
