"""Agents with exactly-once Postgres side effects: ``vigil worker`` next to three hand-written peers.

One run, one broker and one Postgres, the same events (100,000 x scale JSON events of ~150 B on
one 3-partition topic, each with a ``vigil-event-id`` header) and the same work for every variant:
route the event by its score (warning/critical) and, exactly once, record a processed row keyed by
the event id (``ON CONFLICT DO NOTHING``) and one outbox row carrying the route, committed together;
Kafka offsets only after the database commit (:mod:`bench.peers.work`). Each variant runs as its
own OS process(es), with its own consumer group and its own freshly migrated database:

- ``loop (1) per-row``: confluent-kafka loop, per-row SQL, one transaction per 500 events;
- ``loop (2) set-based``: the same loop, ``unnest`` for processed rows + ``COPY`` for the outbox;
- ``faust (3) per-event``: a plain faust-streaming agent, one transaction per event;
- ``vigil (N processes)``: ``vigil worker -A bench.agentmods.route``, the real worker and unit of
  work (batches of the ``@agent`` default 500), outbox relay off. The peers run in one process
  each; Vigil is also shown with 2 and 3 worker processes in one consumer group;
- ``vigil (1 process, relay on)``: one worker with the in-worker outbox relay on
  (``VIGIL_OUTBOX_RELAY=true``): ``relay cost`` is 1 - its events/s / the relay-off worker's;
- ``vigil (1 process + relay process)``: one relay-off worker next to a ``vigil relay`` process,
  as ``vigil up`` runs them: its ``relay cost`` is what issue #14's relay target judges. Its CPU
  per event counts both processes; the relay must have published every row within
  ``RELAY_DRAIN_S`` of the worker's last (the backlog it had at t1 is in the notes).

Measurement, the same for all: this process polls ``count(*)`` of the variant's processed rows every
0.2 s; t0 is the first poll that sees 10% of the N rows (the rest of start-up is done by then),
t1 the first that sees all N; events/s is (N - count at t0) / (t1 - t0), so process start, group
join and warm-up are left out (start-up is reported as ``startup s``: spawn → first committed
row). ``CPU per event`` is the CPU seconds (user + system, ``/proc``) its processes spent between
t0 and t1, divided by the events counted: the work of the
process itself, not of Postgres or the broker, and less sensitive than events/s to a loaded machine.
With ``VIGIL_BENCH_PROFILE=1`` (and ``pip install py-spy``) the relay-off 1-process worker (or, with
``VIGIL_BENCH_PROFILE=<slug>``, that variant's first process, e.g. ``v1f``) is sampled
by py-spy from spawn to the end of its measurement: collapsed stacks in
``bench/results/agents-profile.txt``, the functions most often on top of the stack in its row's
notes. Afterwards every variant must hold exactly N processed and N outbox rows.

Each Vigil worker's ledger reader reads ``vigil.processed-events`` while it works: records of this
run's earlier Vigil variants (N each, of other databases: read and skipped), so later variants pay
for a little more history; earlier runs' records are left out by a retention window starting
shortly before this run (:func:`bench.procs.ledger_window`). Targets of issue #5 (Vigil >= 1.0x
loop (1), >= 4.0x faust (3)) are in the rows; those of issue #14 (>= 2.5x loop (1), >= 0.4x
loop (2), CPU per event <= 60 µs, relay cost <= 10%) are judged by :mod:`bench.targets`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg

from bench.common import RESULTS_DIR, BenchContext, Measurement
from bench.peers.work import AGGREGATE, EVENT_ID_HEADER
from bench.procs import cpu_seconds as _cpu_seconds
from bench.procs import cpu_split, ledger_window, log_dir, split_text, thread_cpu, time_split, wait_quiet
from bench.procs import drop_database as _drop_database
from bench.procs import fresh_database as _fresh_database
from bench.procs import sched_seconds as procs_sched
from bench.procs import stop as _stop
from bench.procs import tail as _tail
from streams.catalog import TopicSpec
from streams.kafka import make_producer
from streams.settings import Settings
from streams.topics import ensure_topics

BENCH = "agents"
EVENTS = 100_000
PARTITIONS = 3
POLL_S = 0.2
#: The share of the events that warms a variant up before t0: a worker's first seconds after its
#: first commit still hold start-up work (other agents' feeds and Faust's group joining, the first
#: batch of each code path), which weighed 10-40 µs per event of 100,000, varying with timing.
WARMUP_FRACTION = 0.1
#: A variant fails when its count does not move for this long (start-up included).
STALL_S = 180.0
ROOT = Path(__file__).resolve().parents[1]
VIGIL = Path(sys.executable).parent / "vigil"

LOOP_ROWS = "loop (1) per-row"
LOOP_SET = "loop (2) set-based"
FAUST = "faust (3) per-event"
VIGIL_1 = "vigil (1 process)"
RELAY_ON = "vigil (1 process, relay on)"
RELAY_PROCESS = "vigil (1 process + relay process)"
FAUST_1 = "vigil (1 process, Faust's delivery)"
#: Seconds the relay process may take, after the worker's last row, to publish the rest.
RELAY_DRAIN_S = 120.0


@dataclass(frozen=True)
class Variant:
    """A way of doing the work: a peer module run once, or ``vigil worker`` run ``processes`` times."""

    label: str
    slug: str
    peer: str | None = None
    processes: int = 1
    relay: bool = False
    #: A ``vigil relay`` process runs next to the worker(s) (whose in-worker relay is off).
    relay_process: bool = False
    #: ``VIGIL_DELIVERY`` of the worker(s): ``faust`` or ``batch`` (:mod:`agents.feed`).
    delivery: str = "batch"
    notes: str = ""
    #: Another checkout of Vigil to run instead of this one (the baseline of a before/after).
    tree: Path | None = None


VARIANTS = (
    Variant(LOOP_ROWS, "rows", peer="loop_rows", notes="confluent-kafka, INSERT per row, commit per 500"),
    Variant(LOOP_SET, "set", peer="loop_setbased", notes="confluent-kafka, unnest + COPY per 500"),
    Variant(FAUST, "faust", peer="faust_per_event", notes="faust-streaming 0.x agent, 1 tx per event"),
    Variant(VIGIL_1, "v1"),
    Variant(FAUST_1, "v1f", delivery="faust", notes="Faust's delivery (VIGIL_DELIVERY=faust)"),
    Variant("vigil (2 processes)", "v2", processes=2),
    Variant("vigil (3 processes)", "v3", processes=3),
    Variant(RELAY_ON, "v1r", relay=True),
    Variant(RELAY_PROCESS, "v1rp", relay_process=True),
)
BASELINE = "vigil (1 process, baseline tree)"
#: The variant py-spy samples with ``VIGIL_BENCH_PROFILE=1`` (or ``=<slug>``: that variant).
PROFILED = "v1"


def profiled_slug(setting: str) -> str | None:
    """The variant ``VIGIL_BENCH_PROFILE`` asks to profile: ``1`` is :data:`PROFILED`, a slug that
    variant, anything else none."""
    if setting == "1":
        return PROFILED
    return setting if any(v.slug == setting for v in VARIANTS) else None


def chosen_variants() -> tuple[Variant, ...]:
    """The variants to run: all, or those named in ``VIGIL_BENCH_VARIANTS`` (slugs, comma-separated);
    plus the baseline when ``VIGIL_BENCH_BASELINE_TREE`` names another checkout of Vigil (a
    before/after in one run, on the same broker, Postgres and events)."""
    wanted = {v.strip() for v in os.environ.get("VIGIL_BENCH_VARIANTS", "").split(",") if v.strip()}
    chosen = [v for v in VARIANTS if not wanted or v.slug in wanted]
    tree = os.environ.get("VIGIL_BENCH_BASELINE_TREE")
    if tree:
        chosen.append(Variant(BASELINE, "v1b", tree=Path(tree), notes=f"vigil worker from {tree}"))
    return tuple(chosen)


@dataclass
class Outcome:
    rate: float
    startup: float
    counted: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the variant's processes between t0 and t1, per event counted.
    cpu_per_event: float = 0.0
    #: The profiler's most sampled functions (``VIGIL_BENCH_PROFILE=1``), as "share% function".
    profile: list[str] = field(default_factory=list)
    #: With a relay process: unsent outbox rows when the worker's last row was counted, and the
    #: seconds the relay then took to publish them.
    relay_backlog: int | None = None
    relay_drain_s: float | None = None
    #: CPU seconds per event, between t0 and t1, of the last process spawned (the relay process
    #: when there is one): its part of ``cpu_per_event``.
    last_cpu_per_event: float = 0.0
    #: The first process's main thread (a worker's event loop) between t0 and t1: percent of the
    #: time on a core, waiting for one and idle (:func:`bench.procs.time_split`).
    main_thread: dict[str, float] = field(default_factory=dict)
    #: Events per committed transaction over the whole run (its ``processed_events`` rows per distinct
    #: ``processed_at``, the transaction's start): a worker's batch size as it came out.
    per_transaction: float | None = None
    #: The first process's CPU seconds between t0 and t1 by part (:func:`bench.procs.cpu_split`).
    cpu_split: dict[str, float] = field(default_factory=dict)


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    n = max(1000, int(EVENTS * ctx.scale))
    tag = "ba" + uuid.uuid4().hex[:8]
    topic = f"bench.agents.{tag}"
    load = os.getloadavg()
    ensure_topics(settings, [TopicSpec(topic, "bench_agents input", PARTITIONS)])
    size = _produce(settings, topic, n, tag)
    logdir = log_dir("vigil-bench-agents-")
    outcomes: dict[str, Outcome] = {}
    for variant in chosen_variants():
        # What the variant before left behind (Postgres's autovacuum of its 400,000 rows, checkpoints,
        # the JVMs' garbage) otherwise runs in the next variant's measurement.
        waited = wait_quiet()
        if waited > 3.5:
            print(f"    {variant.label}: waited {waited:.0f} s for a quiet machine", flush=True)
        try:
            outcomes[variant.label] = _run_variant(settings, variant, topic, n, tag, logdir)
        except RuntimeError as exc:  # the other variants' numbers still count; its rows are missing
            print(f"  {variant.label} FAILED: {str(exc)[:2000]}", flush=True)
            continue
        print(
            f"  {variant.label}: {outcomes[variant.label].rate:,.0f} events/s, "
            f"startup {outcomes[variant.label].startup:.1f}s",
            flush=True,
        )
    if not outcomes:
        raise RuntimeError("every variant failed (see above)")
    return _rows(outcomes, n, size, load)


# -- the events ---------------------------------------------------------------------------


def _event(tag: str, i: int) -> tuple[str, bytes]:
    event_id = f"{tag}-{i}"
    value = {
        "id": event_id,
        "source": "prometheus",
        "metric": "orders.latency_p99",
        "service": f"svc-{i % 17}",
        "value": 400.0 + i % 97,
        "score": (i * 7919 % 1000) / 1000,  # 10% at or above 0.9: critical
        "observed_at": f"2025-06-01T12:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z",
    }
    return event_id, json.dumps(value, separators=(",", ":")).encode()


def _produce(settings: Settings, topic: str, n: int, tag: str, first: int = 0) -> float:
    """Fill the topic with events ``first`` … ``first + n - 1``; return the mean value size in bytes."""
    producer = make_producer(settings, **{"linger.ms": 20})
    total = 0
    for i in range(first, first + n):
        event_id, value = _event(tag, i)
        total += len(value)
        producer.produce(
            topic, key=event_id.encode(), value=value, headers=[(EVENT_ID_HEADER, event_id.encode())]
        )
        if i % 50_000 == 49_999:
            producer.flush(60)
    if producer.flush(60):
        raise RuntimeError(f"could not produce the {n} bench events to {topic}")
    return total / n


# -- one variant ----------------------------------------------------------------------------


def _run_variant(settings: Settings, variant: Variant, topic: str, n: int, tag: str, logdir: Path) -> Outcome:
    name = f"{tag}_{variant.slug}"
    agent = f"bench-route-{variant.slug}"
    # a baseline tree's worker migrates its database itself, to its own head
    db_url = _fresh_database(settings, name, migrate=variant.tree is None)
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    profiler: subprocess.Popen[bytes] | None = None
    profile = RESULTS_DIR / "agents-profile.txt"
    try:
        for i in range(variant.processes):
            log = logdir / f"{variant.slug}-{i}.log"
            procs.append((_spawn(settings, variant, db_url, topic, name, agent, log), log))
        if variant.relay_process:
            log = logdir / f"{variant.slug}-relay.log"
            procs.append((_spawn(settings, variant, db_url, topic, name, agent, log, relay=True), log))
        if variant.slug == profiled_slug(os.environ.get("VIGIL_BENCH_PROFILE", "")):
            profiler = _start_profiler(procs[0][0].pid, profile, logdir / "py-spy.log")
        outcome = _measure(db_url, agent, n, procs)
        outcome.cpu = {str(p.pid): _cpu_seconds(p.pid) for p, _ in procs}
        if variant.relay_process:
            outcome.relay_backlog, outcome.relay_drain_s = _drain(db_url, procs[-1])
        if profiler is not None:
            _stop(profiler, signal.SIGINT, 60)  # py-spy writes its file when interrupted
            profiler = None
            outcome.profile = top_frames(profile.read_text() if profile.exists() else "")
        _check_exactly_once(db_url, agent, n, variant.label)
        return outcome
    finally:
        if profiler is not None:
            _stop(profiler, signal.SIGINT, 60)  # py-spy writes its file when interrupted
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _drop_database(settings, name)


def _spawn(
    settings: Settings,
    variant: Variant,
    db_url: str,
    topic: str,
    group: str,
    agent: str,
    log: Path,
    *,
    relay: bool = False,
) -> subprocess.Popen[bytes]:
    """A peer, a ``vigil worker``, or (``relay``) the ``vigil relay`` next to the variant's worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["PYTHONPATH"] = str(variant.tree or ROOT)
    if variant.peer is not None:
        argv = [sys.executable, "-m", f"bench.peers.{variant.peer}"]
        argv += ["--bootstrap", settings.require_bootstrap(), "--database-url", db_url]
        argv += ["--topic", topic, "--group", group, "--agent", agent]
    else:
        argv = [str(VIGIL), "relay"] if relay else [str(VIGIL), "worker", "-A", "bench.agentmods.route"]
        no_connectors = log.parent / "no-connectors"  # the relay refuses next to an outbox connector
        no_connectors.mkdir(exist_ok=True)
        env.update(
            {
                "VIGIL_HOME": str(log.parent),
                "VIGIL_DATABASE_URL": db_url,
                "VIGIL_KAFKA_BOOTSTRAP": settings.require_bootstrap(),
                "VIGIL_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "VIGIL_APP_ID": group,
                "VIGIL_OUTBOX_RELAY": "true" if variant.relay else "false",
                "VIGIL_DELIVERY": variant.delivery,
                "VIGIL_CONNECTORS": str(no_connectors),
                "VIGIL_BENCH_TOPIC": topic,
                "VIGIL_BENCH_AGENT": agent,
                **ledger_window(),
            }
        )
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=variant.tree or ROOT)


