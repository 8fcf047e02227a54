"""What an agent receives: typed views of Kafka messages.

Pure: built from the message's parts (topic, partition, offset, key, value, headers), so tests
feed values in without a broker.

- a Debezium topic (``cdc.*``) gives a :class:`ChangeEvent` (``op``, ``before``, ``after``, ``key``, ``source``);
- a Vigil topic (``drift.*``, ``vigil.ticks``), or any message framed as Avro (single-object or the
  Confluent wire format), gives a :class:`RecordEvent`: the record of its schema, fields readable as
  attributes (``event.severity``), its type in ``event.type``;
- any other topic gives a :class:`RawEvent` whose ``value`` is the parsed JSON when the bytes are JSON,
  else the bytes.

Every view has ``event_id``: the ``vigil-event-id`` header when present; else, for a change event,
the id of its source position (:mod:`streams.eventids`, as Kafka Connect writes no such header);
else ``<topic>/<partition>/<offset>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from schemas.codec import Codec
from schemas.errors import PoisonError
from schemas.framing import CONFLUENT_MAGIC, SINGLE_OBJECT_MARKER
from streams import headers
from streams.catalog import CDC_PREFIX, DRIFT_CRITICAL, DRIFT_EVENTS, DRIFT_WARNING, TICKS
from streams.eventids import cdc_event_id, is_snapshot, offset_event_id

#: Topics whose messages are always Vigil's Avro records: anything else on them is poison.
AVRO_TOPICS = frozenset({DRIFT_EVENTS, DRIFT_WARNING, DRIFT_CRITICAL, TICKS})

EVENT_ID_HEADER = headers.EVENT_ID
TRACE_ID_HEADER = headers.TRACE_ID

Headers = Mapping[str, bytes]

#: Where an integer past 64 bits may be, which orjson reads as a float: 20 digits or more, or a minus
#: and 19 (below -2**63). A positive 19-digit integer fits orjson's unsigned 64 bits, and Debezium's
#: ``ts_ns`` (19 digits) is in every change event: those stay on the fast path.
_LONG_NUMBER = re.compile(rb"[0-9]{20}|-[0-9]{19}")
#: Every digit to b"0", a minus kept, every other byte to b" ": ``_LONG_NUMBER`` matches exactly
#: where the translated text holds ``_LONG_RUN`` or ``_LONG_NEGATIVE`` (C passes, ~5x quicker than
#: the regex's scan). Looked for with ``find``, not ``in``: CPython 3.11's ``bytes.__contains__``
#: first tries its argument as an integer (``1 in b"..."``), raising and clearing a TypeError for
#: a bytes argument, which costs as much as the search itself.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2D if i == 0x2D else 0x20 for i in range(256))
_LONG_RUN = b"0" * 20
_LONG_NEGATIVE = b"-" + b"0" * 19


def _has_long_number(data: bytes) -> bool:
    if type(data) is bytes:
        digits = data.translate(_DIGITS_ONLY)
        return digits.find(_LONG_RUN) >= 0 or digits.find(_LONG_NEGATIVE) >= 0
    return _LONG_NUMBER.search(data) is not None


@dataclass(frozen=True)
class MessageParts:
    """The parts of a consumed Kafka message that views are built from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=dict)
    timestamp_ms: int | None = None
    #: The broker's id of the topic (Kafka 2.8+ reports one), when the consumer looked it up.
    topic_id: str | None = None


def headers_to_dict(
    headers: Sequence[tuple[str, bytes | None]] | Mapping[str, bytes] | None,
) -> dict[str, bytes]:
    """Kafka headers as a dict (the last value wins for a repeated name)."""
    if headers is None:
        return {}
    if type(headers) is list or type(headers) is tuple:  # what the consumers hand over: no ABC check
        return {name: (value or b"") for name, value in headers}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: (value or b"") for name, value in items}


def maybe_bytes(value: str | bytes | None) -> bytes | None:
    """A key, value or header value as bytes (confluent-kafka hands bytes; a str is UTF-8 encoded)."""
    if value is None:
        return None
    return value if isinstance(value, bytes) else value.encode()


def record_headers(msg: Any) -> list[tuple[str, bytes]]:
    """A confluent-kafka message's headers in order (repeats kept), as bytes."""
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(name, maybe_bytes(value) or b"") for name, value in pairs]


