"""Outbox rows to Kafka messages and back, in the shape of Debezium's Outbox Event Router.

The relay (:mod:`agents.relay`) and Debezium (``table.expand.json.payload=true``) both publish an
outbox row as: topic ``vigil.outbox.<aggregatetype>``, key = ``aggregateid`` (UTF-8), value = the
payload as JSON, headers ``id`` (the outbox id), ``vigil-event-id`` (the same), ``vigil-trace-id``
and ``type``. Sinks read any of those messages back with :func:`decode_outbox_message`, so they work
behind either publisher.

Pure: imports no Kafka, database or HTTP client.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from schemas.errors import DecodeError, OutputError
from streams import headers
from streams.catalog import outbox_topic
from streams.naming import topic_name_problem
from streams.outgoing import Outgoing

ID_HEADER = headers.OUTBOX_ID
EVENT_ID_HEADER = headers.EVENT_ID
TRACE_ID_HEADER = headers.TRACE_ID
TYPE_HEADER = headers.OUTBOX_TYPE

#: Headers as confluent-kafka hands them over: a list of (name, bytes or None).
Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True)
class OutboxRow:
    """One row of ``vigil.outbox``: what a handler emits, and what the relay reads back.

    ``payload`` is the value as the handler gave it (or as Postgres returned it); ``seq`` is set
    once the row is in the table.
    """

    id: uuid.UUID
    aggregatetype: str
    aggregateid: str
    type: str
    payload: Any
    seq: int | None = None
    trace_id: str | None = None
    #: The payload as JSON text, made once when a handler emits the row, or Postgres's text of the
    #: stored ``jsonb`` when the relay reads the row back (published as it is: no decode and encode).
    payload_json: str | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def emitted(
        cls,
        id: uuid.UUID,
        aggregatetype: str,
        aggregateid: str,
        type: str,
        payload: Any,
        trace_id: str | None,
        payload_json: str,
    ) -> OutboxRow:
        """The row ``OutboxRow(id, …, trace_id=…, payload_json=…)`` (``seq`` None), made by filling
        its ``__dict__``: a frozen dataclass's ``__init__`` sets each of its 8 fields through
        ``object.__setattr__`` (≈4 µs against ≈1), and ``ctx.emit`` makes one per row."""
        row = object.__new__(cls)
        row.__dict__.update(
            id=id,
            aggregatetype=aggregatetype,
            aggregateid=aggregateid,
            type=type,
            payload=payload,
            seq=None,
            trace_id=trace_id,
            payload_json=payload_json,
        )
        return row


@dataclass(frozen=True)
class OutboxEvent:
    """An outbox message as a sink sees it; ``id`` is the idempotency key."""

    id: str
    topic: str
    key: str | None
    type: str | None
    trace_id: str
    payload: Any


def _json_default(value: Any) -> Any:
    """What JSON encoders of the ecosystem do (Django's, pydantic's) for the common non-JSON types:
    times as ISO 8601, decimals as strings (no precision lost), UUIDs as strings, enums as their
    value, dataclasses as objects. Anything else is refused rather than guessed at."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"a {type(value).__name__} has no JSON form")


