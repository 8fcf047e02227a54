"""CDC: Postgres commit → Debezium in Kafka Connect (the embedded worker) → Kafka, against the
Debezium embedded engine alone.

One connector (a copy of the packaged ``vigil-demo`` for a bench table, ``poll.interval.ms=10``)
is applied to Kafka Connect over its REST API, as ``vigil connectors apply`` does. After a warm-up
of 150,000 rows, then of bulk inserts like the measured ones until the JVMs' JIT compilers have
settled (:data:`JIT_SETTLED`; whatever the scale: the target compares warm JVMs, as they run in
production, not how far each JIT got):
- ``bulk insert throughput``: rows/s from the first commit of a bulk insert (50,000 x scale rows,
  5,000 per transaction) until the broker appended the last row (its ``LogAppendTime``: the topic
  is created so before the connector starts; only its end offset is polled meanwhile, so no
  consumer here takes CPU from the JVMs); the best of six such bulk inserts (all six are in
  the notes).
- ``steady 1,000 rows/s``: for 20 s x scale, 10 rows every 10 ms; per row, the time from its
  ``clock_timestamp()`` column (set inside the committing transaction) to when a consumer in this
  process sees it (it starts at the topic's end after the bulk inserts). Both clocks are this
  machine's; the consumer's own delay is included.

The peer (:mod:`bench.engine_alone`) runs the same connector settings in the Debezium embedded
engine, without Connect or Kafka, with a consumer that only counts records; it gets the same
warm-up and the same bulk inserts into a table of its own, measured the same way (first commit →
last row counted, best of six). Both run at once and their bulk inserts alternate (engine,
Connect, engine, …), so that the load of this shared machine, which drifts, weighs on both alike;
the engine is stopped before the steady phase. The Connect row's ratio is to that peer. Its
consumer gets Kafka Connect SourceRecords, unserialized; ``VIGIL_BENCH_ENGINE_FORMAT=json`` hands
it JSON strings instead (Kafka Connect's JsonConverter, as the Connect worker writes them to Kafka).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition
from psycopg import sql

from bench import procs
from bench.common import BenchContext, Measurement, percentile, with_ratio
from bench.engine_alone import FORMATS, EnginePeer, engine_config, rows_per_second
from connectors.config import ConnectorSpec, derive_connector, load_connector_file, slot_safe
from connectors.connect_client import ConnectClient
from connectors.database import drop_replication_slot, ensure_heartbeat_table
from ops.connectors_cli import for_connect
from ops.services import stack
from streams.catalog import TopicSpec
from streams.kafka import make_consumer
from streams.settings import Settings
from streams.topics import ensure_topics

BENCH = "cdc"
VARIANT = "kafka connect + debezium → kafka"
ENGINE = "debezium engine alone (counting consumer)"
BULK = "bulk insert throughput"
#: Rows inserted and read before the bulk inserts are timed. A fresh JVM needs them: the engine
#: alone, started anew, counted 4,700, 8,200, then 18,000 rows/s over its first three 12,500-row
#: bulk inserts after a 2,500-row warm-up. After 50,000 both were still speeding up through all
#: six rounds in most runs (session 16: Connect 5,974 → 24,500, the engine 13,356 → 29,930 rows/s,
#: each best at its last), so the ratio judged how far each JIT had got. After 150,000 on fresh
#: JVMs: Connect 15,467-20,526 and the engine 19,222 then 27,370-39,448, level from the second.
WARMUP_ROWS = 150_000
#: A warm-up round (one bulk insert per path, alternating, as measured) ends the warm-up when in
#: it the JIT compilers of all the JVMs on the two paths (Connect, Kafka, the engine) together kept
#: at most this many cores busy (their CPU seconds over the round's wall seconds). After 150,000
#: rows on fresh JVMs (session 20, every thread's CPU each second), Connect's compilers still took
#: 0.3-0.67 of a core through the measured rounds and the engine's under 0.02: the engine's smaller
#: code settles first, and on two cores the ratio judged how far Connect's JIT had got (Connect's
#: best round 28-43k rows/s on the same code in sessions 18-19, the engine's 45-55k). The broker's
#: compilers never fall silent (0.02-0.17 of a core in 5-second windows of a late warm-up), so the
#: limit is on the sum, not on each JVM's share of its own CPU (the broker's own CPU is small: its
#: share stayed at 20-56%).
JIT_SETTLED = 0.10
#: Warm-up rounds at most (each ≈ 2.5 s at scale 1); a run that stops here says so in its notes.
MAX_WARM_ROUNDS = 30
#: Bulk inserts per path. Both JVMs were still speeding up over the first rounds (a fresh Connect,
#: scale 1: 9,548, 16,681, 23,704, 23,930, 25,445, 33,790 rows/s; the engine then levelled off
#: near 40,000 from its fourth): with three, the ratio judged a Connect still warming up.
ROUNDS = 6
#: What the engine's consumer is handed, per ``VIGIL_BENCH_ENGINE_FORMAT``.
ENGINE_RECORDS = {"connect": "SourceRecords, unserialized", "json": "JSON strings from JsonConverter"}
VIGIL = Path(sys.executable).parent / "vigil"
PACKAGED = Path(__file__).resolve().parents[1] / "connectors" / "demo.json"


class _Reader(threading.Thread):
    """Reads the bench topic from ``start`` (an offset); records first arrival time per row id."""

    def __init__(self, settings: Settings, topic: str, start: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic, self.start_at = settings, topic, start
        self.arrivals: dict[int, tuple[float, str | None]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = make_consumer(
            self.settings,
            f"bench-{uuid.uuid4().hex[:8]}",
            **{"enable.auto.commit": False, "fetch.wait.max.ms": 5},
        )
        consumer.assign([TopicPartition(self.topic, 0, self.start_at)])
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

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.time() + timeout
        while len(self.arrivals) < count:
            if time.time() > deadline:
                raise RuntimeError(
                    f"only {len(self.arrivals)} of {count} rows were read back from Kafka in {timeout:.0f}s"
                )
            time.sleep(0.02)


class _Appended:
    """When the broker appended a row: the bench topic (one partition, ``LogAppendTime``) holds
    one record per inserted row, so ``n`` rows are in once its end offset reaches ``n``; the
    time is the broker's append time of record ``n - 1``. Only the end offset is polled while
    rows arrive: no consumer in this process competes with the JVMs for the CPU."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = make_consumer(
            settings, f"bench-{uuid.uuid4().hex[:8]}", **{"enable.auto.commit": False}
        )

    def end(self) -> int:
        return int(
            self.consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=10, cached=False)[1]
        )

    def wait_for(self, count: int, timeout: float) -> float:
        deadline = time.time() + timeout
        while (end := self.end()) < count:
            if time.time() > deadline:
                raise RuntimeError(f"only {end} of {count} rows reached Kafka in {timeout:.0f}s")
            time.sleep(0.01)
        self.consumer.assign([TopicPartition(self.topic, 0, count - 1)])
        while True:
            msg = self.consumer.poll(1.0)
            if msg is not None and not msg.error():
                break
            if time.time() > deadline:
                raise RuntimeError(f"record {count - 1} of {self.topic} could not be read in {timeout:.0f}s")
        row = int((json.loads(msg.value() or b"{}").get("after") or {}).get("id", -1))
        kind, millis = msg.timestamp()
        if row != count or kind != TIMESTAMP_LOG_APPEND_TIME:
            raise RuntimeError(
                f"record {count - 1} of {self.topic} is row {row} with timestamp type {kind}: expected row "
                f"{count} with the broker's append time (the topic is created with message.timestamp.type=LogAppendTime)"
            )
        return float(millis) / 1000

    def close(self) -> None:
        self.consumer.close()