#: Events per transaction: ``processed_at`` defaults to ``now()``, the transaction's start.
PER_TRANSACTION_SQL = (
    "SELECT count(*)::float8 / nullif(count(DISTINCT processed_at), 0) FROM vigil.processed_events"
    " WHERE agent = %s"
)


def _measure(db_url: str, agent: str, n: int, procs: list[tuple[subprocess.Popen[bytes], Path]]) -> Outcome:
    """Poll the processed rows until all ``n`` are there; fail when none came for ``STALL_S`` (a
    rate-based deadline failed the per-event Faust peer at ≈120 events/s on a machine at load 26)."""
    spawned = time.monotonic()
    first_row: float | None = None
    t0: float | None = None
    c0 = 0
    warm = max(1, int(n * WARMUP_FRACTION))
    progressed, seen = spawned, -1
    cpu0: list[float] = []
    sched0 = (0.0, 0.0)
    threads0: dict[int, tuple[str, float]] = {}
    last_print = spawned
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            now = time.monotonic()
            try:
                row = conn.execute(
                    "SELECT count(*) FROM vigil.processed_events WHERE agent = %s", (agent,)
                ).fetchone()
            except psycopg.errors.UndefinedTable:  # a baseline worker has not migrated yet
                row = None
            count = int(row[0]) if row else 0
            if first_row is None and count > 0:
                first_row = now
            if t0 is None and count >= warm:
                t0, c0 = now, count
                cpu0 = [_cpu_seconds(p.pid) for p, _ in procs]
                sched0 = procs_sched(procs[0][0].pid)
                threads0 = thread_cpu(procs[0][0].pid)
            if count >= n and t0 is not None:
                if now <= t0 or count == c0:
                    raise RuntimeError(f"{agent}: all {n} events in one poll; raise --scale to measure")
                spent = [_cpu_seconds(p.pid) - before for (p, _), before in zip(procs, cpu0, strict=True)]
                main_thread = time_split(sched0, procs_sched(procs[0][0].pid), now - t0)
                split = cpu_split(procs[0][0].pid, threads0, thread_cpu(procs[0][0].pid))
                per_transaction = conn.execute(PER_TRANSACTION_SQL, (agent,)).fetchone()
                return Outcome(
                    (n - c0) / (now - t0),
                    (first_row or t0) - spawned,
                    n - c0,
                    now - t0,
                    cpu_per_event=sum(spent) / (n - c0),
                    last_cpu_per_event=spent[-1] / (n - c0),
                    main_thread=main_thread,
                    per_transaction=per_transaction[0] if per_transaction else None,
                    cpu_split=split,
                )
            for proc, log in procs:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{agent}: process exited ({proc.returncode}) at {count}/{n} rows:\n{_tail(log)}"
                    )
            if count != seen:
                progressed, seen = now, count
            if now - progressed > STALL_S:
                tails = "\n".join(_tail(log) for _, log in procs)
                raise RuntimeError(f"{agent}: stuck at {count}/{n} rows for {STALL_S:.0f}s:\n{tails}")
            if now - last_print > 30:
                print(f"    {agent}: {count:,}/{n:,} events", flush=True)
                last_print = now
            time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))


