"""CDC: Postgres commit → Debezium (embedded, `vigil connectors run`) → Kafka.

One connector (a copy of the packaged ``vigil-demo`` for a bench table, ``poll.interval.ms=10``)
runs in its own process exactly as ``vigil connectors run`` does: at-least-once, each batch
flushed to Kafka before Debezium may commit its offsets. After a warm-up of 10,000 x scale rows:
- ``bulk insert throughput``: rows/s from the first commit of a bulk insert (50,000 x scale rows,
  5,000 per transaction) until the last row is read back from Kafka. Peer: the same connector in
  the bench process with a handler that only counts (``debezium engine alone``), i.e. what
  Debezium and the JVM give on this machine before Vigil's bridge and Kafka.
- ``steady 1,000 rows/s``: for 20 s x scale, 10 rows every 10 ms; per row, the time from its
  ``clock_timestamp()`` column (set inside the committing transaction) to when a consumer in this
  process sees it. Both clocks are this machine's; the consumer's own delay is included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from psycopg import sql

from bench.common import BenchContext, Measurement, with_ratio
from connectors.config import derive_connector, engine_properties, load_connector_file, parse_database_url
from streams.kafka import make_admin, make_consumer
from streams.settings import Settings

BENCH = "cdc"
VARIANT = "vigil connectors run → kafka"
BASELINE = "debezium engine alone"
BULK = "bulk insert throughput"
VIGIL = Path(sys.executable).parent / "vigil"
PACKAGED = Path(__file__).resolve().parents[1] / "connectors" / "demo.json"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Reader(threading.Thread):
    """Reads the bench topic from the beginning; records first arrival time per row id."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic = settings, topic
        self.arrivals: dict[int, tuple[float, str | None]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        admin = make_admin(self.settings)
        while (meta := admin.list_topics(timeout=10).topics.get(self.topic)) is None or not meta.partitions:
            if self.stop.wait(0.2):
                return
        consumer = make_consumer(
            self.settings,
            f"bench-{uuid.uuid4().hex[:8]}",
            **{"enable.auto.commit": False, "fetch.wait.max.ms": 5},
        )
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        try:
            while not self.stop.is_set():
                # poll, not consume(n, timeout): a batch call waits out its timeout to fill up
                msg = consumer.poll(0.1)
                now = time.time()
                if msg is not None and not msg.error() and (raw := msg.value()) is not None:
                    after = json.loads(raw).get("after") or {}
                    if "id" in after and after["id"] not in self.arrivals:
                        self.arrivals[int(after["id"])] = (now, after.get("committed_at"))
        finally:
            consumer.close()

    def wait_for(self, count: int, timeout: float) -> float:
        deadline = time.time() + timeout
        while len(self.arrivals) < count:
            if time.time() > deadline:
                raise RuntimeError(
                    f"only {len(self.arrivals)} of {count} rows reached Kafka in {timeout:.0f}s"
                )
            time.sleep(0.02)
        return max(at for at, _ in self.arrivals.values())


def _insert(url: str, table: str, first: int, count: int, per_tx: int = 5000) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for lo in range(first, first + count, per_tx):
            hi = min(lo + per_tx, first + count) - 1
            conn.execute(
                f"INSERT INTO public.{table} (id, payload) SELECT g, md5(g::text) FROM generate_series({lo}, {hi}) g"
            )


def _create_table(url: str, table: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE public.{table} (id bigint PRIMARY KEY, "
            "committed_at timestamptz NOT NULL DEFAULT clock_timestamp(), payload text)"
        )


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    warmup = max(1000, int(10_000 * ctx.scale))
    bulk = max(1000, int(50_000 * ctx.scale))
    seconds = max(5.0, 20.0 * ctx.scale)
    vigil = _vigil(settings, warmup, bulk, seconds)
    baseline = _engine_alone(settings, warmup, bulk)
    return with_ratio([baseline, *vigil], BASELINE)


def _vigil(settings: Settings, warmup: int, bulk: int, seconds: float) -> list[Measurement]:
    """`vigil connectors run` in its own process; rows read back from Kafka here."""
    url = settings.require_database_url()
    tag = "bench" + uuid.uuid4().hex[:6]
    table = f"{tag}_rows"
    spec = derive_connector(load_connector_file(PACKAGED)[0], f"{tag}-cdc", [f"public.{table}"])
    home = Path(tempfile.mkdtemp(prefix="vigil-bench-cdc-"))
    file = home / "connectors.json"
    file.write_text(json.dumps([spec.as_connect_json()]))
    _create_table(url, table)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        {
            "VIGIL_HOME": str(home),
            "VIGIL_DATABASE_URL": url,
            "VIGIL_KAFKA_BOOTSTRAP": settings.require_bootstrap(),
        }
    )
    log = (home / "run.log").open("wb")
    proc = subprocess.Popen(
        [str(VIGIL), "connectors", "run", str(file)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    reader = _Reader(settings, f"cdc.public.{table}")
    try:
        _wait_slot(url, spec.slot_name, proc)
        reader.start()
        _insert(url, table, 1, warmup)  # a running connector's JVM is warm
        reader.wait_for(warmup, timeout=300)
        started = time.time()
        _insert(url, table, warmup + 1, bulk)
        last = reader.wait_for(warmup + bulk, timeout=300)
        throughput = bulk / (last - started)

        next_id = steady_first = warmup + bulk + 1
        with psycopg.connect(url, autocommit=True) as conn:
            tick = time.perf_counter()
            end = tick + seconds
            while tick < end:
                conn.execute(
                    f"INSERT INTO public.{table} (id, payload) SELECT g, 'x' FROM generate_series({next_id}, {next_id + 9}) g"
                )
                next_id += 10
                tick += 0.010
                delay = tick - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        steady_rows = next_id - steady_first
        reader.wait_for(next_id - 1, timeout=120)
        latencies = [
            (arrived - datetime.fromisoformat(committed).timestamp()) * 1000
            for row, (arrived, committed) in reader.arrivals.items()
            if row >= steady_first and committed
        ]
        achieved = steady_rows / seconds
    finally:
        reader.stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        _cleanup(url, spec.slot_name, spec.publication_name, spec.name, table)
        shutil.rmtree(home, ignore_errors=True)
    notes = "poll.interval.ms=10; at-least-once (Kafka ack before offset commit)"
    return [
        Measurement(
            BENCH,
            VARIANT,
            BULK,
            throughput,
            "rows/s",
            notes=f"{bulk:,} rows, commit → read from Kafka; {notes}",
        ),
        Measurement(
            BENCH,
            VARIANT,
            "latency p50 @ steady",
            _percentile(latencies, 0.50),
            "ms",
            notes=f"{achieved:,.0f} rows/s for {seconds:.0f}s; clock_timestamp() → consumer, same machine",
        ),
        Measurement(BENCH, VARIANT, "latency p99 @ steady", _percentile(latencies, 0.99), "ms"),
    ]


def _engine_alone(settings: Settings, warmup: int, bulk: int) -> Measurement:
    """The same connector in this process with a handler that only counts: Debezium's own ceiling."""
    from connectors.engine import start_jvm

    url = settings.require_database_url()
    tag = "benchbase" + uuid.uuid4().hex[:6]
    table = f"{tag}_rows"
    spec = derive_connector(load_connector_file(PACKAGED)[0], f"{tag}-cdc", [f"public.{table}"])
    _create_table(url, table)
    home = Path(tempfile.mkdtemp(prefix="vigil-bench-cdc-"))
    start_jvm(home)
    from connectors import _jvm

    seen = [0]
    last = [0.0]

    @_jvm.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class Counter:
        @_jvm._override
        def handleBatch(self, records: Any, committer: Any) -> None:
            for record in records:
                committer.markProcessed(record)
            committer.markBatchFinished()
            seen[0] += len(records)
            last[0] = time.time()

        @_jvm._override
        def supportsTombstoneEvents(self) -> bool:
            return True

    engine = _jvm.build_engine(
        engine_properties(spec, parse_database_url(url)),
        Counter(),
        _jvm.CompletionCallback(lambda ok, message, error: None),
    )
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        _wait_slot(url, spec.slot_name, None)
        _insert(url, table, 1, warmup)
        _wait_count(seen, warmup)
        started = time.time()
        _insert(url, table, warmup + 1, bulk)
        _wait_count(seen, warmup + bulk)
        throughput = bulk / (last[0] - started)
    finally:
        engine.close()
        thread.join(30)
        _cleanup(url, spec.slot_name, spec.publication_name, spec.name, table)
        shutil.rmtree(home, ignore_errors=True)
    return Measurement(
        BENCH, BASELINE, BULK, throughput, "rows/s", notes="same connector, count-only handler, no Kafka"
    )


def _wait_count(seen: list[int], count: int, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while seen[0] < count:
        if time.time() > deadline:
            raise RuntimeError(f"only {seen[0]} of {count} rows reached the handler")
        time.sleep(0.02)


def _wait_slot(url: str, slot: str, proc: subprocess.Popen[bytes] | None, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.time() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError("vigil connectors run exited early")
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.3)
    raise RuntimeError(f"replication slot {slot} never became active")


def _cleanup(url: str, slot: str, publication: str, name: str, table: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(20):
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is None or not row[0]:
                break
            time.sleep(0.5)
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        )
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
        conn.execute(
            "DELETE FROM vigil.debezium_offsets WHERE starts_with(offset_key, %s)",
            (json.dumps([name], separators=(",", ":"))[:-1] + ",",),
        )
        conn.execute("DELETE FROM public.vigil_heartbeat WHERE id = %s", (name,))
        conn.execute(f"DROP TABLE IF EXISTS public.{table}")