#: orjson hands what json would give to ``_json_default`` to it too, so both write the same text.
#: A number (first, or after ``:``, ``,`` or ``[``) below 1e-4, which orjson and json spell differently; inside a
#: string it only costs the slower path.
_SMALL_FLOAT = re.compile(rb"(?:^|[:,\[])-?(?:[0-9.]+e-|0\.0000)")
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def dumps_payload(payload: Any) -> str:
    """An outbox payload as compact JSON text; :class:`OutputError` naming the value JSON cannot hold."""
    # orjson first (~10x faster), for the same text. Where the two differ json writes it: orjson
    # writes NaN and infinities as null (json refuses them), spells floats below 1e-4 its own way
    # (1.5e-7 or 0.00005 for json's 1.5e-07, 5e-05), and refuses what json accepts (non-string
    # keys, integers past 64 bits).
    try:
        fast = orjson.dumps(payload, default=_json_default, option=_ORJSON_OPTIONS)
    except TypeError:
        fast = None
    # The regex scans slowly (~5 µs for 100 bytes); it can only match text holding "e-" or "0.0000".
    # ``find``, not ``in``: bytes' ``in`` first tries its argument as an integer, and raises and
    # clears a TypeError for each of these (twice the cost, once per emit).
    if (
        fast is not None
        and fast.find(b"null") < 0
        and ((fast.find(b"e-") < 0 and fast.find(b"0.0000") < 0) or _SMALL_FLOAT.search(fast) is None)
    ):
        return fast.decode("utf-8")
    try:
        return json.dumps(
            payload, separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise OutputError(f"outbox payload is not JSON-serializable: {exc}") from exc


def check_aggregatetype(aggregatetype: str) -> None:
    """Refuse an ``aggregatetype`` whose outbox topic Kafka would not accept."""
    problem = (
        _aggregatetype_problem(aggregatetype)
        if type(aggregatetype) is str
        else topic_name_problem(outbox_topic(aggregatetype))
    )
    if problem is not None:
        raise OutputError(f"aggregatetype {aggregatetype!r} does not make a valid outbox topic: {problem}")


@functools.lru_cache(maxsize=4096)
def _aggregatetype_problem(aggregatetype: str) -> str | None:
    """Checked once per name: an agent emits the same few aggregatetypes for every event."""
    return topic_name_problem(outbox_topic(aggregatetype))


def encode_payload(payload: Any) -> bytes | None:
    """The payload as compact JSON; a SQL NULL payload becomes a null value, as Debezium does."""
    if payload is None:
        return None
    return dumps_payload(payload).encode("utf-8")


def to_message(row: OutboxRow) -> Outgoing:
    """The Kafka message the relay produces for an outbox row."""
    event_id = str(row.id).encode("ascii")
    trace_id = row.trace_id.encode("utf-8") if row.trace_id else event_id
    return Outgoing(
        topic=outbox_topic(row.aggregatetype),
        key=row.aggregateid.encode("utf-8"),
        value=row.payload_json.encode("utf-8")
        if row.payload_json is not None
        else encode_payload(row.payload),
        headers=(
            (ID_HEADER, event_id),
            (EVENT_ID_HEADER, event_id),
            (TRACE_ID_HEADER, trace_id),
            (TYPE_HEADER, row.type.encode("utf-8")),
        ),
    )


def header_list(
    raw: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
) -> Headers:
    """Headers as (name, bytes or None) pairs, whichever form a client hands them over in."""
    if raw is None:
        return []
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    return [(k, v.encode("utf-8") if isinstance(v, str) else v) for k, v in pairs]


def header(headers: Headers | None, name: str) -> str | None:
    """The last value of header ``name`` as text, or None (absent, null or not UTF-8)."""
    found: str | None = None
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                found = value.decode("utf-8")
            except UnicodeDecodeError:
                found = None
    return found


def _normalise_id(raw: str) -> str:
    # Kafka Connect's JSON header converter writes a string header with its quotes.
    text = raw.strip().strip('"')
    try:
        return str(uuid.UUID(text))
    except ValueError as exc:
        raise DecodeError(f"outbox id header is not a UUID: {raw!r}") from exc


def idempotency_key(headers: Headers | None) -> str:
    """The outbox id from header ``id``, else ``vigil-event-id``; a message without one is poison."""
    raw = header(headers, ID_HEADER) or header(headers, EVENT_ID_HEADER)
    if not raw:
        raise DecodeError("outbox message has no id or vigil-event-id header")
    return _normalise_id(raw)


def decode_outbox_message(
    topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
) -> OutboxEvent:
    """Read a relayed (or Debezium-routed) outbox message; raise :class:`DecodeError` if it is not one."""
    event_id = idempotency_key(headers)
    try:
        payload = None if value is None else json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"outbox payload is not JSON: {exc}") from exc
    try:
        text_key = None if key is None else key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("outbox key is not UTF-8") from exc
    return OutboxEvent(
        id=event_id,
        topic=topic,
        key=text_key,
        type=header(headers, TYPE_HEADER),
        trace_id=header(headers, TRACE_ID_HEADER) or event_id,
        payload=payload,
    )