def _drain(db_url: str, relay: tuple[subprocess.Popen[bytes], Path]) -> tuple[int, float]:
    """Wait until the relay process published every outbox row; return (unsent rows at the start,
    seconds it took)."""
    began = time.monotonic()
    first: int | None = None
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM vigil.outbox WHERE sent_at IS NULL").fetchone()
            unsent = int(row[0]) if row else 0
            first = unsent if first is None else first
            if unsent == 0:
                return first, time.monotonic() - began
            proc, log = relay
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vigil relay exited ({proc.returncode}) with {unsent} unsent:\n{_tail(log)}"
                )
            if time.monotonic() - began > RELAY_DRAIN_S:
                raise RuntimeError(
                    f"vigil relay: {unsent} rows still unsent {RELAY_DRAIN_S:.0f}s after the worker"
                )
            time.sleep(POLL_S)


def _check_exactly_once(db_url: str, agent: str, n: int, label: str) -> None:
    """Each event processed once by the bench agent, with one outbox row of its aggregate. Only
    that aggregate: the worker's built-in drift agents also run, and a broker that served the demo
    holds drift events, which they act on (their reports are outbox rows too)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM vigil.processed_events WHERE agent = %s), "
            "(SELECT count(*) FROM vigil.outbox WHERE aggregatetype = %s), "
            "(SELECT count(DISTINCT source_event_id) FROM vigil.outbox WHERE aggregatetype = %s)",
            (agent, AGGREGATE, AGGREGATE),
        ).fetchone()
    if row is None or tuple(row) != (n, n, n):
        raise RuntimeError(
            f"{label}: not exactly once: (processed, outbox rows, distinct outbox events) = {row}, expected {n} each"
        )


# -- the table -----------------------------------------------------------------------------


def _rows(
    outcomes: dict[str, Outcome], n: int, size: float, load: tuple[float, float, float]
) -> list[Measurement]:
    """One row per variant (events/s, with its ratio to loop (1)), the Vigil variants against the
    other peers, each one's start-up time, and the before/after ratio when a baseline ran."""
    variants = [v for v in chosen_variants() if v.label in outcomes]
    rows1 = outcomes[LOOP_ROWS].rate if LOOP_ROWS in outcomes else None
    rows: list[Measurement] = []
    for variant in variants:
        out = outcomes[variant.label]
        cpu = sum(out.cpu.values())
        notes = variant.notes or (
            f"vigil worker, @agent batch 500, outbox relay {_relay_mode(variant)}"
            + ("; peers run in 1 process each" if variant.processes > 1 else "")
        )
        if out.relay_backlog is not None and out.relay_drain_s is not None:
            relay_cpu = list(out.cpu.values())[-1] if out.cpu else 0.0  # the relay is spawned last
            notes += (
                f"; relay backlog {out.relay_backlog:,} rows at t1, published {out.relay_drain_s:.1f}s later"
                f"; the relay process's CPU {relay_cpu:.1f}s in all, "
                f"{out.last_cpu_per_event * 1e6:.0f} µs per event between t0 and t1"
            )
        notes += f"; {out.counted:,} events in {out.seconds:.1f}s; process CPU {cpu:.0f}s in all"
        if out.per_transaction is not None:
            notes += f"; {out.per_transaction:.0f} events per transaction"
        if variant.label == LOOP_ROWS:
            notes += (
                f"; {n:,} events of {size:.0f} B, {PARTITIONS} partitions; load avg {load[0]:.2f} at start"
            )
        base = Measurement(BENCH, variant.label, "events/s", out.rate, "events/s", notes=notes)
        if variant.label != LOOP_ROWS and rows1:
            base = replace(base, ratio_to=LOOP_ROWS, ratio=out.rate / rows1)
            if variant.peer is None:
                base = replace(base, target="issue #5: >= 1.0x loop (1)" + _verdict(out.rate / rows1, 1.0))
        rows.append(base)
    for variant in variants:
        if variant.peer is not None:
            continue
        rate = outcomes[variant.label].rate
        if FAUST in outcomes:
            faust = outcomes[FAUST].rate
            rows.append(
                Measurement(
                    BENCH,
                    variant.label,
                    "events/s vs (3)",
                    rate,
                    "events/s",
                    ratio_to=FAUST,
                    ratio=rate / faust,
                    target="issue #5: >= 4.0x faust (3)" + _verdict(rate / faust, 4.0),
                )
            )
        if LOOP_SET in outcomes:
            rows.append(
                Measurement(
                    BENCH,
                    variant.label,
                    "events/s vs (2)",
                    rate,
                    "events/s",
                    ratio_to=LOOP_SET,
                    ratio=rate / outcomes[LOOP_SET].rate,
                    target="reported",
                )
            )
    rows += _cpu_rows(variants, outcomes)
    for label, how in (
        (RELAY_ON, "the in-worker relay on"),
        (RELAY_PROCESS, "a vigil relay process next to the worker (as vigil up runs it)"),
    ):
        if label not in outcomes or VIGIL_1 not in outcomes:
            continue
        ratio = outcomes[label].rate / outcomes[VIGIL_1].rate
        rows.append(
            Measurement(
                BENCH,
                label,
                "relay cost",
                (1 - ratio) * 100,
                "%",
                ratio_to=VIGIL_1,
                ratio=ratio,
                notes=f"1 - the worker's events/s with {how} / with no relay",
            )
        )
    current = VIGIL_1
    if BASELINE in outcomes and current in outcomes:
        ratio = outcomes[current].rate / outcomes[BASELINE].rate
        rows.append(
            Measurement(
                BENCH,
                current,
                "events/s vs baseline",
                outcomes[current].rate,
                "events/s",
                ratio_to=BASELINE,
                ratio=ratio,
                target=">= 0.9x baseline (fixes cost <= 10%)" + _verdict(ratio, 0.9),
            )
        )
    for variant in variants:
        rows.append(
            Measurement(
                BENCH,
                variant.label,
                "startup s",
                outcomes[variant.label].startup,
                "s",
                notes="spawn → first committed row (imports, group join); not in events/s"
                if variant.label == LOOP_ROWS
                else "",
            )
        )
    return rows