_Built = TypeVar("_Built")


def built(cls: type[_Built], fields: dict[str, Any]) -> _Built:
    """``cls(**fields)`` for a frozen dataclass given every field, without its generated
    ``__init__``, which sets each field through ``object.__setattr__``: one dict update instead
    (≈0.5 µs instead of ≈1.9 for :class:`MessageParts`; the hot path makes two such objects per
    event). The classes here have no defaults left to fill in and no ``__post_init__``;
    tests/unit/test_views.py checks that ``built`` and the constructor give equal objects."""
    made = object.__new__(cls)
    made.__dict__.update(fields)
    return made


def parts_of_record(msg: Any, topic_id: str | None = None) -> MessageParts:
    """The parts of a consumed confluent-kafka ``Message``."""
    kind, stamp = msg.timestamp()
    return built(
        MessageParts,
        {
            "topic": msg.topic() or "",
            "partition": msg.partition() or 0,
            "offset": msg.offset() or 0,
            "key": maybe_bytes(msg.key()),
            "value": maybe_bytes(msg.value()),
            # confluent-kafka hands header values as bytes (or None): no per-value conversion needed.
            "headers": headers_to_dict(msg.headers()),
            "timestamp_ms": stamp if kind != 0 else None,
            "topic_id": topic_id,
        },
    )


def event_id_of(parts: MessageParts) -> str:
    """The stable id of the event in ``parts``."""
    header = parts.headers.get(EVENT_ID_HEADER)
    if header:
        return header.decode("utf-8", errors="replace")
    return offset_event_id(parts.topic, parts.partition, parts.offset, parts.topic_id)


@dataclass(frozen=True)
class EventView:
    """Fields every view has."""

    event_id: str
    trace_id: str
    topic: str
    partition: int
    offset: int
    headers: Headers
    #: The message's Kafka timestamp (the producer's create time, or the broker's append time if the
    #: topic says so), in milliseconds since the epoch; None if the message has none.
    timestamp_ms: int | None


@dataclass(frozen=True)
class ChangeEvent(EventView):
    """A Debezium change event: ``op`` is c (create), u (update), d (delete) or r (snapshot read)."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    key: Any
    source: dict[str, Any]
    ts_ms: int | None


@dataclass(frozen=True)
class RawEvent(EventView):
    """A message from a topic Vigil has no schema for."""

    key: bytes | None
    value: Any


@dataclass(frozen=True)
class RecordEvent(EventView):
    """One of Vigil's Avro records (``DriftEvent``, ``Tick``, …); fields read as attributes."""

    type: str
    record: dict[str, Any]
    key: bytes | None

    def __getattr__(self, name: str) -> Any:
        record = self.__dict__.get("record")
        if record is not None and name in record:
            return record[name]
        raise AttributeError(f"{self.__dict__.get('type', 'record')} has no field {name!r}")


def _parse_json(data: bytes) -> Any:
    # orjson parses the common case (UTF-8 JSON) about 8x faster than json, to the same values.
    # What it refuses that json accepts (NaN and Infinity literals, integers past 64 bits, a BOM,
    # UTF-16/32) goes the old way, so the result, and what counts as poison, stay json's. A run of
    # digits that may be such an integer (or only look like one, inside a string): json reads it too.
    if not _has_long_number(data):  # orjson turns an integer past 64 bits into a float
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _parse_json_slowly(data)


def _parse_json_slowly(data: bytes) -> Any:
    # json.loads(bytes) sniffs the encoding in Python first (~4 µs an event in the worker's profile).
    # UTF-8 without a BOM is the norm: decode it directly; anything else keeps json's own detection.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return json.loads(data)
    if text[:1] == "\ufeff" or "\x00" in text[:4]:  # a BOM, or UTF-16/32 that happens to be valid UTF-8
        return json.loads(data)
    return json.loads(text)


def _debezium_payload(document: Any) -> Any:
    """The payload of a Debezium JSON document, with or without the schema envelope."""
    if isinstance(document, dict) and "payload" in document and "schema" in document:
        return document["payload"]
    return document


