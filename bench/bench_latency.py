"""Latency: a row committed in Postgres → an agent's side effect of it committed (CDC vs polling).

Each variant gets a fresh database with a source table and a sink table. The bench inserts rows
into the source at a steady 1,000 rows/s (``VIGIL_BENCH_LATENCY_RATE``; 10 ms ticks) for
20 s x scale (at least 5 s), after a warm-up of 200 rows that must have gone all the way through.
A worker's warm-up starts once its agent's consumer group is stable with all its consumers: the
second consumer of an agent joins after the first, and the rebalance it causes (every partition
stops for a moment) is a start-up cost, not the steady state the target is about. After the
warm-up the steady rows wait for a quiet machine (:func:`bench.procs.wait_quiet`: under 0.6 of a
core busy for 3 s in a row, 90 s at most; the wait is printed). Right after ``bench cdc``, with no
pause after the warm-up, a full run's first six seconds held its worst latencies (p99 350 ms, the
other seconds mostly under 140 ms), and a ``bench cdc latency`` run gave p99 444 ms; with the wait,
three such runs gave 47.5, 47.5 and 50.3 ms, each after the shortest wait (3 s).
Then the rows come at the measured rate for ``WARMUP_AT_RATE_S`` (5 s) before the measured ones,
as a warm-up phase at the target rate (OpenMessaging Benchmark's drivers do the same, for a minute):
200 rows at once do not warm a connector up for 1,000 rows/s. The first run after Kafka Connect
started showed why: Debezium read the first three seconds' rows late (``commit → Debezium read``
p99 761 ms; Connect acknowledged 52, 580 and 724 rows in those seconds, then caught up), and the
next run on the same Connect, no longer cold, had a p99 of 64 ms. The warm-up's worst latencies per
second are printed and its p99 and max are in the notes; only the rows after it are in the
percentiles.
For every source row the variant writes one sink row with the same id, and the latency of a row is
``sink committed_at - source committed_at``, both Postgres timestamps of the same server:

- the source row's ``committed_at`` is ``clock_timestamp()`` when it is inserted, by a single
  autocommit ``INSERT`` of the tick's rows (its commit follows within microseconds);
- the sink row's is set by a deferred constraint trigger (``INITIALLY DEFERRED``, so it runs at
  ``COMMIT``) to ``clock_timestamp()``: the time of the side effect's commit, not of its ``INSERT``
  (``track_commit_timestamp`` would need a restart of the shared cluster).

Variants, one after the other:

- ``vigil, poll.interval.ms=10``: the packaged connector (a copy of ``connectors/demo.json`` for the
  source table, ``snapshot.mode=no_data``) in the embedded Kafka Connect, then ``vigil worker -A
  bench.agentmods.sink``: an agent whose side effect is one outbox row per inserted row
  (``ctx.emit``, written set-based by the unit of work); a deferred trigger the bench puts on
  ``vigil.outbox`` copies the row's id into the sink table at that commit;
- ``vigil, Debezium default poll.interval.ms``: the same without the connector's ``poll.interval.ms``
  (Debezium's default, 500 ms);
- ``polling every 1 s``: :mod:`bench.peers.poll_table`, a process that selects the new source rows
  every second and inserts the same sink rows: no Kafka, no Debezium;
- ``vigil, ctx.session row, poll.interval.ms=10`` (only with ``VIGIL_BENCH_VARIANTS=session``): the
  first variant with the agent writing the sink row itself through ``ctx.session``.

- ``vigil, Faust's delivery, poll.interval.ms=10``: the first variant with ``VIGIL_DELIVERY=faust``.

``VIGIL_BENCH_VARIANTS`` (slugs ``fast``, ``faust``, ``default``, ``poll``, ``session``, comma-separated)
picks variants.

Target (issue #14): Vigil's p99 at 1,000 rows/s ≤ 100 ms (aim ≤ 50 ms).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from agents.feed import feed_group
from bench import procs
from bench.common import BenchContext, Measurement, percentile
from connectors.config import ConnectorSpec, derive_connector, load_connector_file
from connectors.connect_client import ConnectClient
from connectors.database import drop_replication_slot, ensure_heartbeat_table
from ops.connectors_cli import for_connect
from streams.catalog import TopicSpec
from streams.settings import Settings
from streams.topics import ensure_topics

BENCH = "latency"
PACKAGED = Path(__file__).resolve().parents[1] / "connectors" / "demo.json"
TICK_S = 0.010
WARMUP_ROWS = 200
#: Seconds of rows at the measured rate before the measured ones (their latencies are printed and
#: kept in the notes, not in the percentiles): see the module's docstring.
WARMUP_AT_RATE_S = 5.0

VIGIL_FAST = "vigil, poll.interval.ms=10"
VIGIL_FAUST = "vigil, Faust's delivery, poll.interval.ms=10"
VIGIL_SESSION = "vigil, ctx.session row, poll.interval.ms=10"
VIGIL_DEFAULT = "vigil, Debezium default poll.interval.ms"
POLLING = "polling every 1 s"


@dataclass(frozen=True)
class Variant:
    label: str
    slug: str
    #: ``poll.interval.ms`` for the connector; None: Debezium's default; no connector when ``polling``.
    poll_interval_ms: str | None = None
    polling: bool = False
    #: How the agent writes its row (:mod:`bench.agentmods.sink`): ``emit`` or ``session``.
    mode: str = "emit"
    #: ``VIGIL_DELIVERY`` of the worker.
    delivery: str = "batch"


VARIANTS = (
    Variant(VIGIL_FAST, "fast", poll_interval_ms="10"),
    Variant(VIGIL_FAUST, "faust", poll_interval_ms="10", delivery="faust"),
    Variant(VIGIL_DEFAULT, "default"),
    Variant(POLLING, "poll", polling=True),
    Variant(VIGIL_SESSION, "session", poll_interval_ms="10", mode="session"),
)
#: Run only when named in ``VIGIL_BENCH_VARIANTS``: at ≈50-100 events/s it cannot keep up with
#: 1,000 rows/s, and draining its backlog would take most of the suite's time.
OPT_IN = frozenset({"session"})


@dataclass(frozen=True)
class Outcome:
    latencies_ms: list[float]
    rate: float
    seconds: float
    #: The latencies of the rows of the warm-up at the measured rate (not in the percentiles).
    warmup_ms: list[float] = field(default_factory=list)
    #: CPU seconds of the agent's process (worker or poller) from the first steady row to the last sunk.
    cpu_s: float = 0.0
    #: ``cpu_s`` by part of the process (:func:`bench.procs.cpu_split`).
    cpu_split: dict[str, float] = field(default_factory=dict)
    #: Where the time went (``emit`` variants): "stage p50/p99" for each stage of a row's way.
    stages: str = ""
    #: Percent of the machine's CPU the hypervisor gave to other guests, per second of the run.
    steal_pct: list[float] = field(default_factory=list)


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    if settings.connect_url is None:
        raise RuntimeError("the latency bench needs Kafka Connect: `vigil services up` or VIGIL_CONNECT_URL")
    rate = float(os.environ.get("VIGIL_BENCH_LATENCY_RATE", "1000"))
    seconds = max(5.0, 20.0 * ctx.scale)
    tag = "bl" + uuid.uuid4().hex[:8]
    logdir = procs.log_dir("vigil-bench-latency-")
    outcomes: dict[str, Outcome] = {}
    wanted = {v.strip() for v in os.environ.get("VIGIL_BENCH_VARIANTS", "").split(",") if v.strip()}
    for variant in (v for v in VARIANTS if v.slug in wanted or (not wanted and v.slug not in OPT_IN)):
        print(f"  {variant.label}: {rate:,.0f} rows/s for {seconds:.0f}s …", flush=True)
        out = _run_variant(settings, variant, f"{tag}_{variant.slug}", rate, seconds, logdir)
        outcomes[variant.label] = out
        print(
            f"  {variant.label}: p50 {percentile(out.latencies_ms, 0.5):,.1f} ms, "
            f"p99 {percentile(out.latencies_ms, 0.99):,.1f} ms",
            flush=True,
        )
    return latency_rows(outcomes)


def latency_rows(outcomes: dict[str, Outcome]) -> list[Measurement]:
    """p50, p99 and max per variant; the Vigil variants' with their ratio to the polling peer."""
    rows: list[Measurement] = []
    for label, out in outcomes.items():
        for metric, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            value = percentile(out.latencies_ms, q)
            row = Measurement(BENCH, label, f"commit → side effect {metric}", value, "ms")
            peer = outcomes.get(POLLING)
            if label != POLLING and peer is not None:
                base = percentile(peer.latencies_ms, q)
                row = replace(row, ratio_to=POLLING, ratio=value / base if base else None)
            if metric == "p50":
                row = replace(
                    row,
                    notes=f"{len(out.latencies_ms):,} rows at {out.rate:,.0f} rows/s for {out.seconds:.0f}s; "
                    f"its process's CPU {out.cpu_s * 1e6 / max(1, len(out.latencies_ms)):,.0f} µs per row"
                    + procs.split_text(out.cpu_split, len(out.latencies_ms))
                    + "; "
                    "Postgres clock_timestamp() of both commits"
                    + (
                        f"; after {len(out.warmup_ms):,} warm-up rows at the same rate "
                        f"(their p99 {percentile(out.warmup_ms, 0.99):,.1f} ms, max "
                        f"{percentile(out.warmup_ms, 1.0):,.1f} ms)"
                        if out.warmup_ms
                        else ""
                    )
                    + (f"; stages p50/p99 ms: {out.stages}" if out.stages else "")
                    + _steal_text(out.steal_pct),
                )
            rows.append(row)
    return rows