def _cpu_rows(variants: list[Variant], outcomes: dict[str, Outcome]) -> list[Measurement]:
    """CPU per event of every variant, with its ratio to loop (1)'s (and the profile, if one ran)."""
    rows = []
    base = outcomes[LOOP_ROWS].cpu_per_event if LOOP_ROWS in outcomes else 0.0
    # The set-based loop's CPU per event moves with the machine's speed too, though less than Vigil's
    # (mostly C and Postgres waits against Vigil's Python): 63.3 µs was 2.86x its 22.1 in session
    # 17's quiet run, and the same worker 3.3-3.7x in a slow spell of session 18.
    set_based = outcomes[LOOP_SET].cpu_per_event if LOOP_SET in outcomes else 0.0
    for variant in variants:
        out = outcomes[variant.label]
        if not out.cpu_per_event:
            continue
        notes = "CPU seconds of its processes between t0 and t1 / events; relay " + _relay_mode(variant)
        if set_based and variant.label not in (LOOP_ROWS, LOOP_SET):
            notes += f"; {out.cpu_per_event / set_based:.2f}x the set-based loop's"
        if out.cpu_split:
            notes += "; µs per event of its (first) process's parts" + split_text(
                out.cpu_split, out.counted, 1
            )
        if out.main_thread:
            notes += "; its (first) process's main thread: " + ", ".join(
                f"{part} {pct:.0f}%" for part, pct in out.main_thread.items()
            )
        if out.profile:
            notes += (
                "; sampled by py-spy (its overhead included); most on top of the stack, idle waits left out: "
                + ", ".join(out.profile)
            )
        row = Measurement(BENCH, variant.label, "CPU per event", out.cpu_per_event * 1e6, "µs", notes=notes)
        if base and variant.label != LOOP_ROWS:
            row = replace(row, ratio_to=LOOP_ROWS, ratio=out.cpu_per_event / base)
        rows.append(row)
    return rows


