"""The agent of ``bench_latency``: one row per CDC insert, written in the event's transaction.

Subscribed to ``VIGIL_BENCH_TOPIC`` (the bench table's Debezium topic) under ``VIGIL_BENCH_AGENT``.
For each inserted row, by ``VIGIL_BENCH_SINK_MODE``:

- ``emit`` (default): ``ctx.emit`` of an outbox row carrying the id, Vigil's own side effect,
  written set-based by the unit of work; the bench's deferred trigger on ``vigil.outbox`` copies
  the id into the sink table ``VIGIL_BENCH_SINK`` at commit;
- ``session``: an ``INSERT`` of the id into the sink table through ``ctx.session`` (the handler's
  own SQL, one statement per event).

Either way the row commits with the unit of work, and the bench stamps it with ``clock_timestamp()``
at that commit.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from sqlalchemy import text

from agents.api import agent
from agents.context import Context

TOPIC = os.environ.get("VIGIL_BENCH_TOPIC", "cdc.public.bench_latency")
NAME = os.environ.get("VIGIL_BENCH_AGENT", "bench-latency-sink")
SINK = os.environ.get("VIGIL_BENCH_SINK", "bench_latency_sink")
if not re.fullmatch(r"[a-z_][a-z0-9_]*", SINK):
    raise ValueError(f"VIGIL_BENCH_SINK must be a plain table name, not {SINK!r}")
MODE = os.environ.get("VIGIL_BENCH_SINK_MODE", "emit")
INSERT = text(f"INSERT INTO public.{SINK} (id) VALUES (:id) ON CONFLICT DO NOTHING")


@agent(TOPIC, name=NAME)
async def sink(event: Any, ctx: Context) -> None:
    after = event.after
    if event.op != "c" or not after:
        return
    if MODE == "session":
        await ctx.session.execute(INSERT, {"id": int(after["id"])})
    else:
        # The times bench_latency splits a row's latency by: Debezium's read, Kafka Connect's send
        # (the message's create time), this handler's run.
        payload = {
            "id": int(after["id"]),
            "debezium_ms": event.ts_ms,
            "kafka_ms": event.timestamp_ms,
            "handled_ms": time.time() * 1000,
        }
        ctx.emit("bench", key=str(after["id"]), payload=payload)
