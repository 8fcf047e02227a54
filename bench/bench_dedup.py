"""Deduplication: a worker's throughput when 0%, 50% and 100% of its events were already processed.

One fresh database and one agent name (``bench-dedup``, the route agent of ``bench_agents``: one
outbox row per event), so ``vigil.processed_events`` and the ledger decide what is a duplicate.
Three topics of 50,000 x scale ``bench_agents`` events each (3 partitions), produced first:

- ``0% duplicates``: ids 0 … N-1, all new;
- ``50% duplicates``: every other event re-uses an id of the first topic, the others are new;
- ``100% duplicates``: ids 0 … N-1 again (the same records produced a second time, as a replay
  or a producer's retry would).

The phases run in that order, each with its own ``vigil worker`` and consumer group on the same
database, so a duplicate is an event id that was committed before (by the first phase's worker, or
by this phase's own new half). Progress is the worker's ``vigil_events_consumed_total`` on
``/metrics`` (duplicates leave no new row to count), polled every 0.2 s; events/s is taken from
the first poll that sees progress to the first that sees all N, as in ``bench_agents``. The per-event
cost of a phase is 1 / its events/s; worker CPU per event is in the notes.

Target (issue #14): 100% duplicates cost ≤ 0.5x a fresh event (aim ≤ 0.3x).
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import procs
from bench.bench_agents import PARTITIONS, _event
from bench.common import BenchContext, Measurement
from bench.peers.work import EVENT_ID_HEADER
from streams.catalog import TopicSpec
from streams.kafka import make_producer
from streams.settings import Settings
from streams.topics import ensure_topics

BENCH = "dedup"
EVENTS = 50_000
AGENT = "bench-dedup"


@dataclass(frozen=True)
class Phase:
    label: str
    slug: str
    #: Every ``every``-th event (0: none) re-uses an id already processed.
    duplicate_every: int


FRESH = "0% duplicates"
PHASES = (Phase(FRESH, "d0", 0), Phase("50% duplicates", "d50", 2), Phase("100% duplicates", "d100", 1))
#: With Faust's delivery (``VIGIL_DELIVERY=faust``), on a database of its own: fresh and all duplicates.
FAUST = " (Faust's delivery)"
FAUST_PHASES = (Phase(FRESH + FAUST, "d0", 0), Phase("100% duplicates" + FAUST, "d100", 1))


def fresh_of(label: str) -> str:
    """The fresh phase a phase is compared with: the one of the same delivery."""
    return FRESH + FAUST if label.endswith(FAUST) else FRESH


def phase_ids(n: int, duplicate_every: int) -> list[int]:
    """The event numbers of a phase's topic: ids below ``n`` were processed by the fresh phase; a
    phase's new ids are numbered from ``n`` up, so no two phases make the same new id."""
    if duplicate_every == 0:
        return list(range(n))
    return [i if i % duplicate_every == 0 else n * duplicate_every + i for i in range(n)]


def run(ctx: BenchContext) -> list[Measurement]:
    settings = ctx.settings()
    n = max(1000, int(EVENTS * ctx.scale))
    tag = "bu" + uuid.uuid4().hex[:8]
    logdir = procs.log_dir("vigil-bench-dedup-")
    topics = {phase.slug: f"bench.dedup.{tag}.{phase.slug}" for phase in PHASES}
    ensure_topics(settings, [TopicSpec(t, "bench_dedup input", PARTITIONS) for t in topics.values()])
    for phase in PHASES:
        print(f"  producing {n:,} events for {phase.label} …", flush=True)
        _produce(settings, topics[phase.slug], tag, phase_ids(n, phase.duplicate_every))
    rates: dict[str, procs.Rate] = {}
    for delivery, phases in (("batch", PHASES), ("faust", FAUST_PHASES)):
        db_tag = f"{tag}{delivery[0]}"
        db_url = procs.fresh_database(settings, db_tag)
        try:
            for phase in phases:
                topic = topics[phase.slug]
                rates[phase.label] = _run_phase(settings, phase, topic, db_url, n, db_tag, logdir, delivery)
                print(
                    f"  {phase.label}: {rates[phase.label].rate:,.0f} events/s, "
                    f"{rates[phase.label].cpu_per_event * 1e6:,.0f} µs worker CPU per event",
                    flush=True,
                )
        finally:
            procs.drop_database(settings, db_tag)
    return dedup_rows(rates, n)


def dedup_rows(rates: dict[str, procs.Rate], n: int) -> list[Measurement]:
    """Per phase: events/s (ratio to fresh) and per-event cost in µs (ratio to fresh: the target)."""
    rows: list[Measurement] = []
    for label, r in rates.items():
        fresh = rates.get(fresh_of(label))
        notes = (
            f"{r.counted:,} of {n:,} events in {r.seconds:.1f}s; worker CPU {r.cpu_per_event * 1e6:,.0f} µs/event; "
            f"startup {r.startup:.1f}s"
        )
        if fresh is None or label == fresh_of(label):
            rows.append(Measurement(BENCH, label, "events/s", r.rate, "events/s", notes=notes))
            rows.append(Measurement(BENCH, label, "per-event cost", 1e6 / r.rate, "µs"))
            continue
        rows.append(
            Measurement(
                BENCH,
                label,
                "events/s",
                r.rate,
                "events/s",
                ratio_to=fresh_of(label),
                ratio=r.rate / fresh.rate,
                notes=notes,
            )
        )
        rows.append(
            Measurement(
                BENCH,
                label,
                "per-event cost",
                1e6 / r.rate,
                "µs",
                ratio_to=fresh_of(label),
                ratio=fresh.rate / r.rate,
            )
        )
    return rows


def _produce(settings: Settings, topic: str, tag: str, numbers: list[int]) -> None:
    producer = make_producer(settings, **{"linger.ms": 20})
    for count, i in enumerate(numbers):
        event_id, value = _event(tag, i)
        producer.produce(
            topic, key=event_id.encode(), value=value, headers=[(EVENT_ID_HEADER, event_id.encode())]
        )
        if count % 50_000 == 49_999:
            producer.flush(60)
    if producer.flush(60):
        raise RuntimeError(f"could not produce the bench events to {topic}")


def _run_phase(
    settings: Settings, phase: Phase, topic: str, db_url: str, n: int, tag: str, logdir: Path, delivery: str
) -> procs.Rate:
    port = procs.free_port()
    env = procs.worker_env(
        settings,
        home=logdir,
        db_url=db_url,
        app_id=f"{tag}_{phase.slug}",
        extra={
            "VIGIL_BENCH_TOPIC": topic,
            "VIGIL_BENCH_AGENT": AGENT,
            "VIGIL_HTTP_PORT": str(port),
            "VIGIL_DELIVERY": delivery,
        },
    )
    log = logdir / f"{phase.slug}-{delivery}.log"
    proc: subprocess.Popen[bytes] = procs.spawn_worker("bench.agentmods.route", env, log)
    try:
        with httpx.Client() as client:
            return procs.measure_rate(
                phase.label,
                lambda: procs.consumed(port, AGENT, client),
                n,
                [(proc, log)],
            )
    finally:
        procs.stop(proc)