#: Frames on top of the stack that are a thread waiting, not working (py-spy's own idle detection
#: misses some of them on a loaded machine): left out of :func:`top_frames`.
IDLE_FRAMES = ("(selectors.py:", "(threading.py:", "(concurrent/futures/thread.py:", "(queue.py:")


def top_frames(collapsed: str, n: int = 8) -> list[str]:
    """The ``n`` functions most often on top of the stack in py-spy's collapsed stacks (``raw``
    format: ``frame;frame;… count`` per line), as ``"share% function"`` of the samples that were
    not idle waits (:data:`IDLE_FRAMES`)."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rstrip().rpartition(" ")
        if not stack or not number.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1].strip()
        if any(idle in leaf for idle in IDLE_FRAMES):
            continue
        counts[leaf] = counts.get(leaf, 0) + int(number)
        total += int(number)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [f"{100 * c / total:.0f}% {frame}" for frame, c in ranked]


def _start_profiler(pid: int, output: Path, log: Path) -> subprocess.Popen[bytes] | None:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        print(
            "  VIGIL_BENCH_PROFILE=1 but py-spy is not installed (pip install py-spy): no profile", flush=True
        )
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(spy),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "100",
        "--nonblocking",  # does not stop the worker to sample it (stopping it cost 5x its CPU)
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _relay_mode(variant: Variant) -> str:
    if variant.relay_process:
        return "in its own process (vigil relay)"
    return "on" if variant.relay else "off"


def _verdict(ratio: float, target: float) -> str:
    return ": met" if ratio >= target else ": MISSED"