# -- one variant ----------------------------------------------------------------------------


def _run_variant(
    settings: Settings, variant: Variant, name: str, rate: float, seconds: float, logdir: Path
) -> Outcome:
    source, sink = f"{name}_src", f"{name}_sink"
    db_url = procs.fresh_database(settings, name)
    spec: ConnectorSpec | None = None
    client = ConnectClient(settings.connect_url or "")
    proc: subprocess.Popen[bytes] | None = None
    log = logdir / f"{variant.slug}.log"
    try:
        _create_tables(db_url, source, sink)
        if variant.polling:
            argv = [sys.executable, "-m", "bench.peers.poll_table", "--database-url", db_url]
            argv += ["--source", source, "--sink", sink]
            proc = procs.spawn(argv, procs.worker_env(settings, home=logdir, db_url=db_url, app_id=name), log)
        else:
            spec = _connector(name, source, variant.poll_interval_ms)
            if spec.heartbeat_table:
                ensure_heartbeat_table(db_url, spec.heartbeat_table)
            topic = f"{spec.topic_prefix}.public.{source}"
            ensure_topics(settings, [TopicSpec(topic, "bench_latency source", 1)])
            client.put_config(for_connect(spec, db_url))
            procs.wait_slot_active(db_url, spec.slot_name)
            env = procs.worker_env(
                settings,
                home=logdir,
                db_url=db_url,
                app_id=name,
                extra={
                    "VIGIL_BENCH_TOPIC": topic,
                    "VIGIL_BENCH_AGENT": f"bench-latency-{variant.slug}",
                    "VIGIL_BENCH_SINK": sink,
                    "VIGIL_BENCH_SINK_MODE": variant.mode,
                    "VIGIL_DELIVERY": variant.delivery,
                    "VIGIL_HTTP_PORT": str(procs.free_port()),
                },
            )
            proc = procs.spawn_worker("bench.agentmods.sink", env, log)
            agent = env["VIGIL_BENCH_AGENT"]
            if variant.delivery == "batch":
                group, members = (
                    feed_group(name, agent),
                    int(env.get("VIGIL_AGENT_CONSUMERS", Settings.model_fields["agent_consumers"].default)),
                )
            else:
                group, members = name, 1
            procs.wait_group_settled(settings, group, members)
        with psycopg.connect(db_url, autocommit=True) as conn:
            _insert(conn, source, 1, WARMUP_ROWS)
            _wait_sunk(conn, sink, WARMUP_ROWS, proc, log, variant.label)
            waited = procs.wait_quiet()
            # The time, to line the run up with the worker's log (its assignments, say).
            print(
                f"    steady rows from {time.strftime('%H:%M:%S', time.gmtime())} UTC "
                f"(after {waited:.0f} s waiting for a quiet machine; the first "
                f"{WARMUP_AT_RATE_S:.0f} s warm up)",
                flush=True,
            )
            warm_last, _ = _steady(conn, source, WARMUP_ROWS + 1, rate, WARMUP_AT_RATE_S)
            first = warm_last + 1
            cpu0 = procs.cpu_seconds(proc.pid)
            threads0 = procs.thread_cpu(proc.pid)
            steal = procs.StealWatch()
            steal.start()
            try:
                last, achieved = _steady(conn, source, first, rate, seconds)
                _wait_sunk(conn, sink, last, proc, log, variant.label)
            finally:
                samples = steal.stop()
            cpu = procs.cpu_seconds(proc.pid) - cpu0
            split = procs.cpu_split(proc.pid, threads0, procs.thread_cpu(proc.pid))
            warm = _timed(conn, source, sink, WARMUP_ROWS + 1, warm_last)
            timed = _timed(conn, source, sink, first, last)
            print(f"    worst latency (ms) per second of the warm-up: {worst_per_second(warm)}", flush=True)
            print(f"    worst latency (ms) per second of the run: {worst_per_second(timed)}", flush=True)
            stolen = steal_of_run(samples, timed)
            print(f"    hypervisor steal (% of the machine) per second: {_percents(stolen)}", flush=True)
            print(
                f"    CPU µs per row by part of the process:{procs.split_text(split, len(timed))}", flush=True
            )
            stages = _stages(conn, source, sink, first) if variant.mode == "emit" else ""
            if stages:
                print(f"    stages p50/p99 ms: {stages}", flush=True)
        return Outcome(
            [latency for _, latency in timed],
            achieved,
            seconds,
            [latency for _, latency in warm],
            cpu,
            split,
            stages,
            stolen,
        )
    finally:
        if proc is not None:
            procs.stop(proc)
        if spec is not None:
            client.delete(spec.name)
            drop_replication_slot(db_url, spec.slot_name)
        client.close()
        procs.drop_database(settings, name)


