"""The agent of ``bench_agents``: route an event by its score, one outbox row per event.

The same work as the peers (:mod:`bench.peers.work`), through Vigil's unit of work. Its topic and
name come from the benchmark that starts the worker (``VIGIL_BENCH_TOPIC``, ``VIGIL_BENCH_AGENT``):
each Vigil variant runs under its own agent name, so the ledger of one variant's run cannot make
another's worker skip the same events.
"""

from __future__ import annotations

import os

from agents.api import agent
from agents.context import Context
from bench.peers.work import AGGREGATE, outbox_key, outbox_payload, route_of
from streams.views import RawEvent

TOPIC = os.environ.get("VIGIL_BENCH_TOPIC", "bench.agents")
NAME = os.environ.get("VIGIL_BENCH_AGENT", "bench-route")


@agent(TOPIC, name=NAME)
async def route(event: RawEvent, ctx: Context) -> None:
    value = event.value
    ctx.emit(AGGREGATE, key=outbox_key(value), payload=outbox_payload(value, route_of(value)))