def _create_topic(settings: Settings, topic: str) -> None:
    """The Connect path's topic, made before the connector: one partition, stamped by the broker."""
    config = {"message.timestamp.type": "LogAppendTime"}
    ensure_topics(settings, [TopicSpec(topic, "bench cdc: rows as Connect wrote them", 1, config)])


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
    bulk = max(1000, int(50_000 * ctx.scale))
    seconds = max(5.0, 20.0 * ctx.scale)
    return with_ratio(_measure(settings, WARMUP_ROWS, bulk, seconds), ENGINE)


def _bench_connector(tag: str, table: str) -> ConnectorSpec:
    return derive_connector(load_connector_file(PACKAGED)[0], f"{tag}-cdc", [f"public.{table}"])


@dataclass
class _Path:
    """One way from the table to a counted row: its table, and how to wait until ``n`` rows in
    all have arrived (returning when the last of them did)."""

    table: str
    wait_for: Callable[[int], float]
    rates: list[float] = field(default_factory=list)

    def run(self, url: str, first: int, count: int) -> float:
        """Insert ``count`` rows from id ``first``; rows/s from the first commit to the last arrival."""
        started = time.time()
        _insert(url, self.table, first, count)
        return rows_per_second(count, started, self.wait_for(first + count - 1))

    def bulk(self, url: str, first: int, count: int) -> None:
        self.rates.append(self.run(url, first, count))