#: A row's way, from the times the agent's outbox payload carries (:mod:`bench.agentmods.sink`):
#: its commit, Debezium reading it (``ts_ms``), Kafka Connect's producer taking it (the message's create
#: time), the handler running, the unit of work committing.
_STAGES_SQL = """
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY (o.payload->>'debezium_ms')::float8
           - extract(epoch FROM s.committed_at) * 1000),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY (o.payload->>'kafka_ms')::float8
           - (o.payload->>'debezium_ms')::float8),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY (o.payload->>'handled_ms')::float8
           - (o.payload->>'kafka_ms')::float8),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM k.committed_at) * 1000
           - (o.payload->>'handled_ms')::float8)
FROM public.{source} s JOIN public.{sink} k USING (id)
JOIN vigil.outbox o ON (o.payload->>'id')::bigint = s.id AND o.payload ? 'handled_ms'
WHERE s.id >= %s
"""


def _timed(
    conn: psycopg.Connection[Any], source: str, sink: str, first: int, last: int
) -> list[tuple[float, float]]:
    """(source commit time in epoch seconds, latency in ms) of rows ``first`` to ``last``."""
    return [
        (float(row[0]), float(row[1]))
        for row in conn.execute(
            sql.SQL(
                "SELECT extract(epoch FROM s.committed_at), "
                "extract(epoch FROM k.committed_at - s.committed_at) * 1000 "
                "FROM public.{} s JOIN public.{} k USING (id) WHERE s.id BETWEEN %s AND %s"
            ).format(sql.Identifier(source), sql.Identifier(sink)),
            (first, last),
        ).fetchall()
    ]