def _position(parts: MessageParts) -> dict[str, Any]:
    """The fields every view shares. The trace id is the ``vigil-trace-id`` header, else the event's id."""
    event_id = event_id_of(parts)
    trace = parts.headers.get(TRACE_ID_HEADER)
    return {
        "event_id": event_id,
        "trace_id": trace.decode("utf-8", errors="replace") if trace else event_id,
        "topic": parts.topic,
        "partition": parts.partition,
        "offset": parts.offset,
        "headers": parts.headers,
        "timestamp_ms": parts.timestamp_ms,
    }


def _change_event_id(source: dict[str, Any], parts: MessageParts, after: Any) -> str:
    lsn = source.get("lsn")
    return cdc_event_id(
        str(source.get("name") or parts.topic.split(".", 1)[0]),
        str(source.get("schema", "")),
        str(source.get("table", "")),
        parts.key.decode("utf-8", errors="replace") if parts.key is not None else None,
        lsn=int(lsn) if isinstance(lsn, int | str) and str(lsn).isdigit() else None,
        snapshot=is_snapshot(source.get("snapshot")),
        content=after,
    )


def change_event(parts: MessageParts) -> ChangeEvent | None:
    """The change view of a Debezium message; ``None`` for a tombstone. Raises PoisonError on bad input."""
    if parts.value is None:
        return None
    try:
        payload = _debezium_payload(_parse_json(parts.value))
        key = _debezium_payload(_parse_json(parts.key)) if parts.key else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonError(f"not a Debezium JSON change event: {exc}") from exc
    if not isinstance(payload, dict) or "op" not in payload:
        raise PoisonError("not a Debezium change event: no 'op' in the payload")
    if isinstance(key, dict) and len(key) == 1:
        key = next(iter(key.values()))
    position = _position(parts)
    if EVENT_ID_HEADER not in parts.headers:  # written by Kafka Connect: derive it from the source
        position["event_id"] = _change_event_id(payload.get("source") or {}, parts, payload.get("after"))
        if TRACE_ID_HEADER not in parts.headers:
            position["trace_id"] = position["event_id"]
    position["op"] = str(payload["op"])
    position["before"] = payload.get("before")
    position["after"] = payload.get("after")
    position["key"] = key
    position["source"] = payload.get("source") or {}
    position["ts_ms"] = payload.get("ts_ms")
    return built(ChangeEvent, position)


def raw_event(parts: MessageParts) -> RawEvent:
    value: Any = parts.value
    if parts.value is not None:
        try:
            value = _parse_json(parts.value)
        except (ValueError, UnicodeDecodeError):
            value = parts.value
    fields = _position(parts)
    fields["key"] = parts.key
    fields["value"] = value
    return built(RawEvent, fields)


def is_cdc_topic(topic: str) -> bool:
    return topic.startswith(CDC_PREFIX)


def looks_like_avro(value: bytes, codec: Codec) -> bool:
    if value[:2] == SINGLE_OBJECT_MARKER:
        return True
    return codec.registry is not None and value[:1] == CONFLUENT_MAGIC


def record_event(parts: MessageParts, codec: Codec) -> RecordEvent:
    """The record view of an Avro message; raises :class:`~schemas.errors.DecodeError` (poison)."""
    decoded = codec.decode(parts.value or b"")
    fields = _position(parts)
    fields["type"] = decoded.short_name
    fields["record"] = decoded.record
    fields["key"] = parts.key
    return built(RecordEvent, fields)


def view_of(parts: MessageParts, codec: Codec | None = None) -> EventView | None:
    """The view an agent receives for ``parts``; ``None`` when there is nothing to process (tombstone).

    Raises :class:`~schemas.errors.PoisonError` for a message that can never be read.
    """
    if is_cdc_topic(parts.topic):
        return change_event(parts)
    if (
        codec is not None
        and parts.value is not None
        and (parts.topic in AVRO_TOPICS or looks_like_avro(parts.value, codec))
    ):
        return record_event(parts, codec)
    return raw_event(parts)


def addressed_elsewhere(view: EventView, agent: str) -> bool:
    """Whether ``view`` is a ``Tick`` for another agent: every agent on ``vigil.ticks`` receives
    every tick, and runs only those that name it (or name no agent)."""
    if not isinstance(view, RecordEvent) or view.type != "Tick":
        return False
    target = view.record.get("agent")
    return target is not None and target != agent