@dataclass(frozen=True)
class JitReading:
    """When (``time.monotonic()``), and per JVM the CPU seconds its JIT compilers had used."""

    at: float
    seconds: dict[str, float]


def read_jit(pids: dict[str, int]) -> JitReading:
    return JitReading(time.monotonic(), {name: procs.jit_seconds(pid) for name, pid in pids.items()})


def jit_cores(before: JitReading, after: JitReading) -> dict[str, float]:
    """Per JVM read both times, the cores its JIT compilers kept busy in between: CPU seconds over
    wall seconds (never below 0: the CPU of a compiler thread that ended leaves the sum)."""
    wall = after.at - before.at
    if wall <= 0:
        raise ValueError(f"the second reading ({after.at}) is not after the first ({before.at})")
    return {
        name: max(0.0, seconds - before.seconds[name]) / wall
        for name, seconds in after.seconds.items()
        if name in before.seconds
    }


def jit_settled(cores: dict[str, float], limit: float = JIT_SETTLED) -> bool:
    return sum(cores.values()) <= limit


def cores_text(cores: dict[str, float]) -> str:
    if not cores:
        return "no JVM watched"
    return ", ".join(f"{name} {busy:.2f}" for name, busy in cores.items()) + " of a core"


@dataclass
class _WarmUp:
    """The warm-up rounds: in each, the cores each JVM's JIT compilers kept busy."""

    rounds: list[dict[str, float]] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return bool(self.rounds) and jit_settled(self.rounds[-1])

    def notes(self, rows: int) -> str:
        last = cores_text(self.rounds[-1]) if self.rounds else "none"
        if self.settled:
            how = f"until the JIT compilers kept at most {JIT_SETTLED:.2f} of a core busy"
        else:
            how = f"stopped at {MAX_WARM_ROUNDS} with the JIT compilers still busy"
        return f"warmed with {rows:,} rows and {len(self.rounds)} rounds, {how} (last: {last})"


def _jvm_pids(settings: Settings, peer: EnginePeer) -> dict[str, int]:
    """The JVMs on the two paths that this machine runs (an external Connect or Kafka is not watched)."""
    found = {
        "connect": stack.embedded_connect(settings).pid(),
        "kafka": stack.embedded_kafka(settings).pid(),
        "engine": peer.pid,
    }
    return {name: pid for name, pid in found.items() if pid is not None}


def bulk_notes(rates: Sequence[float]) -> str:
    """The rounds of a bulk measurement, for its notes."""
    return f"best of {len(rates)}: " + ", ".join(f"{r:,.0f}" for r in rates) + " rows/s"


