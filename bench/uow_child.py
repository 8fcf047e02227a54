"""One in-process run of the agent hot path, for :mod:`bench.bench_uow` (run as a child process).

``python -m bench.uow_child --database-url URL --batches N --warmup W``: makes ``W + N`` batches of
500 ``bench_agents`` events (as ``MessageParts``, the way a feed hands them over), then runs the
route agent (:mod:`bench.agentmods.route`) over them the way a worker does: ``prepare_batch``,
the unit of work, the table of processed events, the ledger records. The first ``W`` batches warm
up; the CPU of the next ``N`` (this thread's, per step, and the whole process's) is printed as one
line of JSON. The Kafka producer of the ledger records is real (``VIGIL_KAFKA_BOOTSTRAP``); no
consumer, feed or Faust runs, so the figure is the unit of work's own, steadier than a worker's.

With ``--make-only`` nothing runs after the events are made: a run under valgrind minus such a run
is the hot path's own instructions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Sequence

from agents.api import load_modules
from agents.unit_of_work import BatchResult, Item, UnitOfWork
from agents.worker import WorkerRuntime, commit_batch, prepare_batch, settle_garbage_collector
from bench.bench_agents import _event
from bench.peers.work import EVENT_ID_HEADER
from streams.settings import load_settings
from streams.views import MessageParts

BATCH = int(os.environ.get("VIGIL_BENCH_UOW_BATCH", "500"))
#: Where the event loop's thread spends its CPU: ``prepare_batch``; the unit of work; and the rest
#: of ``commit_batch`` (the table of processed events, the ledger records, metrics).
STEPS = ("prepare", "unit of work", "after the commit")


class _TimedUnitOfWork(UnitOfWork):
    """The unit of work, adding up the CPU its batches take on this thread."""

    spent = 0.0

    async def process(self, items: Sequence[Item]) -> BatchResult:
        started = time.thread_time()
        try:
            return await super().process(items)
        finally:
            self.spent += time.thread_time() - started


def _batches(count: int) -> list[list[MessageParts]]:
    tag = uuid.uuid4().hex[:8]
    now_ms = int(time.time() * 1000)
    made: list[list[MessageParts]] = []
    for b in range(count):
        batch = []
        for i in range(b * BATCH, (b + 1) * BATCH):
            event_id, value = _event(tag, i)
            batch.append(
                MessageParts(
                    topic="bench.agents",
                    partition=i % 3,
                    offset=i,
                    key=event_id.encode(),
                    value=value,
                    headers={EVENT_ID_HEADER: event_id.encode()},
                    timestamp_ms=now_ms,
                    topic_id=None,
                )
            )
        made.append(batch)
    return made


async def _run(args: argparse.Namespace) -> dict[str, float]:
    agent = os.environ.get("VIGIL_BENCH_AGENT", "bench-route")
    settings = load_settings().model_copy(
        update={"database_url": args.database_url, "outbox_relay": False, "scheduler": False}
    )
    spec = next(s for s in load_modules(["bench.agentmods.route"]) if s.name == agent)
    runtime = WorkerRuntime.create(settings, read_ledger=False)
    batches = _batches(args.warmup + args.batches)
    if args.make_only:
        return {}
    settle_garbage_collector()
    uow = _TimedUnitOfWork(spec, runtime.engine, runtime.outputs)
    steps = dict.fromkeys(STEPS, 0.0)
    clock = time.thread_time
    started = process = 0.0
    for n, parts in enumerate(batches):
        if n == args.warmup:
            runtime.outputs.producer.flush(30)
            steps = dict.fromkeys(STEPS, 0.0)
            uow.spent = 0.0
            started, process = time.perf_counter(), time.process_time()
        a = clock()
        prepared = await prepare_batch(spec, runtime, parts)
        b = clock()
        await commit_batch(spec, uow, runtime, prepared)  # what a worker's agent runs, as it runs it
        c = clock()
        steps["prepare"] += b - a
        steps["after the commit"] += c - b
    steps["unit of work"] = uow.spent
    steps["after the commit"] -= uow.spent
    runtime.outputs.producer.flush(30)
    events = BATCH * args.batches
    out = {"events": float(events), "wall_s": time.perf_counter() - started}
    out["process_us"] = (time.process_time() - process) / events * 1e6
    out.update({f"{step}_us": spent / events * 1e6 for step, spent in steps.items()})
    await runtime.engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--make-only", action="store_true")
    print(json.dumps(asyncio.run(_run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
