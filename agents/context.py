"""``Context``: what a handler may do inside its event's transaction.

Everything a handler asks for is collected here and written by the unit of work in the same
transaction: outbox rows (``emit``), trace steps (``step``), wakeups (``wake_in``/``wake_at``),
and stream outputs (``send``, sent before the input is acked, with ids derived from the input).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

#: Namespace for ids derived from an input event: the same input always yields the same ids.
_OUTPUT_NAMESPACE = uuid.UUID("8c2e0f5e-5f4b-4a59-9a53-7d1f4b0e6a21")


def derived_id(event_id: str, agent: str, kind: str, index: int) -> uuid.UUID:
    """A UUID stable for (event, agent, kind, n): redelivery and replay produce the same id."""
    return uuid.uuid5(_OUTPUT_NAMESPACE, f"{agent}\x1f{event_id}\x1f{kind}\x1f{index}")


@dataclass(frozen=True)
class OutboxRow:
    id: uuid.UUID
    aggregatetype: str
    aggregateid: str
    type: str
    payload: Any


@dataclass(frozen=True)
class StreamSend:
    topic: str
    key: bytes | None
    value: bytes
    event_id: str


@dataclass(frozen=True)
class Wakeup:
    id: str
    at: datetime
    payload: dict[str, Any]


@dataclass
class Output:
    """What one handler run asked for."""

    outbox: list[OutboxRow] = field(default_factory=list)
    sends: list[StreamSend] = field(default_factory=list)
    wakeups: list[Wakeup] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)


class Context:
    """Given to a handler with each event; valid only during the handler's run."""

    def __init__(
        self,
        *,
        agent: str,
        event_id: str,
        trace_id: str,
        trigger: str,
        attempt: int,
        session_factory: Any,
    ) -> None:
        self.agent = agent
        self.event_id = event_id
        self.trace_id = trace_id
        self.trigger = trigger
        self.attempt = attempt
        self.output = Output()
        self._session_factory = session_factory
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        """The event's transaction as a SQLAlchemy ``AsyncSession`` (do not commit it yourself)."""
        if self._session is None:
            self._session = self._session_factory()
        return self._session

    def emit(self, aggregatetype: str, *, key: str, payload: Any, type: str | None = None) -> uuid.UUID:
        """Add an outbox row (relayed to ``vigil.outbox.<aggregatetype>``); return its id."""
        row_id = derived_id(self.event_id, self.agent, "outbox", len(self.output.outbox))
        self.output.outbox.append(OutboxRow(row_id, aggregatetype, str(key), type or aggregatetype, payload))
        return row_id

    def send(self, topic: str, value: bytes, *, key: bytes | None = None) -> str:
        """Send to another topic before the input is acked (at least once; the id dedups)."""
        out_id = f"{self.event_id}/{self.agent}/{len(self.output.sends)}"
        self.output.sends.append(StreamSend(topic, key, value, out_id))
        return out_id

    def step(self, name: str, **data: Any) -> None:
        """Record one step (a tool call, a decision) in the run's trace."""
        self.output.trace.append({"step": name, "at": time.time(), **data})

    def wake_at(self, at: datetime, *, payload: dict[str, Any] | None = None) -> str:
        """Ask for a tick at ``at`` (a self-set wakeup); return its id."""
        wake_id = str(derived_id(self.event_id, self.agent, "wakeup", len(self.output.wakeups)))
        when = at if at.tzinfo else at.replace(tzinfo=UTC)
        self.output.wakeups.append(Wakeup(wake_id, when, payload or {}))
        return wake_id

    def wake_in(
        self,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        payload: dict[str, Any] | None = None,
    ) -> str:
        delay = timedelta(seconds=seconds, minutes=minutes, hours=hours)
        return self.wake_at(datetime.now(UTC) + delay, payload=payload)
