"""Memory: a worker's resident set after 100,000 and after 1,000,000 events (x scale); flat is the goal.

One ``vigil worker -A bench.agentmods.route`` (the agent of ``bench_agents``: route by score, one
outbox row per event, relay off) on a fresh database and a 3-partition topic of the
``bench_agents`` events. The first 100,000 x scale events are produced before the worker starts;
once all are committed and the worker has been idle for a moment, its RSS (``VmRSS``) is read. Then
the other 900,000 x scale are produced (the worker consumes them as they arrive), and once all are
committed its RSS is read again. The growth between the two readings is the measure: what the
worker keeps per event (the ledger's table of processed ids holds up to 1,000,000 keys by design,
so some growth is expected there); the first reading includes start-up and warm-up.

Target (issue #14): growth from 100k to 1M events < 50 MB (aim < 10 MB). At another scale the
growth is also reported scaled linearly to 900,000 events (``RSS growth per 900k events``), which
is what the target judges: at ``--scale 1`` the two are the same.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench import procs
from bench.bench_agents import PARTITIONS, _produce
from bench.common import BenchContext, Measurement
from streams.catalog import TopicSpec
from streams.topics import ensure_topics

BENCH = "memory"
VARIANT = "vigil (1 process)"
FIRST = 100_000
TOTAL = 1_000_000
SETTLE_S = 2.0
MB = 1024 * 1024


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    n1 = max(1000, int(FIRST * ctx.scale))
    n2 = max(10 * n1, int(TOTAL * ctx.scale))
    tag = "bm" + uuid.uuid4().hex[:8]
    topic = f"bench.memory.{tag}"
    agent = "bench-memory"
    logdir = procs.log_dir("vigil-bench-memory-")
    log = logdir / "worker.log"
    ensure_topics(settings, [TopicSpec(topic, "bench_memory input", PARTITIONS)])
    print(f"  producing {n1:,} events …", flush=True)
    _produce(settings, topic, n1, tag)
    db_url = procs.fresh_database(settings, tag)
    env = procs.worker_env(
        settings,
        home=logdir,
        db_url=db_url,
        app_id=tag,
        extra={
            "VIGIL_BENCH_TOPIC": topic,
            "VIGIL_BENCH_AGENT": agent,
            "VIGIL_HTTP_PORT": str(procs.free_port()),
        },
    )
    proc = procs.spawn_worker("bench.agentmods.route", env, log)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:

            def done() -> int:
                # Succeeded runs, not processed_events rows: the worker prunes those once it has run
                # longer than the ledger window (procs.ledger_window, fixed when it started), which a
                # --scale 1 run on a loaded machine does (it then waited for rows already pruned).
                row = conn.execute(
                    "SELECT count(*) FROM vigil.runs WHERE agent = %s AND status = 'succeeded'", (agent,)
                ).fetchone()
                return int(row[0]) if row else 0

            started = time.monotonic()
            _wait(done, n1, proc, log, timeout=300 + n1 / 100)
            time.sleep(SETTLE_S)
            rss1 = procs.rss_bytes(proc.pid)
            first_s = time.monotonic() - started
            print(f"  RSS after {n1:,} events: {rss1 / MB:,.1f} MB; producing {n2 - n1:,} more …", flush=True)
            _produce(settings, topic, n2 - n1, tag, first=n1)
            _wait(done, n2, proc, log, timeout=300 + n2 / 100)
            time.sleep(SETTLE_S)
            rss2 = procs.rss_bytes(proc.pid)
            cpu = procs.cpu_seconds(proc.pid)
            total_s = time.monotonic() - started
        print(f"  RSS after {n2:,} events: {rss2 / MB:,.1f} MB", flush=True)
    finally:
        procs.stop(proc)
        procs.drop_database(settings, tag)
    return memory_rows(
        n1,
        n2,
        rss1,
        rss2,
        notes=f"{total_s:.0f}s in all ({first_s:.0f}s to the first reading); "
        f"worker CPU {cpu:.0f}s; load avg {os.getloadavg()[0]:.1f} at the end",
    )


def memory_rows(n1: int, n2: int, rss1: int, rss2: int, notes: str = "") -> list[Measurement]:
    return [
        Measurement(
            BENCH, VARIANT, "RSS after the first events", rss1 / MB, "MB", notes=f"after {n1:,} events"
        ),
        Measurement(BENCH, VARIANT, "RSS after all events", rss2 / MB, "MB", notes=f"after {n2:,} events"),
        Measurement(
            BENCH,
            VARIANT,
            "RSS growth",
            (rss2 - rss1) / MB,
            "MB",
            notes=f"from {n1:,} to {n2:,} events; {notes}",
        ),
        Measurement(
            BENCH,
            VARIANT,
            "RSS growth per 900k events",
            (rss2 - rss1) / MB * (TOTAL - FIRST) / (n2 - n1),
            "MB",
            notes=f"the growth over {n2 - n1:,} events, scaled linearly to the target's 900,000 (100k → 1M)",
        ),
    ]


def _wait(done: Callable[[], int], n: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_print = time.monotonic()
    while (count := done()) < n:
        procs.check_alive(proc, log, "memory worker")
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(
                f"memory worker: only {count:,}/{n:,} events after {timeout:.0f}s:\n{procs.tail(log)}"
            )
        if now - last_print > 15:
            print(f"    {count:,}/{n:,} events, RSS {procs.rss_bytes(proc.pid) / MB:,.1f} MB", flush=True)
            last_print = now
        time.sleep(0.5)