def _measure(settings: Settings, warmup: int, bulk: int, seconds: float) -> list[Measurement]:
    """Both paths up at once, each on its own table: the connector in Kafka Connect (rows read back
    from Kafka here) and the same connector in the embedded engine. Their bulk inserts alternate, so
    that a change in the machine's load between rounds hits both; then the engine stops and the
    steady-rate latency is measured on Connect alone."""
    fmt = os.environ.get("VIGIL_BENCH_ENGINE_FORMAT", "connect")
    if fmt not in FORMATS:
        raise RuntimeError(f"VIGIL_BENCH_ENGINE_FORMAT={fmt} is not one of {', '.join(FORMATS)}")
    url = settings.require_database_url()
    connect_url = settings.connect_url
    if connect_url is None:
        raise RuntimeError("the cdc bench needs Kafka Connect: `vigil services up` or VIGIL_CONNECT_URL")
    tag = "bench" + uuid.uuid4().hex[:6]
    table, engine_table = f"{tag}_rows", f"{tag}_engine_rows"
    spec = _bench_connector(tag, table)
    engine_name = f"{tag}-engine"
    engine_slot = slot_safe(engine_name)
    engine_spec = _bench_connector(tag, engine_table)
    config = engine_config(
        for_connect(engine_spec, url).config,
        name=engine_name,
        slot=engine_slot,
        table=f"public.{engine_table}",
    )
    _create_table(url, table)
    _create_table(url, engine_table)
    if spec.heartbeat_table:
        ensure_heartbeat_table(url, spec.heartbeat_table)  # as `vigil connectors apply` does
    topic = f"{spec.topic_prefix}.public.{table}"
    _create_topic(settings, topic)
    appended = _Appended(settings, topic)
    reader: _Reader | None = None
    warm = _WarmUp()
    with ConnectClient(connect_url) as client:
        try:
            with EnginePeer(
                config,
                f"{engine_spec.topic_prefix}.public.{engine_table}",
                fmt=fmt,
                log=_log_dir() / "engine.log",
            ) as peer:
                client.put_config(for_connect(spec, url))
                peer.wait_polling()
                procs.wait_slot_active(url, engine_slot)
                procs.wait_slot_active(url, spec.slot_name)
                engine = _Path(engine_table, lambda n: peer.wait_for(n, timeout=300))
                connect = _Path(table, lambda n: appended.wait_for(n, timeout=300))
                for path in (engine, connect):
                    _insert(url, path.table, 1, warmup)
                    path.wait_for(warmup)
                jvms = _jvm_pids(settings, peer)
                first = warmup + 1
                while len(warm.rounds) < MAX_WARM_ROUNDS and not warm.settled:
                    before = read_jit(jvms)
                    for path in (engine, connect):
                        path.run(url, first, bulk)
                    first += bulk
                    warm.rounds.append(jit_cores(before, read_jit(jvms)))
                    print(
                        f"  warm-up round {len(warm.rounds)}: JIT compilers {cores_text(warm.rounds[-1])}",
                        flush=True,
                    )
                before = read_jit(jvms)
                for _ in range(ROUNDS):
                    engine.bulk(url, first, bulk)
                    connect.bulk(url, first, bulk)
                    first += bulk
                    print(
                        f"  round {len(connect.rates)}: Connect {connect.rates[-1]:,.0f} rows/s, engine {engine.rates[-1]:,.0f}",
                        flush=True,
                    )
                measured_jit = jit_cores(before, read_jit(jvms))
            _cleanup(url, engine_slot, engine_slot, None, engine_table)

            next_id = steady_first = first
            reader = _Reader(settings, topic, start=appended.end())
            reader.start()
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
            reader.wait_for(steady_rows, timeout=120)
            latencies = [
                (arrived - datetime.fromisoformat(committed).timestamp()) * 1000
                for row, (arrived, committed) in reader.arrivals.items()
                if row >= steady_first and committed
            ]
            achieved = steady_rows / seconds
        finally:
            appended.close()
            if reader is not None:
                reader.stop.set()
            client.delete(spec.name)
            _cleanup(url, spec.slot_name, spec.publication_name, spec.name, table)
            _cleanup(url, engine_slot, engine_slot, None, engine_table)
    notes = "poll.interval.ms=10; at-least-once (offsets committed every second)"
    jit = f"{warm.notes(warmup)}; JIT compilers in the measured rounds: {cores_text(measured_jit)}"
    return [
        Measurement(
            BENCH,
            VARIANT,
            BULK,
            max(connect.rates),
            "rows/s",
            notes=f"{bulk:,} rows, commit → appended by the broker (LogAppendTime); {bulk_notes(connect.rates)}; {jit}; {notes}",
        ),
        Measurement(
            BENCH,
            VARIANT,
            "latency p50 @ steady",
            percentile(latencies, 0.50),
            "ms",
            notes=f"{achieved:,.0f} rows/s for {seconds:.0f}s; clock_timestamp() → consumer, same machine",
        ),
        Measurement(BENCH, VARIANT, "latency p99 @ steady", percentile(latencies, 0.99), "ms"),
        Measurement(
            BENCH,
            ENGINE,
            BULK,
            max(engine.rates),
            "rows/s",
            notes=f"{bulk:,} rows, commit → counted by the engine's consumer ({ENGINE_RECORDS[fmt]}); "
            f"{bulk_notes(engine.rates)}; debezium-embedded, same connector settings, offsets in memory",
        ),
    ]


def _log_dir() -> Path:
    return procs.log_dir("vigil-bench-cdc-")


def _cleanup(url: str, slot: str, publication: str, heartbeat: str | None, table: str) -> None:
    drop_replication_slot(url, slot)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
        if heartbeat is not None:
            conn.execute("DELETE FROM public.vigil_heartbeat WHERE id = %s", (heartbeat,))
        conn.execute(f"DROP TABLE IF EXISTS public.{table}")