def _stages(conn: psycopg.Connection[Any], source: str, sink: str, first: int) -> str:
    row = conn.execute(
        sql.SQL(_STAGES_SQL).format(source=sql.Identifier(source), sink=sql.Identifier(sink)), (first,)
    ).fetchone()
    if row is None or row[0] is None:
        return ""
    names = (
        "commit → Debezium read",
        "→ Connect's producer",
        "→ handler (Kafka, the feed or Faust, batch window)",
        "→ unit of work committed",
    )
    return "; ".join(f"{name} {q[0]:.0f}/{q[1]:.0f}" for name, q in zip(names, row, strict=True))


def steal_of_run(samples: list[tuple[float, int, int]], timed: list[tuple[float, float]]) -> list[float]:
    """:func:`bench.procs.steal_per_second` for the seconds :func:`worst_per_second` shows."""
    if not timed:
        return []
    start = min(at for at, _ in timed)
    seconds = int(max(at for at, _ in timed) - start) + 1
    return procs.steal_per_second(samples, start)[:seconds]


def _percents(values: list[float]) -> str:
    return " ".join(f"{v:.0f}" for v in values) or "-"


#: A second with more of the machine stolen than this is counted in the notes.
STEAL_NOTED_PCT = 10.0


def _steal_text(steal_pct: list[float]) -> str:
    """``; hypervisor steal …`` for the notes: on a shared VM a stolen stretch holds every process
    of the pipeline up at once, and such seconds (and the one after, while the backlog drains) set
    the p99 (session 16: 280 and 275 ms in seconds with 27% and 6% stolen, after one with 18%; the
    run's seconds without such a stretch stayed under 105 ms)."""
    if not steal_pct:
        return ""
    over = sum(1 for v in steal_pct if v > STEAL_NOTED_PCT)
    return (
        f"; hypervisor steal per second of the run: at most {max(steal_pct):.0f}% of the machine, "
        f"{over} of {len(steal_pct)} seconds over {STEAL_NOTED_PCT:.0f}%"
    )


def worst_per_second(timed: list[tuple[float, float]]) -> str:
    """The highest latency of the rows committed in each second of the run, in order: a pause shows
    as one high second, a worker falling behind as a rising run of them."""
    if not timed:
        return "-"
    start = min(at for at, _ in timed)
    worst: dict[int, float] = {}
    for at, latency in timed:
        second = int(at - start)
        worst[second] = max(worst.get(second, 0.0), latency)
    return " ".join(f"{worst[s]:.0f}" for s in sorted(worst))


