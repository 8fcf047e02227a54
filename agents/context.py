"""``Context``: what a handler may do inside its event's transaction.

Everything a handler asks for is collected here and written by the unit of work in the same
transaction: its own database writes (``session``), outbox rows (``emit``), trace steps
(``step``), wakeups (``wake_in``/``wake_at``), and stream outputs (``send``, sent before the input
is acked, with ids derived from the input). Output that can never be written (a payload JSON
cannot hold, an illegal topic name) is refused here, so it is the event's failure.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agents.outbox_mapping import OutboxRow, check_aggregatetype, dumps_payload
from schemas.errors import OutputError
from streams.naming import topic_name_problem

if TYPE_CHECKING:
    from agents.event_session import EventWrites, HandlerSession

#: Namespace for ids derived from an input event: the same input always yields the same ids.
_OUTPUT_NAMESPACE = uuid.UUID("8c2e0f5e-5f4b-4a59-9a53-7d1f4b0e6a21")
_NAMESPACE_BYTES = _OUTPUT_NAMESPACE.bytes
#: What ``uuid.UUID(..., version=5)`` clears and sets: the variant and version bits.
_V5_CLEAR = ~(0xC000 << 48 | 0xF000 << 64)
_V5_SET = 0x8000 << 48 | 5 << 76
#: The setters of ``uuid.UUID``'s two slots (``UUID`` refuses ``setattr``; ``__init__`` uses these).
_SET_INT = uuid.UUID.__dict__["int"].__set__
_SET_IS_SAFE = uuid.UUID.__dict__["is_safe"].__set__
#: SHA-1 of the namespace's bytes, copied for each id: ``hashlib.sha1()`` looks the algorithm up
#: in OpenSSL on every call (``EVP_MD_fetch``: name compares under a lock), a copy does not.
_NAMESPACE_SHA1 = hashlib.sha1(_NAMESPACE_BYTES, usedforsecurity=False)
_UNKNOWN = uuid.SafeUUID.unknown


def derived_id(event_id: str, agent: str, kind: str, index: int) -> uuid.UUID:
    """A UUID stable for (event, agent, kind, n): redelivery and replay produce the same id.

    ``uuid.uuid5(_OUTPUT_NAMESPACE, "<agent>\\x1f<event_id>\\x1f<kind>\\x1f<n>")``, computed as
    uuid5 does (SHA-1 of the namespace's bytes and the name's), without ``UUID.__init__``'s checks:
    the object is made as ``UUID.__init__`` ends, its ``int`` and ``is_safe`` slots set. Once per
    emit, so every call counts (≈1.5 µs against uuid5's ≈3.3)."""
    sha1 = _NAMESPACE_SHA1.copy()
    sha1.update(f"{agent}\x1f{event_id}\x1f{kind}\x1f{index}".encode())
    digest = sha1.digest()
    made = object.__new__(uuid.UUID)
    _SET_INT(made, (int.from_bytes(digest[:16]) & _V5_CLEAR) | _V5_SET)
    _SET_IS_SAFE(made, _UNKNOWN)
    return made


@dataclass(frozen=True)
class StreamSend:
    """A message for another topic: its own ``event_id`` (derived from the input), the input's id and
    the input's trace id."""

    topic: str
    key: bytes | None
    value: bytes
    event_id: str
    source_event_id: str
    trace_id: str

    @property
    def size(self) -> int:
        return len(self.value) + len(self.key or b"") + len(self.event_id) + len(self.trace_id)


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
        writes: EventWrites | None = None,
    ) -> None:
        self.agent = agent
        self.event_id = event_id
        self.trace_id = trace_id
        self.trigger = trigger
        self.attempt = attempt
        self.output = Output()
        self._writes = writes

    @property
    def session(self) -> HandlerSession:
        """The event's own part of the transaction, as a SQLAlchemy ``AsyncSession``.

        Core (``await ctx.session.execute(text(...))``), ORM (``ctx.session.add(obj)``) and raw SQL
        (``await ctx.session.connection()``) all write in the event's savepoint: they commit with
        the event, or are undone with it. Never commit, roll back or close it yourself.
        """
        if self._writes is None:
            raise RuntimeError("this Context has no database (it was made outside a unit of work)")
        return self._writes.session()

    def emit(self, aggregatetype: str, *, key: str, payload: Any, type: str | None = None) -> uuid.UUID:
        """Add an outbox row (relayed to ``vigil.outbox.<aggregatetype>``); return its id.

        The payload must be JSON-serializable; datetimes, dates, decimals, UUIDs and enums are
        encoded as JSON encoders usually do (ISO 8601, string, string, value).
        """
        check_aggregatetype(aggregatetype)
        payload_json = dumps_payload(payload)
        row_id = derived_id(self.event_id, self.agent, "outbox", len(self.output.outbox))
        self.output.outbox.append(
            OutboxRow.emitted(
                row_id, aggregatetype, str(key), type or aggregatetype, payload, self.trace_id, payload_json
            )
        )
        return row_id

    def send(self, topic: str, value: bytes, *, key: bytes | None = None) -> str:
        """Send to another topic before the input is acked (at least once; the id dedups)."""
        problem = topic_name_problem(topic)
        if problem is not None:
            raise OutputError(f"ctx.send: {problem}")
        out_id = f"{self.event_id}/{self.agent}/{len(self.output.sends)}"
        self.output.sends.append(StreamSend(topic, key, value, out_id, self.event_id, self.trace_id))
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
