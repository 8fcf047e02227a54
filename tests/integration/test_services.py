"""The embedded real services: Postgres for CDC, Apache Kafka, Kafka Connect, restarts after kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import TopicPartition

from ops.services import stack as stack_mod
from ops.services.postgres import check_database
from schemas.errors import ConfigurationError
from streams.kafka import make_consumer, make_producer
from streams.redact import mask_url
from streams.settings import Settings, load_settings

pytestmark = pytest.mark.integration

VIGIL = str(Path(sys.executable).parent / "vigil")


def _vigil(
    home: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_HOME"] = str(home)
    env.update(extra_env or {})
    return subprocess.run([VIGIL, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def test_postgres_runs_with_logical_wal(stack: Settings) -> None:
    assert check_database(stack.require_database_url()) == "logical"
    with psycopg.connect(stack.require_database_url()) as conn:
        slots = conn.execute("SHOW max_replication_slots").fetchone()
        senders = conn.execute("SHOW max_wal_senders").fetchone()
    assert slots is not None and int(slots[0]) >= 4
    assert senders is not None and int(senders[0]) >= 4


def test_produce_consume_round_trip_and_group_commit(
    stack: Settings, make_topic: Callable[..., str], unique: str
) -> None:
    topic = make_topic("roundtrip", partitions=3)
    producer = make_producer(stack)
    sent = {f"k{i}": f"v{i}" for i in range(30)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value, headers={"vigil-event-id": key})
    assert producer.flush(15) == 0

    group = f"{unique}-group"
    consumer = make_consumer(stack, group)
    consumer.subscribe([topic])
    received: dict[str, str] = {}
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            received[msg.key().decode()] = msg.value().decode()
            assert dict(msg.headers() or [])["vigil-event-id"] == msg.key()
            consumer.store_offsets(msg)
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        consumer.close()
    assert received == sent
    assert sum(tp.offset for tp in committed) == len(sent)

    # A new member of the same group starts after the committed offsets: nothing is redelivered.
    again = make_consumer(stack, group)
    again.subscribe([topic])
    try:
        redelivered = []
        deadline = time.monotonic() + 15
        assigned = False
        while time.monotonic() < deadline:
            msg = again.poll(0.5)
            assigned = assigned or bool(again.assignment())
            if msg is not None and not msg.error():
                redelivered.append(msg.key())
            if assigned and time.monotonic() > deadline - 10:
                break
    finally:
        again.close()
    assert assigned
    assert redelivered == []


def _broker_pid(home: Path) -> int:
    return int(json.loads((home / "kafka" / "kafka.json").read_text())["pid"])


def _connect_pid(home: Path) -> int:
    return int(json.loads((home / "connect" / "connect.json").read_text())["pid"])


def _postmaster_pid(home: Path) -> int:
    return int((home / "postgres" / "data" / "postmaster.pid").read_text().splitlines()[0])


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} still alive")


@pytest.mark.timeout(240)
def test_kill_9_then_services_up_brings_all_three_back_with_data(throwaway_home: Path) -> None:
    started = _vigil(throwaway_home, "services", "up", "--json")
    assert started.returncode == 0, started.stderr
    urls = json.loads(started.stdout)
    db_url, bootstrap, connect_url = (
        _vigil(throwaway_home, "services", "url", "--show-password").stdout.strip(),
        urls["kafka_bootstrap"],
        urls["connect_url"],
    )
    assert urls["connect"]["healthy"], urls
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE TABLE survivor (id int primary key, note text)")
        conn.execute("INSERT INTO survivor VALUES (1, 'committed before the crash')")

    pids = _postmaster_pid(throwaway_home), _broker_pid(throwaway_home), _connect_pid(throwaway_home)
    pg_pid, broker_pid, connect_pid = pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        _wait_gone(pid)

    down = _vigil(throwaway_home, "services", "status", "--json")
    assert down.returncode == 1
    report = json.loads(down.stdout)
    assert not any(report[name]["running"] for name in ("postgres", "kafka", "connect"))

    again = _vigil(throwaway_home, "services", "up", "--json")
    assert again.returncode == 0, again.stderr
    urls_after = json.loads(again.stdout)
    assert urls_after["database_url"] == mask_url(db_url), "Postgres keeps its port across restarts"
    assert urls_after["kafka_bootstrap"] == bootstrap, "the broker keeps its port across restarts"
    assert urls_after["connect_url"] == connect_url, "Connect keeps its port across restarts"
    assert all(urls_after[name]["healthy"] for name in ("postgres", "kafka", "connect")), urls_after
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT note FROM survivor WHERE id = 1").fetchone()
    assert row == ("committed before the crash",)
    assert _postmaster_pid(throwaway_home) != pg_pid
    assert _broker_pid(throwaway_home) != broker_pid
    assert _connect_pid(throwaway_home) != connect_pid

    stopped = _vigil(throwaway_home, "services", "down")
    assert stopped.returncode == 0
    assert all(name in stopped.stdout for name in ("connect", "kafka", "postgres")), stopped.stdout
    _wait_gone(_broker_pid(throwaway_home))
    _wait_gone(_connect_pid(throwaway_home))


@pytest.mark.timeout(120)
def test_up_is_idempotent_and_down_stops_only_what_vigil_started(throwaway_home: Path) -> None:
    settings = load_settings(home=throwaway_home)
    first = stack_mod.up(settings)
    pids = (_postmaster_pid(throwaway_home), _broker_pid(throwaway_home))
    # The broker's garbage collections are logged, as Kafka's own launch scripts do.
    assert "Using G1" in (throwaway_home / "kafka" / "kafka-gc.log").read_text()
    second = stack_mod.up(settings)
    assert (first.database_url, first.kafka_bootstrap) == (second.database_url, second.kafka_bootstrap)
    assert (_postmaster_pid(throwaway_home), _broker_pid(throwaway_home)) == pids

    # The broker's state file now names a process Vigil did not start (a reused pid, say).
    stack_mod.embedded_kafka(settings).stop()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = throwaway_home / "kafka" / "kafka.json"
        state.write_text(json.dumps({**json.loads(state.read_text()), "pid": bystander.pid}))
        assert stack_mod.down(settings) == ["postgres"]
        assert bystander.poll() is None, "down must not kill a process Vigil did not start"
    finally:
        bystander.kill()
        bystander.wait()


def test_external_stack_is_used_and_nothing_is_started(stack: Settings, throwaway_home: Path) -> None:
    result = _vigil(
        throwaway_home,
        "services",
        "up",
        "--json",
        extra_env={
            "VIGIL_DATABASE_URL": stack.require_database_url(),
            "VIGIL_KAFKA_BOOTSTRAP": stack.require_bootstrap(),
            "VIGIL_CONNECT_URL": str(stack.connect_url),
        },
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["database_url"] == mask_url(stack.require_database_url())
    assert report["kafka_bootstrap"] == stack.kafka_bootstrap
    assert not report["postgres"]["embedded"] and report["postgres"]["healthy"]
    assert not report["kafka"]["embedded"] and report["kafka"]["healthy"]
    assert not (throwaway_home / "postgres").exists()
    assert not (throwaway_home / "kafka").exists()
    assert not (throwaway_home / "connect").exists()


def test_a_kept_port_taken_by_another_process_is_reported_with_the_fix(throwaway_home: Path) -> None:
    kafka = stack_mod.embedded_kafka(load_settings(home=throwaway_home))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        kafka.save(port=squatter.getsockname()[1])
        with pytest.raises(ConfigurationError, match=r"port \d+ .* is taken by another process: stop that"):
            kafka.start()
    assert kafka.status().pid is None, "nothing was started"