def _connector(name: str, source: str, poll_interval_ms: str | None) -> ConnectorSpec:
    template = load_connector_file(PACKAGED)[0]
    spec = derive_connector(template, f"{name}-cdc", [f"public.{source}"])
    config = {k: v for k, v in spec.config.items() if k != "poll.interval.ms"}
    config["snapshot.mode"] = "no_data"
    if poll_interval_ms is not None:
        config["poll.interval.ms"] = poll_interval_ms
    return ConnectorSpec(spec.name, config, spec.source)


def _create_tables(url: str, source: str, sink: str) -> None:
    stamp = f"{sink}_stamp"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE public.{} (id bigint PRIMARY KEY, "
                "committed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            ).format(sql.Identifier(source))
        )
        conn.execute(
            sql.SQL("CREATE TABLE public.{} (id bigint PRIMARY KEY, committed_at timestamptz)").format(
                sql.Identifier(sink)
            )
        )
        # Both triggers run at COMMIT (deferred), so the stamp is the side effect's commit time.
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.{}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "UPDATE public.{} SET committed_at = clock_timestamp() WHERE id = NEW.id; RETURN NULL; END $$"
            ).format(sql.Identifier(stamp), sql.Identifier(sink))
        )
        conn.execute(
            sql.SQL(
                "CREATE CONSTRAINT TRIGGER {} AFTER INSERT ON public.{} DEFERRABLE INITIALLY DEFERRED "
                "FOR EACH ROW WHEN (NEW.committed_at IS NULL) EXECUTE FUNCTION public.{}()"
            ).format(sql.Identifier(stamp), sql.Identifier(sink), sql.Identifier(stamp))
        )
        # An outbox row of the agent (``emit`` mode) becomes a stamped sink row at its commit.
        copy = f"{sink}_copy"
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.{}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "INSERT INTO public.{} (id, committed_at) VALUES ((NEW.payload->>'id')::bigint, clock_timestamp()) "
                "ON CONFLICT DO NOTHING; RETURN NULL; END $$"
            ).format(sql.Identifier(copy), sql.Identifier(sink))
        )
        conn.execute(
            sql.SQL(
                "CREATE CONSTRAINT TRIGGER {} AFTER INSERT ON vigil.outbox DEFERRABLE INITIALLY DEFERRED "
                "FOR EACH ROW EXECUTE FUNCTION public.{}()"
            ).format(sql.Identifier(copy), sql.Identifier(copy))
        )


def _insert(conn: psycopg.Connection[tuple[object, ...]], source: str, first: int, count: int) -> None:
    conn.execute(
        sql.SQL("INSERT INTO public.{} (id) SELECT generate_series(%s::bigint, %s::bigint)").format(
            sql.Identifier(source)
        ),
        (first, first + count - 1),
    )


def _steady(
    conn: psycopg.Connection[tuple[object, ...]], source: str, first: int, rate: float, seconds: float
) -> tuple[int, float]:
    """Insert ``rate`` rows/s in 10 ms ticks for ``seconds``; return the last id and the rate achieved."""
    per_tick = max(1, round(rate * TICK_S))
    next_id = first
    started = tick = time.perf_counter()
    end = tick + seconds
    while tick < end:
        _insert(conn, source, next_id, per_tick)
        next_id += per_tick
        tick += TICK_S
        delay = tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return next_id - 1, (next_id - first) / max(time.perf_counter() - started, 1e-9)


def _wait_sunk(
    conn: psycopg.Connection[tuple[object, ...]],
    sink: str,
    count: int,
    proc: subprocess.Popen[bytes],
    log: Path,
    label: str,
    stall: float = 180.0,
) -> None:
    """Wait until ``count`` sink rows are stamped; fail when none came for ``stall`` seconds."""
    query = sql.SQL("SELECT count(*) FROM public.{} WHERE committed_at IS NOT NULL").format(
        sql.Identifier(sink)
    )
    progressed, seen = time.monotonic(), -1
    while True:
        row = conn.execute(query).fetchone()
        done = int(row[0]) if row else 0
        if done >= count:
            return
        procs.check_alive(proc, log, label)
        if done != seen:
            progressed, seen = time.monotonic(), done
        if time.monotonic() - progressed > stall:
            raise RuntimeError(
                f"{label}: stuck at {done}/{count} sink rows for {stall:.0f}s:\n{procs.tail(log)}"
            )
        time.sleep(0.2)
