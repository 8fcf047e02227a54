"""The drift router through the broker: Vigil's ``drift-router`` agent next to a plain loop (issue #10).

One run, one broker: 200,000 x scale ``DriftEvent`` records (Avro through :mod:`schemas.codec`, as
:mod:`streams.drift_publish` writes them: keyed by fingerprint, the id in ``vigil-event-id``) on one
3-partition topic; 300 fingerprints over 3 sources, 70% warning, 20% critical, 10% resolved, event
time advancing 0.5 s per event (each fingerprint every ~150 s: cooldowns, escalations, inhibitions
and resolutions all happen). Each variant reads them all with its own consumer group and writes to
its own two tier topics:

- ``loop (plain confluent-kafka)``: :mod:`bench.peers.drift_loop`: decode, the same pure
  :func:`streams.drift_router.route` with its state in a dict, produce to the tier topic, flush,
  commit the offsets. No database.
- ``vigil (1 process)``: ``vigil worker -A bench.agentmods.drift``: the built-in router's handler
  on the bench topic, in the real unit of work: its incidents and a decision row per event in
  Postgres (``vigil.drift_incidents``, ``vigil.drift_decisions``, a fresh database), a ledger
  record and a run per event, the routed events sent before the offsets are committed.

Measurement, as in ``bench_agents``: every 0.2 s this process counts what is done (Vigil: rows of
``vigil.drift_decisions``; the loop: the offsets its group committed); t0 is the first poll that
sees any, t1 the first that sees all N; decisions/s is (N - count at t0) / (t1 - t0). The ratio
Vigil / loop is reported. How many events each routed to each tier is in the notes: the two may
differ a little, because inhibition looks at other fingerprints' incidents, whose events sit in
other partitions and interleave differently in each run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition

from bench import procs
from bench.common import BenchContext, Measurement
from bench.procs import cpu_seconds as _cpu_seconds
from bench.procs import drop_database as _drop_database
from bench.procs import fresh_database as _fresh_database
from bench.procs import tail as _tail
from schemas.codec import Codec
from streams import headers
from streams.catalog import TopicSpec
from streams.drift_events import drift_record
from streams.kafka import client_config, make_producer
from streams.settings import Settings
from streams.topics import ensure_topics

BENCH = "drift"
EVENTS = 200_000
PARTITIONS = 3
FINGERPRINTS = 300
SOURCES = ("prometheus", "grafana", "detector")
POLL_S = 0.2
ROOT = Path(__file__).resolve().parents[1]
VIGIL = Path(sys.executable).parent / "vigil"

LOOP = "loop (plain confluent-kafka)"
VIGIL_1 = "vigil (1 process)"


@dataclass
class Outcome:
    rate: float
    startup: float
    counted: int
    seconds: float
    routed: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    n = max(1000, int(EVENTS * ctx.scale))
    tag = "bd" + uuid.uuid4().hex[:8]
    topic = f"bench.drift.{tag}"
    load = os.getloadavg()
    ensure_topics(settings, [TopicSpec(topic, "bench_drift input", PARTITIONS)])
    size = _produce(settings, topic, n, tag)
    logdir = procs.log_dir("vigil-bench-drift-")
    outcomes = {
        LOOP: _run_loop(settings, topic, n, tag, logdir),
        VIGIL_1: _run_vigil(settings, topic, n, tag, logdir),
    }
    for label, out in outcomes.items():
        print(f"  {label}: {out.rate:,.0f} decisions/s, startup {out.startup:.1f}s", flush=True)
    return _rows(outcomes, n, size, load)


# -- the events ---------------------------------------------------------------------------


def _severity(i: int) -> str:
    bucket = i * 7919 % 100
    return "warning" if bucket < 70 else "critical" if bucket < 90 else "resolved"


def _record(tag: str, i: int, start: datetime) -> dict[str, object]:
    k = i % FINGERPRINTS
    return drift_record(
        source=SOURCES[k % len(SOURCES)],
        metric=f"metric-{k % 30}",
        value=400.0 + i % 97,
        severity=_severity(i),
        labels={"service": f"svc-{k % 20}", "instance": f"i-{k}"},
        observed_at=start + timedelta(seconds=i * 0.5),
        statistic="zscore",
        score=3.0 + i % 5,
        event_id=f"{tag}-{i}",
    )


def _produce(settings: Settings, topic: str, n: int, tag: str) -> float:
    """Fill the topic as :class:`streams.drift_publish.DriftPublisher` does; return the mean size."""
    codec = Codec.from_registry_url(settings.schema_registry_url)
    producer = make_producer(settings, **{"linger.ms": 20})
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    total = 0
    for i in range(n):
        record = _record(tag, i, start)
        value = codec.encode("DriftEvent", record)
        total += len(value)
        event_id = str(record["id"]).encode()
        producer.produce(
            topic,
            key=str(record["fingerprint"]).encode(),
            value=value,
            headers=[(headers.EVENT_ID, event_id), (headers.TRACE_ID, event_id)],
        )
        if i % 50_000 == 49_999:
            producer.flush(60)
    if producer.flush(60):
        raise RuntimeError(f"could not produce the {n} bench drift events to {topic}")
    return total / n


# -- the variants ---------------------------------------------------------------------------


def _tier_topics(settings: Settings, prefix: str) -> dict[str, str]:
    tiers = {tier: f"{prefix}.{tier}" for tier in ("warning", "critical")}
    ensure_topics(settings, [TopicSpec(t, "bench_drift output", PARTITIONS) for t in tiers.values()])
    return tiers


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _run_loop(settings: Settings, topic: str, n: int, tag: str, logdir: Path) -> Outcome:
    group = f"{tag}_loop"
    tiers = _tier_topics(settings, f"{topic}.loop")
    argv = [sys.executable, "-m", "bench.peers.drift_loop", "--bootstrap", settings.require_bootstrap()]
    argv += ["--topic", topic, "--group", group]
    argv += ["--warning-topic", tiers["warning"], "--critical-topic", tiers["critical"]]
    log = logdir / "loop.log"
    offsets = Consumer({**client_config(settings), "group.id": group, "enable.auto.commit": False})
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    def committed() -> int:
        return sum(max(0, tp.offset) for tp in offsets.committed(partitions, timeout=10))

    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, env=_env(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            outcome = _measure(LOOP, committed, n, proc, log, timeout=120 + n / 500)
            outcome.cpu = _cpu_seconds(proc.pid)
        finally:
            procs.stop(proc)
        outcome.routed = {tier: _end_offsets(offsets, t) for tier, t in tiers.items()}
        return outcome
    finally:
        offsets.close()


def _run_vigil(settings: Settings, topic: str, n: int, tag: str, logdir: Path) -> Outcome:
    name = f"{tag}_v1"
    agent = "bench-drift-router-v1"
    tiers = _tier_topics(settings, f"{topic}.v1")
    db_url = _fresh_database(settings, name)
    log = logdir / "v1.log"
    env = _env()
    env.update(
        {
            "VIGIL_HOME": str(logdir),
            "VIGIL_DATABASE_URL": db_url,
            "VIGIL_KAFKA_BOOTSTRAP": settings.require_bootstrap(),
            "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "VIGIL_APP_ID": name,
            "VIGIL_OUTBOX_RELAY": "false",
            "VIGIL_BUILTIN_AGENTS": "false",
            "VIGIL_BENCH_TOPIC": topic,
            "VIGIL_BENCH_AGENT": agent,
            "VIGIL_BENCH_WARNING_TOPIC": tiers["warning"],
            "VIGIL_BENCH_CRITICAL_TOPIC": tiers["critical"],
        }
    )
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:

            def decisions() -> int:
                row = conn.execute("SELECT count(*) FROM vigil.drift_decisions").fetchone()
                return int(row[0]) if row else 0

            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [str(VIGIL), "worker", "-A", "bench.agentmods.drift"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            try:
                # generous: ~55 decisions/s at scale 0.05 with the shared 2-core machine at load ~20
                outcome = _measure(VIGIL_1, decisions, n, proc, log, timeout=120 + n / 20)
                outcome.cpu = _cpu_seconds(proc.pid)
            finally:
                procs.stop(proc)
            rows = conn.execute(
                "SELECT coalesce(tier, 'none'), count(*) FROM vigil.drift_decisions GROUP BY 1"
            ).fetchall()
            outcome.routed = {str(tier): int(count) for tier, count in rows}
            if sum(outcome.routed.values()) != n:
                raise RuntimeError(f"{VIGIL_1}: {sum(outcome.routed.values())} decisions, expected {n}")
        return outcome
    finally:
        _drop_database(settings, name)


def _measure(
    label: str, count: Callable[[], int], n: int, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> Outcome:
    spawned = time.monotonic()
    t0: float | None = None
    c0 = 0
    while True:
        now = time.monotonic()
        done = count()
        if t0 is None and done > 0:
            t0, c0 = now, done
        if done >= n and t0 is not None:
            if now <= t0:
                raise RuntimeError(f"{label}: all {n} events in one poll; raise --scale to measure")
            return Outcome((n - c0) / (now - t0), t0 - spawned, n - c0, now - t0)
        if proc.poll() is not None:
            raise RuntimeError(f"{label}: process exited ({proc.returncode}) at {done}/{n}:\n{_tail(log)}")
        if now - spawned > timeout:
            raise RuntimeError(f"{label}: only {done}/{n} after {timeout:.0f}s:\n{_tail(log)}")
        time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))


def _end_offsets(consumer: Consumer, topic: str) -> int:
    total = 0
    for p in range(PARTITIONS):
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high
    return total


# -- the table -----------------------------------------------------------------------------


def _rows(
    outcomes: dict[str, Outcome], n: int, size: float, load: tuple[float, float, float]
) -> list[Measurement]:
    loop = outcomes[LOOP]
    rows: list[Measurement] = []
    for label, out in outcomes.items():
        routed = ", ".join(f"{tier} {count:,}" for tier, count in sorted(out.routed.items()))
        notes = f"{out.counted:,} events in {out.seconds:.1f}s; routed: {routed}; process CPU {out.cpu:.0f}s"
        if label == LOOP:
            notes += (
                f"; {n:,} events of {size:.0f} B, {PARTITIONS} partitions, {FINGERPRINTS} fingerprints; "
                f"load avg {load[0]:.2f} at start"
            )
            rows.append(Measurement(BENCH, label, "decisions/s", out.rate, "decisions/s", notes=notes))
        else:
            rows.append(
                Measurement(
                    BENCH,
                    label,
                    "decisions/s",
                    out.rate,
                    "decisions/s",
                    ratio_to=LOOP,
                    ratio=out.rate / loop.rate,
                    target="reported",
                    notes=notes + "; state and a decision row per event in Postgres",
                )
            )
    for label, out in outcomes.items():
        rows.append(
            Measurement(
                BENCH,
                label,
                "startup s",
                out.startup,
                "s",
                notes="spawn → first decision (imports, group join); not in decisions/s"
                if label == LOOP
                else "",
            )
        )
    return rows
