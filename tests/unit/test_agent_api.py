"""The agent API, the context's derived ids, and the failure classification: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from agents.api import agent, registered, unregister
from agents.context import Context, derived_id
from agents.retry import is_infrastructure_error
from schemas.errors import ConfigurationError, RetryableError


def test_agent_registers_and_returns_the_handler() -> None:
    async def handler(event: Any, ctx: Context) -> None:
        return None

    try:
        wrapped = agent(["a", "b"], name="api-test", retries=5)(handler)
        assert wrapped is handler
        spec = next(s for s in registered() if s.name == "api-test")
        assert spec.topics == ("a", "b") and spec.retries == 5 and spec.batch_size is None
    finally:
        unregister("api-test")


@pytest.mark.parametrize(
    "kwargs", [{"name": "has space"}, {"name": "x", "retries": 0}, {"name": "x", "concurrency": 0}]
)
def test_bad_agent_declarations_name_the_problem(kwargs: dict[str, Any]) -> None:
    async def handler(event: Any, ctx: Context) -> None:
        return None

    with pytest.raises(ConfigurationError):
        agent("t", **kwargs)(handler)


def test_two_agents_with_one_name_are_refused() -> None:
    async def one(event: Any, ctx: Context) -> None:
        return None

    async def two(event: Any, ctx: Context) -> None:
        return None

    try:
        agent("t", name="twice")(one)
        with pytest.raises(ConfigurationError, match="twice"):
            agent("t", name="twice")(two)
    finally:
        unregister("twice")


def _ctx(event_id: str = "e1") -> Context:
    return Context(agent="a", event_id=event_id, trace_id="t", trigger="topic", attempt=1)


def test_outputs_get_ids_derived_from_the_input() -> None:
    first, again, other = _ctx(), _ctx(), _ctx("e2")
    ids = [c.emit("order", key="1", payload={}) for c in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]
    assert first.emit("order", key="2", payload={}) != ids[0]
    assert derived_id("e1", "a", "outbox", 0) == ids[0]
    assert first.send("t2", b"v") == again.send("t2", b"v") == "e1/a/0"
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert first.wake_at(at) == again.wake_at(at)


@pytest.mark.parametrize(
    ("error", "infrastructure"),
    [
        (OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")), True),
        (psycopg.OperationalError("server closed the connection"), True),
        (ConnectionRefusedError(), True),
        (RetryableError("broker down"), True),
        (ProgrammingError("SELECT nope", {}, psycopg.ProgrammingError("syntax")), False),
        (ValueError("bad event"), False),
        (FileNotFoundError("handler's own file"), False),
        (
            OperationalError("SELECT pg_sleep(9)", {}, psycopg.errors.QueryCanceled("statement timeout")),
            False,
        ),
        (KeyError("n"), False),
    ],
)
def test_infrastructure_errors_are_told_apart_from_handler_errors(
    error: Exception, infrastructure: bool
) -> None:
    assert is_infrastructure_error(error) is infrastructure
