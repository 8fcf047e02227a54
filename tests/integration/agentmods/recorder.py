"""A test agent that does what real agents do, driven by fields of each event's JSON value.

Every event: one business row written with Core SQL through ``ctx.session`` (``effects_core``), one
ORM object added and left unflushed (``effects_orm``), one outbox row, one line in the calls file
(``VIGIL_TEST_CALLS_FILE``: every invocation, outside the database, so retries are visible). Then,
by field: ``fail`` raises (after writing), ``reject`` is rejected by the validator, ``touch_db``
runs an extra query, ``bad`` asks for output that can never be written (see ``BAD``), ``send``
sends a stream output to ``VIGIL_TEST_SEND_TOPIC``, ``block_s`` blocks the event loop that long
(a synchronous call in a handler).

Its topic and name come from the test that starts the worker (``VIGIL_TEST_TOPIC``, ``VIGIL_TEST_AGENT``).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from agents.api import agent
from agents.context import Context, Output

TOPIC = os.environ.get("VIGIL_TEST_TOPIC", "test.recorder")
NAME = os.environ.get("VIGIL_TEST_AGENT", "recorder")
SLOW_MS = float(os.environ.get("VIGIL_TEST_SLOW_MS", "0"))
AGGREGATE = os.environ.get("VIGIL_TEST_AGGREGATE", "effects")
CALLS_FILE = os.environ.get("VIGIL_TEST_CALLS_FILE")
SEND_TOPIC = os.environ.get("VIGIL_TEST_SEND_TOPIC", "")

BUSINESS_TABLES = """
CREATE TABLE IF NOT EXISTS public.effects_core (event_id text NOT NULL, n integer NOT NULL, pid integer NOT NULL);
CREATE TABLE IF NOT EXISTS public.effects_orm (id serial PRIMARY KEY, event_id text NOT NULL, n integer NOT NULL);
"""


class Base(DeclarativeBase):
    pass


class Effect(Base):
    __tablename__ = "effects_orm"
    __table_args__ = {"schema": "public"}  # noqa: RUF012
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text)
    n: Mapped[int] = mapped_column(Integer)


def validate(event: Any, output: Output) -> bool | str:
    if isinstance(event.value, dict) and event.value.get("bad") == "validator_raises":
        raise ValueError("the validator itself is broken")
    if isinstance(event.value, dict) and event.value.get("reject"):
        return "the event asked to be rejected"
    return True


def _record_call(ctx: Context) -> None:
    if CALLS_FILE:
        with open(CALLS_FILE, "a") as fh:  # one short write with O_APPEND: lines never interleave
            fh.write(f"{ctx.event_id} {ctx.attempt} {os.getpid()}\n")


def _bad_output(kind: str, ctx: Context) -> None:
    if kind == "payload":
        ctx.emit(AGGREGATE, key="bad", payload={"not json": object()})
    elif kind == "aggregatetype":
        ctx.emit("no spaces allowed!", key="bad", payload={})
    elif kind == "send_unknown":
        ctx.send(f"{TOPIC}.does-not-exist", b"x")
    elif kind == "send_large":
        ctx.send(SEND_TOPIC, b"x" * 2_000_000)
    elif kind == "connection_error":
        raise ConnectionError("the handler's own HTTP client could not connect")


@agent(TOPIC, name=NAME, validate=validate, retries=3)
async def recorder(event: Any, ctx: Context) -> None:
    _record_call(ctx)
    value = event.value
    n = int(value["n"])
    await ctx.session.execute(
        text("INSERT INTO public.effects_core (event_id, n, pid) VALUES (:e, :n, :pid)"),
        {"e": ctx.event_id, "n": n, "pid": os.getpid()},
    )
    ctx.session.add(Effect(event_id=ctx.event_id, n=n))
    if n % 2 == 0:
        await ctx.session.flush()  # flushed by the handler; odd events' objects are flushed by Vigil
    if value.get("fail"):
        raise RuntimeError(f"handler fails for n={n}")
    if value.get("bad"):
        _bad_output(str(value["bad"]), ctx)
    if value.get("block_s"):
        time.sleep(float(value["block_s"]))  # noqa: ASYNC251  # the blocking call under test
    if value.get("touch_db"):
        await ctx.session.execute(text("SELECT 1"))
    if value.get("send") and SEND_TOPIC:
        ctx.send(SEND_TOPIC, str(n).encode(), key=str(n).encode())
    route = "critical" if value.get("score", 0) >= 0.9 else "warning"
    ctx.step("route", tier=route)
    payload = {"n": n, "tier": route, "at": datetime(2026, 1, 1, tzinfo=UTC), "amount": Decimal("1.10")}
    ctx.emit(AGGREGATE, key=str(n), payload=payload)
    if SLOW_MS:
        await asyncio.sleep(SLOW_MS / 1000)
